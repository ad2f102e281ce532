"""tools/gpu_profile_run.sh, the cuda_lowvram profile's run on a real GPU: on a host without one,
every stage's pytest command is accepted and every case is skipped with the reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

SCRIPT = REPO / "tools" / "gpu_profile_run.sh"


def test_the_gpu_script_parses() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True, timeout=30)


@pytest.mark.parametrize(("stage", "selected"), [("tiny", 30), ("capped", 10), ("uncapped", 1)])
def test_each_stage_runs_its_cases_or_skips_them_saying_why(tmp_path: Path, stage: str, selected: int) -> None:
    env = {
        **os.environ, "OUT": str(tmp_path / "out"), "SDPERF_WHEELS": str(tmp_path / "no-wheels"),
        "SDPERF_PYTHON": sys.executable, "SDPERF_CACHE": str(tmp_path / "cache"),
    }
    subprocess.run(["bash", str(SCRIPT), stage], cwd=REPO, env=env, check=True, timeout=300, capture_output=True)
    log = (tmp_path / "out" / f"{stage}.log").read_text()
    assert f" {selected} selected" in log and f"{selected} skipped" in log, log[-3000:]
    assert "profile cuda_lowvram does not run here" in log
    assert f"stage {stage}: pytest exit 0" in log
