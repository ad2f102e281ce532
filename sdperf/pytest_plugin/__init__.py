"""The pytest plugin: options, hooks, fixtures, one session object, and the adapter to pytest-benchmark's internals."""
