"""Hooks sdperf offers to conftest files and plugins."""

from __future__ import annotations

import pytest


@pytest.hookspec
def pytest_sdperf_worker_started(case, pid: int) -> None:
    """A case's worker process is running (before the model loads).

    For tooling that watches or profiles the worker, e.g. `py-spy dump --pid`.
    """
