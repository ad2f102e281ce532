"""The GitHub Actions workflows (.github/workflows), checked offline: GitHub's schema,
zizmor's security audits, the structural rules that are easy to break, and every
command they run against what this repository defines (pytest options and markers,
`sdperf` subcommands, make targets), since none of it runs until a runner picks it up."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import itertools
import math
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sdperf.config.profiles import Profile, RunSize, load_profiles
from sdperf.config.recipes import REGISTRY
from sdperf.pytest_plugin.hooks import MARKERS
from sdperf.pytest_plugin.options import OPTIONS

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent  # the venv's tools, beside its python

# Self-hosted runner label -> the pytest marker of its hardware profile.
RUNNER_PROFILES = {"pi4": "pi4", "pi5": "pi5", "sapphire-rapids": "sapphire_rapids", "cuda-lowvram": "cuda_lowvram"}
SHA_PIN = re.compile(r"^\s*(?:-\s+)?uses:\s*([^@\s]+)@(\S+)(?:\s+#\s*(\S+))?\s*$")
MATRIX_REFERENCE = re.compile(r"\$\{\{\s*matrix\.(\w+)\s*\}\}")
SHELL_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
SHELL_KEYWORDS = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "!", "{", "}", "time",
                  "exec"}
SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", ";;"}
REDIRECTIONS = {">", ">>", "<", "<<", "<<<", ">&", "<&", ">|", "&>", "&>>"}


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    """The `on:` mapping (YAML 1.1, which PyYAML reads, makes the bare key `on` a boolean)."""
    found = workflow.get("on", workflow.get(True))
    if isinstance(found, str):
        return {found: None}
    if isinstance(found, list):
        return dict.fromkeys(found)
    return found or {}


# ---------------------------------------------------------------------------------------
# What the repository defines


@functools.cache
def sdperf_options() -> frozenset[str]:
    return frozenset({f"--sdperf-{suffix}" for suffix, _help, _ini in OPTIONS} | {"--sdperf-record-golden"})


class _OptionRecorder:
    """Stands in for pytest's parser and its groups: records the long option names a
    plugin's `pytest_addoption` adds."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def getgroup(self, *args: Any, **kwargs: Any) -> _OptionRecorder:
        return self

    def addoption(self, *names: str, **kwargs: Any) -> None:
        self.names.update(name for name in names if name.startswith("--"))

    def addini(self, *args: Any, **kwargs: Any) -> None:
        pass


@functools.cache
def benchmark_options() -> frozenset[str]:
    from pytest_benchmark import plugin

    recorder = _OptionRecorder()
    plugin.pytest_addoption(recorder)
    return frozenset(name for name in recorder.names if name.startswith("--benchmark-"))


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return {name for name in re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", text, re.MULTILINE) if not name.startswith(".")}


# ---------------------------------------------------------------------------------------
# The checker: commands of a `run:` script, and what is wrong with them


def commands(script: str) -> list[list[str]]:
    """The simple commands of a shell script as words: line continuations joined,
    comments, redirections and variable assignments dropped, leading keywords
    (`if`, `then`, `!`) removed."""
    found: list[list[str]] = []
    for line in script.replace("\\\n", " ").splitlines():
        line = re.sub(r"(^|\s)\d+(?=[<>])", r"\1", line)  # 2>&1, 2>/dev/null: the descriptor is no word
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            tokens = list(lexer)
        except ValueError as error:  # an unbalanced quote: the checker must not guess
            raise ValueError(f"cannot split shell line {line!r}: {error}") from None
        current: list[str] = []
        skip_next = False
        for token in [*tokens, ";"]:
            if skip_next:
                skip_next = False
            elif token in SEPARATORS:
                if current:
                    found.append(current)
                current = []
            elif token in REDIRECTIONS:
                skip_next = True  # and its file (or descriptor)
            elif not current and (token in SHELL_KEYWORDS or re.fullmatch(r"\w+=.*", token)):
                continue
            else:
                current.append(token)
    return found


def expand(word: str, env: dict[str, str]) -> str:
    """`$NAME` and `${NAME}` replaced by their values in `env`; unknown names stay."""
    return SHELL_VARIABLE.sub(lambda m: env.get(m.group(1) or m.group(2), m.group(0)), word)


def marker_problems(expression: str, where: str) -> list[str]:
    if "$" in expression:
        return [f"{where}: marker expression {expression!r} cannot be resolved to marker names"]
    names = set(re.findall(r"[A-Za-z_]\w*", expression)) - {"and", "or", "not"}
    return [
        f"{where}: marker {name!r} is not registered; registered: {', '.join(MARKERS)}"
        for name in sorted(names - set(MARKERS))
    ]


def pytest_problems(arguments: list[str], where: str) -> list[str]:
    problems = []
    known = {"--sdperf-": sdperf_options(), "--benchmark-": benchmark_options()}
    for index, argument in enumerate(arguments):
        name = argument.split("=", 1)[0]
        for prefix, options in known.items():
            if name.startswith(prefix) and name not in options:
                problems.append(f"{where}: option {name} is not defined; defined: {', '.join(sorted(options))}")
        if argument == "-m":
            if index + 1 == len(arguments):
                problems.append(f"{where}: -m without a marker expression")
            else:
                problems += marker_problems(arguments[index + 1], where)
        elif argument.startswith("-m") and not argument.startswith("--"):
            problems += marker_problems(argument[2:], where)
    return problems


def sdperf_problems(arguments: list[str], where: str) -> list[str]:
    from sdperf.cli.main import _parser

    parser = _parser()
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            parsed, rest = parser.parse_known_args(arguments)
    except SystemExit:
        said = errors.getvalue().strip().splitlines()
        reason = said[-1].removeprefix(f"{parser.prog}: error: ") if said else "rejected"
        return [f"{where}: sdperf {shlex.join(arguments)}: {reason}"]
    if getattr(parsed, "passes_unknown", False):  # `sdperf ab`: the rest goes to pytest
        return pytest_problems(rest, f"{where} (sdperf {parsed.command})")
    if rest:
        return [f"{where}: sdperf {parsed.command}: unrecognized arguments {shlex.join(rest)}"]
    return []


def program(words: list[str]) -> tuple[str, list[str]] | None:
    """Which of our tools a command runs (pytest, sdperf, make) and its arguments."""
    name = Path(words[0]).name
    if name == "make":
        return "make", words[1:]
    if name in ("pytest", "py.test"):
        return "pytest", words[1:]
    if name == "sdperf":
        return "sdperf", words[1:]
    if re.fullmatch(r"python(3(\.\d+)?)?", name) and len(words) > 2 and words[1] == "-m":
        module = {"pytest": "pytest", "sdperf.cli": "sdperf"}.get(words[2])
        if module:
            return module, words[3:]
    return None


def script_problems(
    script: str, env: dict[str, str] | None = None, where: str = "script"
) -> tuple[list[str], list[str]]:
    """What is wrong with the pytest, sdperf and make commands of a `run:` script, with its
    variables taken from `env`; also which tools it ran, so a check cannot pass vacuously."""
    env = env or {}
    problems: list[str] = []
    seen: list[str] = []
    targets = make_targets()
    for words in commands(script):
        found = program([expand(word, env) for word in words])
        if found is None:
            continue
        tool, arguments = found
        here = f"{where}: {tool}"
        if tool == "make":
            named = [a for a in arguments if not a.startswith("-") and "=" not in a]
            seen += [f"make {target}" for target in named]
            problems += [f"{here}: target {t!r} is not in the Makefile; targets: {', '.join(sorted(targets))}"
                         for t in named if t not in targets]
        elif tool == "pytest":
            seen.append("pytest")
            problems += pytest_problems(arguments, here)
        else:
            seen.append(f"sdperf {arguments[0]}" if arguments else "sdperf")
            problems += sdperf_problems(arguments, here)
    return problems, seen


# ---------------------------------------------------------------------------------------
# Walking the workflows


def matrix_entries(job: dict[str, Any]) -> list[dict[str, Any]]:
    """The job's matrix combinations (axes crossed, then `include` entries); [{}] when none."""
    matrix = (job.get("strategy") or {}).get("matrix") or {}
    axes = {key: values for key, values in matrix.items() if key not in ("include", "exclude")}
    entries = [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())] if axes else []
    entries += [dict(entry) for entry in matrix.get("include", [])]
    return entries or [{}]


def with_matrix(value: Any, entry: dict[str, Any]) -> str:
    return MATRIX_REFERENCE.sub(lambda m: str(entry.get(m.group(1), m.group(0))), str(value))


def run_steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], str, dict[str, str]]]:
    """(job id, matrix entry, script, environment) for every `run:` step and matrix entry."""
    for job_id, job in workflow["jobs"].items():
        for entry in matrix_entries(job):
            for step in job.get("steps", []):
                if "run" not in step:
                    continue
                env = {**(workflow.get("env") or {}), **(job.get("env") or {}), **(step.get("env") or {})}
                yield job_id, entry, step["run"], {key: with_matrix(value, entry) for key, value in env.items()}


def self_hosted_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path in workflow_files():
        for job_id, job in load(path)["jobs"].items():
            if "self-hosted" in (job.get("runs-on") or []):
                found.append((path.name, job_id, job))
    return found


# ---------------------------------------------------------------------------------------
# Tools


def test_there_are_the_three_workflows() -> None:
    assert [path.name for path in workflow_files()] == ["ci.yml", "deps-gate.yml", "nightly.yml"]


def _tool(name: str) -> str:
    tool = BIN / name
    if not tool.exists():
        pytest.fail(f"{tool} is missing: it comes with the dev extra; run `make setup`")
    return str(tool)


def test_workflows_match_githubs_schema() -> None:
    done = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, workflow_files())],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_finds_nothing() -> None:
    # --offline: only the audits that need no GitHub API (no network here or in CI).
    # Its default policy (since 1.20) wants every `uses:` pinned to a commit hash.
    done = subprocess.run(
        [_tool("zizmor"), "--offline", "--no-progress", "--color=never", "--format=plain", str(WORKFLOWS)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert done.returncode == 0, f"zizmor exited {done.returncode}:\n{done.stdout}\n{done.stderr}"


# ---------------------------------------------------------------------------------------
# The commands


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_every_command_a_workflow_runs_exists(path: Path) -> None:
    problems: list[str] = []
    seen: set[str] = set()
    for job_id, entry, script, env in run_steps(load(path)):
        where = f"{path.name} job {job_id}" + (f" ({', '.join(f'{k}={v}' for k, v in entry.items())})" if entry else "")
        found, ran = script_problems(script, env, where)
        problems += found
        seen.update(ran)
    assert not problems, "\n".join(problems)
    expected = {
        "ci.yml": {"make test"},
        "nightly.yml": {"make setup", "pytest", "sdperf history", "sdperf dashboard", "sdperf promote"},
        "deps-gate.yml": {"make setup", "sdperf ab", "sdperf culprit"},
    }[path.name]
    assert expected <= seen, f"{path.name}: expected {sorted(expected)} among the commands, found {sorted(seen)}"


def test_the_checker_accepts_a_correct_script() -> None:
    script = """
        set -euo pipefail
        make setup
        .venv/bin/python -m pytest perf -m "$MARKER" --benchmark-compare --benchmark-json=out.json \\
          --sdperf-model "$SDPERF_MODEL" --sdperf-record-golden > log.txt 2>&1
        if ! .venv/bin/sdperf promote run.json --root . --label x; then exit 1; fi
        sdperf ab a.txt b.txt -m 'pi5 or cuda_lowvram' --sdperf-recipes fp32 --benchmark-json ab.json
    """
    problems, seen = script_problems(script, {"MARKER": "pi4"})
    assert problems == []
    assert seen == ["make setup", "pytest", "sdperf promote", "sdperf ab"]


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("pytest perf --sdperf-nonsense 3", "option --sdperf-nonsense is not defined"),
        (".venv/bin/python -m pytest --benchmark-comapre", "option --benchmark-comapre is not defined"),
        ("pytest -m pi6", "marker 'pi6' is not registered"),
        ("pytest -m 'pi5 and not sapphire-rapids'", "marker 'sapphire' is not registered"),
        ('pytest -m "$MARKER"', "cannot be resolved"),
        ("cd x && .venv/bin/sdperf frobnicate run.json", "invalid choice: 'frobnicate'"),
        ("sdperf promote run.json --force", "unrecognized arguments --force"),
        ("sdperf ab a.txt b.txt -m pi5 --sdperf-nonsense", "(sdperf ab): option --sdperf-nonsense is not defined"),
        ("python3 -m sdperf.cli trend", "the following arguments are required"),
        ("make setup && make deploy", "target 'deploy' is not in the Makefile"),
    ],
)
def test_the_checker_catches(script: str, expected: str) -> None:
    problems, _seen = script_problems(script)
    assert any(expected in problem for problem in problems), problems


def test_the_checker_reads_shell_as_the_shell_does() -> None:
    script = (
        "# make nonsense\nFOO=1 make test 2>&1  # a comment\n"
        "echo pytest --sdperf-nonsense >/dev/null; ! make setup"
    )
    assert commands(script) == [["make", "test"], ["echo", "pytest", "--sdperf-nonsense"], ["make", "setup"]]
    assert script_problems(script)[0] == []


# ---------------------------------------------------------------------------------------
# Self-hosted machines


def test_self_hosted_jobs_cover_each_profile_on_its_runner() -> None:
    jobs = self_hosted_jobs()
    assert {(name, job_id) for name, job_id, _ in jobs} == {("nightly.yml", "bench"), ("deps-gate.yml", "ab")}
    for name, job_id, job in jobs:
        assert job["runs-on"] == ["self-hosted", "${{ matrix.label }}"], f"{name} {job_id}"
        entries = matrix_entries(job)
        labels = [entry["label"] for entry in entries]
        assert sorted(labels) == sorted(RUNNER_PROFILES), f"{name} {job_id}: runner labels {labels}"
        for entry in entries:
            assert entry["marker"] == RUNNER_PROFILES[entry["label"]], f"{name} {job_id}: {entry}"
            assert entry["marker"] in MARKERS
            assert isinstance(entry["timeout"], int) and entry["timeout"] > 0, f"{name} {job_id}: {entry}"
        assert job["strategy"]["fail-fast"] is False, f"{name} {job_id}: a failing machine must not cancel the others"


def test_gate_timeouts_allow_twice_the_nightly_images() -> None:
    # The nightly's own timeouts are checked against their real-weights plan below.
    nightly = {e["label"]: e["timeout"] for e in matrix_entries(load(WORKFLOWS / "nightly.yml")["jobs"]["bench"])}
    gate = {e["label"]: e["timeout"] for e in matrix_entries(load(WORKFLOWS / "deps-gate.yml")["jobs"]["ab"])}
    assert all(gate[label] >= 2 * nightly[label] for label in RUNNER_PROFILES), (gate, nightly)


def test_a_failed_gate_searches_for_the_culprit_from_its_own_run_within_the_jobs_time() -> None:
    job = load(WORKFLOWS / "deps-gate.yml")["jobs"]["ab"]
    steps = job["steps"]
    ab = step_index(steps, lambda step: step.get("name") == "A/B")
    culprit = step_index(steps, lambda step: step.get("name") == "Culprit search")
    upload = step_index(steps, lambda step: step.get("name") == "Upload results")
    assert ab < culprit < upload
    assert steps[ab]["id"] == "ab" and steps[culprit]["if"] == "failure() && steps.ab.outcome == 'failure'"
    [gate] = sdperf_words(steps[ab])
    [search] = sdperf_words(steps[culprit])
    # The same locks and selection, from the A/B's saved run, its reports in the uploaded folder.
    assert search[2:4] == gate[2:4] == ["base-constraints.txt", "constraints.txt"]
    assert search[search.index("--from-run") + 1] == gate[gate.index("--benchmark-json") + 1]
    for option in ("-m", "--sdperf-model", "--sdperf-recipes"):
        assert search[search.index(option) + 1] == gate[gate.index(option) + 1]
    assert all(search[search.index(option) + 1].startswith("$RESULTS/") for option in ("--json", "--markdown", "--dir"))
    assert job["timeout-minutes"] == "${{ matrix.job_timeout }}"
    assert steps[ab]["timeout-minutes"] == "${{ matrix.timeout }}"
    assert steps[culprit]["timeout-minutes"] == "${{ matrix.culprit_timeout }}"
    for entry in matrix_entries(job):
        assert entry["culprit_timeout"] >= 4 * entry["timeout"], entry
        assert entry["job_timeout"] == entry["timeout"] + entry["culprit_timeout"] + 30, entry


def test_gate_recipes_come_from_a_variable_defaulting_to_the_control() -> None:
    profiles = load_profiles()
    for entry in matrix_entries(load(WORKFLOWS / "deps-gate.yml")["jobs"]["ab"]):
        marker = entry["marker"]
        match = re.fullmatch(r"\$\{\{ vars\.(\w+) \|\| '(\w+)' \}\}", entry["recipes"])
        assert match, f"{marker}: recipes {entry['recipes']!r}"
        assert match.group(1) == f"SDPERF_GATE_RECIPES_{marker.upper()}"
        assert match.group(2) == profiles[marker].control


def test_the_gate_never_runs_code_from_forks() -> None:
    workflow = load(WORKFLOWS / "deps-gate.yml")
    assert set(triggers(workflow)) == {"pull_request"}
    assert triggers(workflow)["pull_request"]["paths"] == ["constraints.txt"]
    guard = "github.event.pull_request.head.repo.full_name == github.repository"
    for job_id, job in workflow["jobs"].items():
        assert job.get("if") == guard, f"deps-gate.yml job {job_id} lacks the fork guard"


def test_no_workflow_uses_pull_request_target_or_workflow_run() -> None:
    for path in workflow_files():
        assert not {"pull_request_target", "workflow_run"} & set(triggers(load(path))), path.name


# ---------------------------------------------------------------------------------------
# Triggers


def test_nightly_runs_on_a_schedule_and_on_demand_with_an_off_by_default_promote() -> None:
    on = triggers(load(WORKFLOWS / "nightly.yml"))
    assert on["schedule"] and all("cron" in entry for entry in on["schedule"])
    promote = on["workflow_dispatch"]["inputs"]["promote"]
    assert promote["type"] == "boolean" and promote["default"] is False


def test_ci_runs_the_readme_test_command_with_the_cpu_torch_index() -> None:
    workflow = load(WORKFLOWS / "ci.yml")
    assert {"push", "pull_request"} <= set(triggers(workflow))
    job = workflow["jobs"]["test"]
    assert job["runs-on"] == "ubuntu-latest"
    assert job["env"]["PIP_EXTRA_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    setup = [step for step in job["steps"] if "setup-python" in step.get("uses", "")]
    assert setup and str(setup[0]["with"]["python-version"]) == "3.11"
    assert [step["run"].strip() for step in job["steps"] if "run" in step] == ["make test"]


# ---------------------------------------------------------------------------------------
# Least privilege and pinning


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_permissions_are_least_privilege(path: Path) -> None:
    workflow = load(path)
    assert "permissions" in workflow, f"{path.name}: no top-level permissions (the default may grant write)"
    top = workflow["permissions"]
    assert isinstance(top, dict) and all(value in ("read", "none") for value in top.values()), f"{path.name}: {top}"
    for job_id, job in workflow["jobs"].items():
        grants = job.get("permissions", {})
        assert isinstance(grants, dict), f"{path.name} job {job_id}: permissions {grants!r}"
        writes = {scope for scope, value in grants.items() if value == "write"}
        allowed = {
            ("nightly.yml", "promote"): {"contents", "pull-requests"},
            ("nightly.yml", "pages"): {"pages", "id-token"},
        }.get((path.name, job_id), set())
        assert writes <= allowed, f"{path.name} job {job_id} may write {sorted(writes - allowed)}"


def test_baselines_are_promoted_only_through_a_pull_request_per_profile() -> None:
    jobs = load(WORKFLOWS / "nightly.yml")["jobs"]
    promote = jobs["promote"]
    assert promote["permissions"] == {"contents": "write", "pull-requests": "write"}
    assert promote["runs-on"] == "ubuntu-latest"
    assert promote["needs"] == "bench"
    assert promote["if"] == "inputs.promote && needs.bench.result == 'success'"
    assert sorted(entry["marker"] for entry in matrix_entries(promote)) == sorted(RUNNER_PROFILES.values())
    uploaded = [s["with"]["name"] for s in jobs["bench"]["steps"] if "upload-artifact" in s.get("uses", "")]
    downloaded = [s["with"]["name"] for s in promote["steps"] if "download-artifact" in s.get("uses", "")]
    assert uploaded == downloaded == ["nightly-${{ matrix.marker }}"]
    script = next(step["run"] for step in promote["steps"] if "sdperf promote" in step.get("run", ""))
    assert 'branch="baseline/${PROFILE}-${RUN_ID}"' in script and "gh pr create" in script
    assert not re.search(r"git push\b.*\b(main|master|HEAD|\$BASE)\b", script), "never a direct push to the base"


def test_every_action_is_pinned_to_a_commit_with_its_version() -> None:
    pins: dict[str, set[tuple[str, str]]] = {}
    for path in workflow_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not re.match(r"^\s*(-\s+)?uses:", line):
                continue
            match = SHA_PIN.match(line)
            assert match, f"{path.name}:{number}: cannot read {line.strip()!r}"
            action, ref, version = match.groups()
            assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{path.name}:{number}: {action}@{ref} is not a full commit SHA"
            assert version and re.fullmatch(r"v\d+\.\d+\.\d+", version), (
                f"{path.name}:{number}: {action}@{ref} needs its release as a trailing comment (# v1.2.3)"
            )
            pins.setdefault(action, set()).add((ref, version))
    assert pins, "no `uses:` found"
    assert all(len(found) == 1 for found in pins.values()), f"one action at different commits: {pins}"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_jobs_have_timeouts_and_checkouts_keep_no_credentials(path: Path) -> None:
    for job_id, job in load(path)["jobs"].items():
        timeout = job.get("timeout-minutes")
        assert timeout is not None, f"{path.name} job {job_id} has no timeout-minutes"
        for entry in matrix_entries(job):
            assert with_matrix(timeout, entry).isdigit(), f"{path.name} job {job_id}: timeout {timeout!r} with {entry}"
        for step in job.get("steps", []):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, f"{path.name} job {job_id}"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_run_scripts_expand_no_expressions(path: Path) -> None:
    # Values reach scripts through `env:`; `${{ }}` in a script is pasted in before the
    # shell parses it, so an attacker-chosen branch name or title would become code.
    for job_id, _entry, script, _env in run_steps(load(path)):
        assert "${{" not in script, f"{path.name} job {job_id}: {script}"


# ---------------------------------------------------------------------------------------
# Timeouts: each nightly job against its profile's real-weights plan, and the runners' limits

# The plan's margin for worker start and loading (each case starts fresh workers), `make
# setup` and the history steps: a quarter more than the images take, plus 15 minutes.
PLAN_MARGIN = 1.25
PLAN_SETUP_MIN = 15
# GitHub-hosted runners end a job after 6 hours; self-hosted ones after 5 days ("Usage limits",
# docs.github.com: actions/reference/limits and usage-limits-for-self-hosted-runners).
GITHUB_HOSTED_LIMIT_MIN = 6 * 60
SELF_HOSTED_LIMIT_MIN = 5 * 24 * 60
PI_REPORT = ("Raspberry Pi 4B vs 5 blog post, February 2024 (script of straczowski/raspberry-pi-stable-diffusion); "
             "shared/reference/workloads.md")


@dataclasses.dataclass(frozen=True)
class Figure:
    """A published time for one image of a profile's workload."""

    recipe: str | None  # None: the report does not say which settings
    seconds: float
    label: str
    source: str


# Published figures of these workloads that profiles.toml does not carry as references: the
# Pi 5's slower thread settings, and the Pi 4 time the script's own repository quoted. The
# plan takes the slowest figure of a profile, so leaving them out would make it optimistic.
PUBLISHED_ELSEWHERE = {
    "pi5": (
        Figure("threads_unset", 32 * 60, "no thread variables set: about 32 min", PI_REPORT),
        Figure("omp1", 28 * 60 + 3, "OMP_NUM_THREADS=1: 28 min 03 s", PI_REPORT),
        Figure("omp1_openblas4", 26 * 60 + 53, "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=4: 26 min 53 s", PI_REPORT),
    ),
    "pi4": (
        Figure(None, 45 * 60, "about 45 min, as the original repository quoted", PI_REPORT),
    ),
}


def published_figures(profile: Profile) -> list[Figure]:
    figures = [Figure(ref.recipe, ref.latency_s, ref.label, ref.source) for ref in profile.references]
    return figures + list(PUBLISHED_ELSEWHERE.get(profile.name, ()))


def nightly_recipes(profile: Profile) -> list[str]:
    """The profile's recipes a nightly run draws: made for the profile, on its control's device
    (CUDA recipes on cuda_lowvram, CPU ones elsewhere)."""
    device = REGISTRY[profile.control].device
    return [name for name in profile.recipes if profile.name in REGISTRY[name].profiles and REGISTRY[name].device == device]


@dataclasses.dataclass(frozen=True)
class Plan:
    profile: str
    recipes: int
    rounds: int
    warmup: int
    workers: int
    slowest: Figure

    @property
    def images_per_recipe(self) -> int:
        # Each worker warms up before its share of the rounds (sdperf.pytest_plugin.latency).
        return self.rounds + self.warmup * self.workers

    @property
    def images_min(self) -> float:
        return self.recipes * self.images_per_recipe * self.slowest.seconds / 60

    @property
    def minutes(self) -> int:
        return math.ceil(self.images_min * PLAN_MARGIN + PLAN_SETUP_MIN)

    def arithmetic(self) -> str:
        return (
            f"{self.recipes} recipes x {self.images_per_recipe} images ({self.rounds} rounds + {self.warmup} warm-up x "
            f"{self.workers} worker(s)) x {self.slowest.seconds:g} s ({self.slowest.recipe or 'settings not stated'}: "
            f"{self.slowest.label}; {self.slowest.source}) = {self.images_min:.1f} min; "
            f"x {PLAN_MARGIN} + {PLAN_SETUP_MIN} min = {self.minutes} min"
        )


def real_weights_plan(profile: Profile) -> Plan:
    """The minutes a nightly run of `profile` on real weights may take, at the slowest published
    time per image. Raises LookupError, naming the profile, when it has no published figure."""
    figures = published_figures(profile)
    if not figures:
        raise LookupError(
            f"profile {profile.name} has no published time per image: add one with its source "
            f"([[profiles.{profile.name}.reference]] in sdperf/config/profiles.toml) so its nightly timeout can be checked"
        )
    run: RunSize = profile.run_size_for(scaled_down=False)
    workers = math.ceil(run.rounds / run.rounds_per_worker)  # as the rounds rotate through fresh workers
    return Plan(profile.name, len(nightly_recipes(profile)), run.rounds, run.warmup, workers,
                max(figures, key=lambda figure: figure.seconds))


@pytest.mark.parametrize(
    "entry", matrix_entries(load(WORKFLOWS / "nightly.yml")["jobs"]["bench"]), ids=lambda entry: entry["marker"]
)
def test_each_nightly_timeout_covers_its_real_weights_plan(entry: dict[str, Any]) -> None:
    profile = load_profiles()[entry["marker"]]
    try:
        plan = real_weights_plan(profile)
    except LookupError as error:
        pytest.fail(str(error), pytrace=False)
    assert plan.recipes > 0, f"{profile.name}: no recipe of the profile runs there"
    assert entry["timeout"] >= plan.minutes, (
        f"nightly.yml {profile.name}: timeout-minutes {entry['timeout']} is shorter than its real-weights plan: "
        f"{plan.arithmetic()}"
    )


def test_the_plan_counts_each_workers_warm_ups_and_the_slowest_figure() -> None:
    profiles = load_profiles()
    xeon = profiles["sapphire_rapids"]
    spread = real_weights_plan(dataclasses.replace(xeon, real=RunSize(rounds=10, warmup=2, timeout_s=60, workers=3)))
    assert (spread.workers, spread.images_per_recipe) == (3, 10 + 2 * 3)  # rounds 4, 4, 2: three warm-ups
    one_round = real_weights_plan(dataclasses.replace(xeon, real=RunSize(rounds=1, warmup=1, timeout_s=60, workers=2)))
    assert one_round.images_per_recipe == 2  # one round: one worker, one warm-up
    lowvram = real_weights_plan(profiles["cuda_lowvram"])
    assert lowvram.slowest.seconds == max(ref.latency_s for ref in profiles["cuda_lowvram"].references)
    assert lowvram.recipes == len(profiles["cuda_lowvram"].recipes)
    assert {REGISTRY[name].device for name in nightly_recipes(profiles["cuda_lowvram"])} == {"cuda"}
    assert {REGISTRY[name].device for name in nightly_recipes(xeon)} == {"cpu"}
    with pytest.raises(LookupError, match="profile sapphire_rapids has no published time per image"):
        real_weights_plan(dataclasses.replace(xeon, references=()))


def test_published_figures_kept_here_name_recipes_of_their_profile() -> None:
    profiles = load_profiles()
    for name, figures in PUBLISHED_ELSEWHERE.items():
        for figure in figures:
            assert figure.recipe is None or figure.recipe in profiles[name].recipes, (name, figure)
            assert figure.seconds > 0 and figure.source


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_job_timeouts_stay_within_their_runners_limit(path: Path) -> None:
    # 6 hours binds GitHub-hosted jobs only; a self-hosted job may run for up to 5 days.
    for job_id, job in load(path)["jobs"].items():
        runs_on = job.get("runs-on")
        hosted = "self-hosted" not in (runs_on if isinstance(runs_on, list) else [runs_on])
        limit = GITHUB_HOSTED_LIMIT_MIN if hosted else SELF_HOSTED_LIMIT_MIN
        for entry in matrix_entries(job):
            minutes = int(with_matrix(job["timeout-minutes"], entry))
            assert minutes <= limit, (
                f"{path.name} job {job_id} {entry or ''}: timeout-minutes {minutes} exceeds the "
                f"{'GitHub-hosted' if hosted else 'self-hosted'} limit of {limit}"
            )


# ---------------------------------------------------------------------------------------
# The history: checked on the runner, gated on, shown as a dashboard, optionally published


def steps_of(path: Path, job_id: str) -> list[dict[str, Any]]:
    return load(path)["jobs"][job_id]["steps"]


def step_index(steps: list[dict[str, Any]], predicate) -> int:
    found = [index for index, step in enumerate(steps) if predicate(step)]
    assert len(found) == 1, f"expected one such step, found {len(found)}: {[steps[i] for i in found]}"
    return found[0]


def sdperf_words(step: dict[str, Any]) -> list[list[str]]:
    return [words for words in commands(step.get("run", "")) if Path(words[0]).name == "sdperf"]


def history_check(path: Path, job_id: str) -> str:
    steps = steps_of(path, job_id)
    return steps[step_index(steps, lambda step: step.get("name") == "Check SDPERF_HISTORY")]["run"]


@pytest.mark.parametrize(("name", "job_id", "measuring"), [("nightly.yml", "bench", "Benchmark"), ("deps-gate.yml", "ab", "A/B")])
def test_the_history_folder_is_checked_before_the_runner_measures(name: str, job_id: str, measuring: str) -> None:
    steps = steps_of(WORKFLOWS / name, job_id)
    check = step_index(steps, lambda step: step.get("name") == "Check SDPERF_HISTORY")
    checkout = step_index(steps, lambda step: step.get("uses", "").startswith("actions/checkout@"))
    measure = step_index(steps, lambda step: step.get("name") == measuring)
    ran = {program(words)[1][0] if program(words)[0] == "sdperf" else program(words)[0]
           for words in commands(steps[measure]["run"]) if program(words)}
    assert ran == {"pytest" if name == "nightly.yml" else "ab"}, f"{name}: step {measuring!r} runs {ran}"
    assert check < checkout < measure, f"{name}: the check runs at {check}, checkout {checkout}, the run {measure}"
    assert "if" not in steps[check], f"{name}: the check must never be skipped"
    # One check, the same on every self-hosted job.
    assert history_check(WORKFLOWS / name, job_id) == history_check(WORKFLOWS / "nightly.yml", "bench")


def _run_history_check(tmp_path: Path, history: str | None) -> subprocess.CompletedProcess:
    workspace, temporary = tmp_path / "_work" / "sdperf" / "sdperf", tmp_path / "_work" / "_temp"
    workspace.mkdir(parents=True)
    temporary.mkdir(parents=True)
    env = {"PATH": os.environ["PATH"], "RUNNER_NAME": "pi5-runner", "GITHUB_WORKSPACE": str(workspace),
           "RUNNER_TEMP": str(temporary)}
    if history is not None:
        env["SDPERF_HISTORY"] = history.format(workspace=workspace, temp=temporary, outside=tmp_path / "var")
    return subprocess.run(["bash", "-e", "-c", history_check(WORKFLOWS / "nightly.yml", "bench")],
                          env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    ("history", "said"),
    [
        (None, "::error::SDPERF_HISTORY is not set on runner 'pi5-runner'. Add a line "
               "SDPERF_HISTORY=/var/lib/sdperf/history"),
        ("", "::error::SDPERF_HISTORY is not set on runner 'pi5-runner'"),
        ("history", "is not an absolute path"),
        ("{workspace}/.history", "which actions/checkout wipes (git clean -ffdx)"),
        ("{workspace}/sub/../history", "which actions/checkout wipes (git clean -ffdx)"),
        ("{temp}/history", "which the runner empties for every job"),
    ],
)
def test_the_history_check_refuses_a_folder_that_would_not_survive(tmp_path: Path, history: str | None, said: str) -> None:
    done = _run_history_check(tmp_path, history)
    assert done.returncode == 1 and said in done.stdout, done.stdout + done.stderr


def test_the_history_check_accepts_and_creates_a_folder_outside_the_workspace(tmp_path: Path) -> None:
    done = _run_history_check(tmp_path, "{outside}/sdperf/history")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "var" / "sdperf" / "history").is_dir()


def test_the_nightly_gates_on_its_own_profiles_history_after_the_benchmark() -> None:
    steps = steps_of(WORKFLOWS / "nightly.yml", "bench")
    benchmark = step_index(steps, lambda step: step.get("name") == "Benchmark")
    gate = step_index(steps, lambda step: any(words[1:3] == ["history", "changes"] for words in sdperf_words(step)))
    upload = step_index(steps, lambda step: step.get("uses", "").startswith("actions/upload-artifact@"))
    assert benchmark < gate < upload
    assert sdperf_words(steps[gate]) == [[".venv/bin/sdperf", "history", "changes", "--profile", "$MARKER", "--gate"]]
    assert '--profile "$MARKER"' in steps[gate]["run"]  # quoted, as every variable
    # Also after a failed or timed-out benchmark (what finished is in the history), never without the venv.
    assert steps[gate]["if"] == "always() && steps.setup.outcome == 'success'"
    assert step_index(steps, lambda step: step.get("id") == "setup") == step_index(
        steps, lambda step: step.get("run", "").strip() == "make setup")
    assert not steps[gate].get("continue-on-error"), "a confirmed slowdown must fail the job"


def test_the_nightly_writes_the_dashboard_into_its_uploaded_artifact() -> None:
    job = load(WORKFLOWS / "nightly.yml")["jobs"]["bench"]
    steps = job["steps"]
    benchmark = step_index(steps, lambda step: step.get("name") == "Benchmark")
    dashboard = step_index(steps, lambda step: any(words[1:2] == ["dashboard"] for words in sdperf_words(step)))
    upload = step_index(steps, lambda step: step.get("uses", "").startswith("actions/upload-artifact@"))
    assert benchmark < dashboard < upload
    assert [".venv/bin/sdperf", "dashboard", "--out", "$RESULTS/dashboard"] in sdperf_words(steps[dashboard])
    assert steps[dashboard]["if"] == "always() && steps.setup.outcome == 'success'"
    # $RESULTS is the uploaded folder, so the dashboard is in the artifact.
    assert job["env"]["RESULTS"] == "results/${{ matrix.marker }}"
    assert steps[upload]["with"]["path"].rstrip("/") == job["env"]["RESULTS"]
    assert steps[upload]["if"] == "always()"


def test_the_pages_job_publishes_only_on_its_input_with_only_what_it_needs() -> None:
    workflow = load(WORKFLOWS / "nightly.yml")
    assert workflow["permissions"] == {}
    publish = triggers(workflow)["workflow_dispatch"]["inputs"]["publish_dashboard"]
    assert publish["type"] == "boolean" and publish["default"] is False
    jobs = workflow["jobs"]
    pages = jobs["pages"]
    assert pages["permissions"] == {"pages": "write", "id-token": "write"}
    for job_id, job in {**jobs, **load(WORKFLOWS / "deps-gate.yml")["jobs"], **load(WORKFLOWS / "ci.yml")["jobs"]}.items():
        if job is not pages:
            assert not {"pages", "id-token"} & set(job.get("permissions") or {}), job_id
    # Only on the input (schedule runs have none); after every bench job, passed or failed.
    assert pages["if"] == "${{ !cancelled() && inputs.publish_dashboard }}"
    assert pages["needs"] == "bench" and pages["runs-on"] == "ubuntu-latest"
    assert pages["environment"]["name"] == "github-pages"
    uses = [step["uses"].split("@")[0] for step in pages["steps"] if "uses" in step]
    assert uses == ["actions/download-artifact", "actions/upload-pages-artifact", "actions/deploy-pages"]
    assert pages["steps"][0]["with"]["pattern"] == "nightly-*"
    assert not any("checkout" in step.get("uses", "") for step in pages["steps"]), "the site needs no checkout"
    site = next(step for step in pages["steps"] if "run" in step)
    markers = [entry["marker"] for entry in matrix_entries(jobs["bench"])]
    assert site["env"]["PROFILES"].split() == markers


def _build_site(tmp_path: Path, dashboards: list[str]) -> subprocess.CompletedProcess:
    site = next(step for step in load(WORKFLOWS / "nightly.yml")["jobs"]["pages"]["steps"] if "run" in step)
    for marker in site["env"]["PROFILES"].split():
        artifact = tmp_path / "artifacts" / f"nightly-{marker}"
        artifact.mkdir(parents=True)
        (artifact / "run.json").write_text("{}", encoding="utf-8")
        if marker in dashboards:
            (artifact / "dashboard").mkdir()
            (artifact / "dashboard" / "index.html").write_text(f"<p>{marker}</p>", encoding="utf-8")
    env = {"PATH": os.environ["PATH"], "PROFILES": site["env"]["PROFILES"], "RUN_URL": "https://github.com/o/r/actions/runs/1"}
    return subprocess.run(["bash", "-e", "-c", site["run"]], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=30)


def test_the_pages_site_links_each_profiles_dashboard(tmp_path: Path) -> None:
    done = _build_site(tmp_path, ["pi5", "cuda_lowvram"])
    assert done.returncode == 0, done.stdout + done.stderr
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert '<a href="pi5/index.html">pi5</a>' in index and '<a href="cuda_lowvram/index.html">' in index
    assert "pi4: no dashboard in this run's artifact nightly-pi4" in index
    assert (tmp_path / "site" / "pi5" / "index.html").read_text(encoding="utf-8") == "<p>pi5</p>"
    assert not (tmp_path / "site" / "pi4").exists() and not list((tmp_path / "site").rglob("run.json"))


def test_the_pages_site_is_not_published_empty(tmp_path: Path) -> None:
    done = _build_site(tmp_path, [])
    assert done.returncode == 1 and "::error::no profile's artifact of this run holds a dashboard" in done.stdout
