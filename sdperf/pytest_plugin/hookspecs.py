"""Hooks sdperf offers to conftest files and plugins."""

from __future__ import annotations

import pytest


@pytest.hookspec
def pytest_sdperf_worker_started(case, pid: int) -> None:
    """A case's worker process is running (before the model loads).

    For tooling that watches or profiles the worker, e.g. `py-spy dump --pid`.
    """


@pytest.hookspec
def pytest_sdperf_round_done(case, round_index: int, reply: dict) -> None:
    """A timed round finished; `reply` holds the worker's figures for it (phases, memory, image hash).

    For live dashboards, or to stop a long run early from a conftest.
    """
