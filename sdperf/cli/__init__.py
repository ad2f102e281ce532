"""The `sdperf` command."""
