"""Shared set-up for the suite's own tests: offline, pytester runs see the plugin, and runs of
the benchmark suite that several tests assert on (each worker costs seconds: share them)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# No model hub here or in CI: any attempt to reach one must fail fast.
os.environ["HF_HUB_OFFLINE"] = "1"
# Runs of the suite inside the tests keep their history here, never in the user's data folder.
os.environ["SDPERF_HISTORY"] = tempfile.mkdtemp(prefix="sdperf-tests-history-")

# In-process pytester runs put sys.modules back afterwards, and numpy's and scipy's compiled
# modules cannot load twice in one process: loaded once here, before any run, they stay.
import numpy  # noqa: E402, F401
import PIL.Image  # noqa: E402, F401
import scipy.stats  # noqa: E402, F401

REPO = Path(__file__).resolve().parents[1]
GOLDENS = REPO / "baselines" / "golden"


def _cpu_storage_key() -> str:
    from sdperf.host.detection import detect_host

    # `--sdperf-profile cpu` on a host detected as cpu is no emulation: its runs are kept under `cpu`.
    return "cpu" if detect_host(Path("/")).primary == "cpu" else "emulated-cpu"


# Where runs with `--sdperf-profile=cpu` are kept on this host.
CPU_KEY = _cpu_storage_key()

LATENCY_TEST = '''
def test_latency(sdperf_bench):
    sdperf_bench.latency()
'''


@pytest.fixture(autouse=True)
def own_history(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each test's in-process runs keep their history apart: noise learned from another test's
    nights would change this test's verdicts. (Shared runs, set up before this, use the session's.)"""
    folder = tmp_path_factory.mktemp("history")
    monkeypatch.setenv("SDPERF_HISTORY", str(folder))
    return folder


@pytest.fixture
def latency_suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester folder holding the suite's latency benchmark, as a user's checkout has it."""
    pytester.makepyfile(test_latency=LATENCY_TEST)
    return pytester


def builtin_model_path(name: str) -> Path:
    """Folder of a built-in model, built if needed, in a subprocess as a worker would:
    the test process itself never imports torch."""
    from sdperf.models.store import READY_MARKER, builtin_folder

    if (builtin_folder(name) / READY_MARKER).is_file():
        return builtin_folder(name)
    done = subprocess.run(
        [sys.executable, "-m", "sdperf.cli", "build-model", name],
        check=True, capture_output=True, text=True, timeout=300,
    )
    return Path(done.stdout.splitlines()[0])


@dataclass
class SuiteRun:
    """One run of the benchmark suite (perf/'s own test files) in a fresh pytest process."""

    folder: Path
    returncode: int
    stdout: str
    stderr: str

    def lines(self) -> pytest.LineMatcher:
        return pytest.LineMatcher(self.stdout.splitlines())

    def outcomes(self) -> dict[str, int]:
        return pytest.RunResult.parse_summary_nouns(self.stdout.splitlines())

    def saved(self, name: str = "run.json") -> dict[str, Any]:
        return json.loads((self.folder / name).read_text())

    def cases(self, name: str = "run.json") -> dict[str, dict[str, Any]]:
        """case id -> the case's record in the saved run (checks are "<case> <check>")."""
        return {case["case_id"]: case for case in self.saved(name)["sdperf"]["cases"]}

    def note(self, case_id: str, name: str = "run.json") -> str:
        return " | ".join(self.cases(name)[case_id]["notes"])


def run_suite(folder: Path, *arguments: str, files: tuple[str, ...] = ("test_latency.py", "test_correctness.py"),
              env: dict[str, str] | None = None, timeout: float = 1800) -> SuiteRun:
    """Run the benchmark suite's own files, copied into `folder`, with `arguments`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        shutil.copyfile(REPO / "perf" / name, folder / name)
    done = subprocess.run(
        # Without hypothesis's plugin (the suite's own tests use it, these runs do not): half of pytest's start.
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--rootdir", str(folder),
         *arguments],
        cwd=folder, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )
    return SuiteRun(folder, done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="session")
def cpu_run(tmp_path_factory: pytest.TempPathFactory) -> SuiteRun:
    """Every `cpu` recipe this host runs, timed and checked as `make bench` does, on a small run
    size: one worker per case (as `make bench`; a worker costs seconds, rotation is shown by
    `pi5_emulated_run`), one warm-up and two timed rounds. Saved three ways (JSON, autosave,
    Markdown), images kept, goldens the shipped ones, progress on every step."""
    return run_suite(
        tmp_path_factory.mktemp("cpu-run"),
        "-m", "cpu", "--sdperf-rounds=2", "--sdperf-warmup=1", "--sdperf-workers=1", "--sdperf-progress=0.01",
        "--sdperf-save-images=images", "--benchmark-json=run.json", "--benchmark-autosave",
        "--sdperf-markdown=summary.md", f"--sdperf-golden-dir={GOLDENS}", "-rs",
    )


@pytest.fixture(scope="session")
def pi5_emulated_run(tmp_path_factory: pytest.TempPathFactory) -> SuiteRun:
    """The Pi 5 emulated here (--sdperf-profile, no -m: every other profile's case is collected and
    skipped with the reason), each recipe timed and checked on one worker's warm-up and round, saved."""
    return run_suite(
        tmp_path_factory.mktemp("pi5-run"),
        "--sdperf-profile=pi5", "--sdperf-rounds=1", "--sdperf-warmup=1", "--sdperf-progress=0",
        f"--sdperf-golden-dir={GOLDENS}", "--benchmark-json=run.json", "--benchmark-autosave", "-rs",
    )


# A profile table whose *real-weights* workload is tiny, so a real-model run stays cheap here.
SMALL_REAL_WORKLOAD = """
schema = 1
[profiles.cpu]
description = "test"
pipeline = "StableDiffusionPipeline"
builtin_model = "tiny-sd15"
recipes = ["fp32"]
[profiles.cpu.workload]
prompt = "a lighthouse"
height = 64
width = 96
steps = 3
[profiles.cpu.real]
rounds = 2
warmup = 1
timeout_s = 300
[profiles.cpu.builtin]
height = 128
rounds = 1
warmup = 0
timeout_s = 300
"""


def perturb_one_value(safetensors_file: Path) -> None:
    """Add 1.0 to the first float32 of the first tensor, in place (safetensors layout:
    8-byte header length, JSON header, then raw little-endian data)."""
    data = bytearray(safetensors_file.read_bytes())
    (header_length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_length])
    name = next(k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32")
    offset = 8 + header_length + header[name]["data_offsets"][0]
    (value,) = struct.unpack("<f", data[offset : offset + 4])
    data[offset : offset + 4] = struct.pack("<f", value + 1.0)
    safetensors_file.write_bytes(bytes(data))


@dataclass
class ModelFolderRuns:
    model: Path
    recorded: SuiteRun  # first run: records the golden
    matched: SuiteRun  # second run: matches it
    perturbed: SuiteRun  # third run, after one weight of the model changed


@pytest.fixture(scope="session")
def model_folder_runs(tmp_path_factory: pytest.TempPathFactory) -> ModelFolderRuns:
    """A folder of real-format weights (a copy of the built-in model) run three times with its
    profile's real workload, timed and checked: recording a golden, matching it, and after one
    weight value changed. The recording run spreads its two rounds over two fresh workers (rotation,
    and determinism across processes, from the timed images); the others take one worker each."""
    from sdperf.models.store import READY_MARKER

    folder = tmp_path_factory.mktemp("model-folder")
    model = folder / "model"
    shutil.copytree(builtin_model_path("tiny-sd15"), model)
    (model / READY_MARKER).unlink()  # a user's folder: nothing says it is built in
    (folder / "profiles.toml").write_text(SMALL_REAL_WORKLOAD)
    common = ("-m", "cpu", f"--sdperf-profiles-file={folder / 'profiles.toml'}", f"--sdperf-model={model}",
              "--sdperf-golden-dir=golden",
              "--sdperf-progress=0", "--benchmark-json=run.json", "-k", "latency or determinism")
    recorded = run_suite(folder / "recorded", *common, "--sdperf-record-golden", "--sdperf-workers=2")
    shutil.copytree(folder / "recorded" / "golden", folder / "matched" / "golden")
    matched = run_suite(folder / "matched", *common)
    perturb_one_value(model / "unet" / "diffusion_pytorch_model.safetensors")
    shutil.copytree(folder / "recorded" / "golden", folder / "perturbed" / "golden")
    perturbed = run_suite(folder / "perturbed", *common)
    return ModelFolderRuns(model, recorded, matched, perturbed)
