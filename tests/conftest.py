"""Shared set-up for the suite's own tests: offline, and pytester runs see the plugin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# No model hub here or in CI: any attempt to reach one must fail fast.
os.environ["HF_HUB_OFFLINE"] = "1"

LATENCY_TEST = '''
def test_latency(sdperf_bench):
    sdperf_bench.latency()
'''


@pytest.fixture
def latency_suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester folder holding the suite's latency benchmark, as a user's checkout has it."""
    pytester.makepyfile(test_latency=LATENCY_TEST)
    return pytester


def builtin_model_path(name: str) -> Path:
    """Folder of a built-in model, built if needed, in a subprocess as a worker would:
    the test process itself never imports torch."""
    done = subprocess.run(
        [sys.executable, "-m", "sdperf.cli", "build-model", name],
        check=True, capture_output=True, text=True, timeout=300,
    )
    return Path(done.stdout.splitlines()[0])
