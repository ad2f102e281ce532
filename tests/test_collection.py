"""The plugin as users meet it before anything runs: collection, markers, selection, --help."""

from __future__ import annotations

import fnmatch
import json

import pytest

HEAVY = ("torch", "diffusers", "transformers", "openvino", "optimum")

RECORD_MODULES = f'''
import json, sys

def pytest_collection_finish(session):
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
    with open("modules.json", "w") as handle:
        json.dump(heavy, handle)
'''


def test_collection_imports_no_heavy_library(latency_suite: pytest.Pytester) -> None:
    latency_suite.makeconftest(RECORD_MODULES)
    result = latency_suite.runpytest_subprocess("--collect-only", "-q")
    result.assert_outcomes()
    result.stdout.fnmatch_lines(["*test_latency?cpu-fp32?*"])
    heavy = json.loads((latency_suite.path / "modules.json").read_text())
    assert heavy == [], f"collection imported {heavy}"


def test_marker_selection_imports_no_heavy_library(latency_suite: pytest.Pytester) -> None:
    latency_suite.makeconftest(RECORD_MODULES)
    result = latency_suite.runpytest_subprocess("--collect-only", "-q", "-m", "pi5")
    result.stdout.fnmatch_lines(["*test_latency?pi5-fp32?*", "*test_latency?pi5-omp4_openblas1?*", "*5/* tests collected*"])
    assert json.loads((latency_suite.path / "modules.json").read_text()) == []


def test_markers_are_registered_with_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    for marker in ("pi4", "pi5", "sapphire_rapids", "cuda_lowvram", "cpu"):
        result.stdout.fnmatch_lines([f"@pytest.mark.{marker}: *"])


def test_help_lists_every_option_in_one_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["Stable Diffusion performance suite:*"])
    for option in ("model", "profile", "recipes", "rounds", "warmup", "timeout", "progress", "profiles-file"):
        result.stdout.fnmatch_lines([f"*--sdperf-{option}*"])


def test_profile_of_another_host_is_skipped_with_the_reason(latency_suite: pytest.Pytester) -> None:
    result = latency_suite.runpytest("-m", "pi5", "--sdperf-recipes=fp32", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*profile pi5 does not run here (host detected as *--sdperf-profile pi5*"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--sdperf-rounds", "0"], "*--sdperf-rounds: '0' is not valid; give a whole number >= 1*"),
        (["--sdperf-timeout", "soon"], "*--sdperf-timeout: 'soon' is not valid; give a number*"),
        (["--sdperf-vram-cap", "6GB"], "*--sdperf-vram-cap: '6GB' is not valid; give a whole number >= 1*"),
        (["--sdperf-profile", "pi6"], "*--sdperf-profile: profile 'pi6' is unknown; known: pi4, pi5, sapphire_rapids*"),
        (["--sdperf-recipes", "fp32,turbo"], "*--sdperf-recipes: recipe(s) 'turbo' unknown; known: *fp32*"),
        (["--sdperf-model", "/nowhere/sd15"], "*--sdperf-model: model '/nowhere/sd15' is neither a built-in model*"),
        (["--sdperf-model", "builtin:sd4"], "*--sdperf-model: 'builtin:sd4' is not a built-in model; built-in: "
         "builtin:tiny-sd15, builtin:tiny-sd3, builtin:sd15, builtin:sd3-medium (list them: sdperf models)*"),
    ],
)
def test_bad_option_names_value_source_and_choices(
    latency_suite: pytest.Pytester, arguments: list[str], message: str
) -> None:
    result = latency_suite.runpytest("--collect-only", *arguments)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_bad_ini_value_names_the_ini_key(latency_suite: pytest.Pytester) -> None:
    latency_suite.makeini("[pytest]\nsdperf_rounds = many\n")
    result = latency_suite.runpytest("--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini key sdperf_rounds in tox.ini: 'many' is not valid*"])


def test_bad_override_is_blamed_on_the_option_not_the_ini_file(latency_suite: pytest.Pytester) -> None:
    latency_suite.makeini("[pytest]\n")
    result = latency_suite.runpytest("--collect-only", "-o", "sdperf_rounds=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*-o sdperf_rounds: '0' is not valid*"])


def test_unknown_recipe_lists_the_recipes_users_pick_from(latency_suite: pytest.Pytester) -> None:
    result = latency_suite.runpytest("--collect-only", "--sdperf-recipes=nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*recipe(s) 'nope' unknown; known: *fp32*"])
    assert "testonly" not in result.stderr.str()


def test_model_folder_without_index_is_refused(latency_suite: pytest.Pytester) -> None:
    folder = latency_suite.mkdir("not-a-model")
    result = latency_suite.runpytest("--collect-only", f"--sdperf-model={folder}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*has no model_index.json; point it at a diffusers pipeline folder*"])


FAKE_NVIDIA_SMI = "#!/bin/sh\necho called >> \"$NVIDIA_SMI_CALLS\"\nexit 1\n"


def test_help_and_a_run_that_keeps_nothing_never_run_nvidia_smi(
    latency_suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = latency_suite.mkdir("bin")
    (bin_dir / "nvidia-smi").write_text(FAKE_NVIDIA_SMI)
    (bin_dir / "nvidia-smi").chmod(0o755)
    calls = latency_suite.path / "calls.txt"
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("NVIDIA_SMI_CALLS", str(calls))
    latency_suite.runpytest("--help").stdout.fnmatch_lines(["*--sdperf-model*"])
    latency_suite.runpytest("--collect-only", "-q", "-m", "cpu")
    assert not calls.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--benchmark-disable"], "*--benchmark-disable: sdperf cases are benchmarks*runs one round and records nothing*"),
        (["--numprocesses=2"], "*-n 2 (pytest-xdist): pytest-benchmark disables itself under xdist*run without -n*"),
    ],
)
def test_modes_that_would_leave_one_unsaved_round_are_refused(
    latency_suite: pytest.Pytester, options: list[str], message: str
) -> None:
    # xdist is not installed here: a conftest adds its option as xdist does.
    latency_suite.makeconftest('def pytest_addoption(parser):\n    parser.addoption("--numprocesses", dest="numprocesses")\n')
    result = latency_suite.runpytest("--collect-only", *options)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_histogram_without_its_drawing_library_is_refused_at_start(
    latency_suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pygal is a plot-extra dependency (installed here): hide it as a plain install lacks it.
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pygal" else find_spec(name, *a))
    result = latency_suite.runpytest("--collect-only", "--benchmark-histogram=h")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--benchmark-histogram: pytest-benchmark draws it with pygal, not installed here*"])


RECORD_SKIPS = """
import json

def pytest_collection_finish(session):
    skips = {item.name: [m.kwargs.get("reason") for m in item.iter_markers("skip")] for item in session.items}
    lent = [item.name for item in session.items if "benchmark" in item.fixturenames]
    with open("skips.json", "w") as handle:
        json.dump({"skips": skips, "benchmark_fixture": lent}, handle)
"""


@pytest.mark.parametrize(("option", "skipped"), [("--benchmark-only", "test_plain"), ("--benchmark-skip", "test_latency[*")])
def test_benchmark_only_and_skip_treat_sdperf_cases_as_benchmarks(
    latency_suite: pytest.Pytester, option: str, skipped: str
) -> None:
    latency_suite.makepyfile(test_plain="def test_plain():\n    pass\n")
    latency_suite.makeconftest(RECORD_SKIPS)
    latency_suite.runpytest("--collect-only", "-q", "--sdperf-recipes=fp32", "-m", "cpu or not pi5 and not pi4", option)
    recorded = json.loads((latency_suite.path / "skips.json").read_text())
    skipped_here = {name for name, reasons in recorded["skips"].items() if reasons}
    assert skipped_here == {name for name in recorded["skips"] if fnmatch.fnmatch(name, skipped)}, recorded
    # The `benchmark` name lent to pytest-benchmark's hook is taken back: no fixture is set up early.
    assert recorded["benchmark_fixture"] == []


RECORD_QUIET = """
def pytest_collection_finish(session):
    with open("quiet.txt", "w") as handle:
        handle.write(str(session.config._benchmarksession.quiet))
"""


@pytest.mark.parametrize(("options", "quiet"), [([], "True"), (["--benchmark-columns=min,median"], "False")])
def test_pytest_benchmark_table_only_when_one_of_its_options_is_given(
    latency_suite: pytest.Pytester, options: list[str], quiet: str
) -> None:
    # sdperf's table holds what pytest-benchmark's would: one table, unless the user asks for its own.
    latency_suite.makeconftest(RECORD_QUIET)
    latency_suite.runpytest("--collect-only", "-q", *options)
    assert (latency_suite.path / "quiet.txt").read_text() == quiet


def test_checks_run_after_the_benchmarks_whose_images_they_judge(pytester: pytest.Pytester) -> None:
    from conftest import REPO

    # Collected in this order (names apart from this folder's own test modules: in-process).
    for name in ("test_correctness.py", "test_latency.py"):
        pytester.makepyfile(**{"test_perf_" + name[5:-3]: (REPO / "perf" / name).read_text()})
    result = pytester.runpytest("--collect-only", "-q", "-m", "cpu", "--sdperf-recipes=fp32,dpm_solver")
    order = [line.split("::")[1].split("[")[0] for line in result.stdout.lines if "::" in line]
    assert order == ["test_latency"] * 2 + ["test_determinism"] * 2 + ["test_fidelity"] * 2
