"""The suite measuring itself: its recorded latency against a bare loop around pipe(...)."""

import pytest


@pytest.mark.harness
def test_harness_overhead(sdperf_harness):
    sdperf_harness.harness_overhead()
