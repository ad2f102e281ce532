"""The package's shape is checked, not hoped for: import rules (import-linter contracts in
pyproject.toml), pytest-benchmark's internals behind one adapter, a stated job per folder."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "sdperf"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "HOME": str(root)},
    )


def test_every_import_contract_is_kept() -> None:
    done = _lint(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 6 kept, 0 broken." in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract", "offender"),
    [
        ("judging/statistics.py", "import torch", "torch, diffusers and openvino only in the worker",
         "sdperf.judging.statistics -> torch"),
        ("worker/audit.py", "from sdperf.host import detection", "The worker (child side) never imports the host side",
         "sdperf.worker.audit -> sdperf.host.detection"),
        ("storage/baselines.py", "import pytest", "never import pytest", "sdperf.storage.baselines -> pytest"),
        ("pytest_plugin/latency.py", "import pytest_benchmark", "Only the adapter touches pytest-benchmark",
         "sdperf.pytest_plugin.latency -> pytest_benchmark"),
    ],
)
def test_a_forbidden_import_breaks_its_contract_naming_it(
    tmp_path: Path, module: str, line: str, contract: str, offender: str
) -> None:
    shutil.copytree(PACKAGE, tmp_path / "sdperf", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    broken = tmp_path / "sdperf" / module
    broken.write_text(broken.read_text() + f"\n{line}\n")
    done = _lint(tmp_path)
    assert done.returncode == 1, done.stdout
    assert f"{contract}" in done.stdout and "BROKEN" in done.stdout
    assert offender in done.stdout


# pytest-benchmark's undocumented parts: its session object, its option attributes, its
# fixture requested by name and driven in pedantic mode.
_INTERNALS = {"_benchmarksession", "benchmark_storage", "benchmark_compare", "benchmark_compare_fail",
              "benchmark_disable", "benchmark_save", "benchmark_autosave", "pedantic", "compared_mapping"}


def test_only_the_adapter_touches_pytest_benchmark_internals() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "benchmark_adapter.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in _INTERNALS:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.Constant) and node.value in ({"benchmark"} | _INTERNALS):
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value!r}")
    assert found == []


def test_every_folder_says_its_job_in_one_line() -> None:
    folders = sorted(path.parent for path in PACKAGE.glob("*/__init__.py"))
    assert len(folders) >= 10
    for folder in folders:
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
        assert doc and "\n" not in doc.strip(), f"{folder.name}/__init__.py needs a one-line docstring"
