"""`sdperf culprit`: lock files as pins, the search, coupled changes, and the command.

The search and the lock arithmetic run on fake data; coupling runs uv's real resolver on
small test-only wheels (a second or so each, no torch). The end-to-end run in `make test`
is the reduced one the issue allows: two changed packages (an older tqdm and the planted
slowdown), on the built-in model. The full one (six packages, one planted; and a coupled
pair) is opt-in (SDPERF_FULL_CULPRIT=1): its figures are in the README.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from testonly_wheels import build_wheel, planted_files, planted_wheel

from sdperf.config.profiles import DEFAULT_PROFILES_FILE
from sdperf.execution.coupling import CouplingError, couple_changes, resolve_lock
from sdperf.execution.environments import ROOT, environment_packages, lock_environment_name
from sdperf.execution.locks import LockFileError, intermediate_lock, lock_changes, read_lock
from sdperf.judging.culprit_search import find_culprit
from sdperf.judging.statistics import OUTCOMES
from sdperf.models.store import cache_root

LOCK = ROOT / "constraints.txt"


# --- lock files --------------------------------------------------------------------------------


def test_a_lock_is_read_as_pins_with_hashes_continuations_urls_and_options(tmp_path: Path):
    lock = tmp_path / "lock.txt"
    lock.write_text(
        "# a comment\n--find-links /srv/wheels\n"
        "Tqdm==4.70.1 \\\n    --hash=sha256:aaaa \\\n    --hash=sha256:bbbb  # the bar\n"
        "torch==2.13.0+cpu\n"
        "planted @ file:///srv/planted-1.0-py3-none-any.whl#sha256=cccc\n"
        "fork @ https://example.org/archive/fork-main.zip\n"
    )
    found = read_lock(lock)
    assert found.options == ("--find-links /srv/wheels",)
    assert sorted(found.pins) == ["fork", "planted", "torch", "tqdm"]
    assert found.pins["tqdm"].version == "4.70.1"
    assert found.pins["tqdm"].line == "Tqdm==4.70.1 --hash=sha256:aaaa --hash=sha256:bbbb"
    assert found.pins["torch"].version == "2.13.0+cpu"
    assert found.pins["planted"].version == "1.0"  # from the wheel's name
    assert found.pins["fork"].version == "fork-main.zip"  # no version in the name: the name says which


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tqdm>=4\n", "lock.txt:1: 'tqdm>=4' is not an exact pin"),
        ("tqdm==4.70.1\nTQDM==4.70.0\n", "lock.txt:2: TQDM is pinned twice"),
        ("tqdm 4.70.1\n", "lock.txt:1: 'tqdm 4.70.1' is not a requirement"),
    ],
)
def test_a_lock_that_is_no_set_of_pins_is_refused_naming_the_line(tmp_path: Path, text: str, message: str):
    lock = tmp_path / "lock.txt"
    lock.write_text(text)
    with pytest.raises(LockFileError, match=re.escape(message)):
        read_lock(lock)


def test_changes_and_the_locks_in_between(tmp_path: Path):
    base, head = tmp_path / "base.txt", tmp_path / "head.txt"
    base.write_text("--find-links /a\nkeep==1.0\nmoved==1.0\ngone==3.0\nrehashed==2.0 --hash=sha256:aa\n")
    head.write_text("--find-links /a\n--find-links /b\nkeep==1.0\nmoved==1.1\nnew==2.0\n"
                    "rehashed==2.0 --hash=sha256:bb\n")
    a, b = read_lock(base), read_lock(head)
    changes = lock_changes(a, b)
    assert [change.label for change in changes] == [
        "-gone 3.0", "moved 1.0 -> 1.1", "+new 2.0", "rehashed 2.0 (other hashes or source)",
    ]
    gone, moved, new, _ = changes
    text = intermediate_lock(a, b, [moved, new, gone])
    assert text.splitlines()[1:] == ["--find-links /a", "--find-links /b", "keep==1.0", "moved==1.1", "new==2.0",
                                     "rehashed==2.0 --hash=sha256:aa"]
    middle = tmp_path / "middle.txt"
    middle.write_text(text)
    assert [change.label for change in lock_changes(read_lock(middle), b)] == ["rehashed 2.0 (other hashes or source)"]


# --- the search ----------------------------------------------------------------------------------


def _budget(changes: int) -> int:
    """The issue's bound on A/B runs, HEAD's own included."""
    return 2 * math.ceil(math.log2(changes)) + 2


@pytest.mark.parametrize("count", [2, 6, 7, 13])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_one_culprit_is_named_alone_within_the_budget(count: int, where: str):
    units = [f"package-{n}" for n in range(count)]
    culprit = {"first": units[0], "middle": units[count // 2], "last": units[-1]}[where]
    tried = []
    outcome = find_culprit(units, lambda subset: tried.append(subset) or culprit in subset)
    assert outcome.culprit == [culprit] and outcome.confirmed
    assert outcome.trials == len(tried) and len(tried) + 1 <= _budget(count)
    assert all(subset != units for subset in tried)  # HEAD's own A/B is not run again


def test_two_changes_that_only_regress_together_are_both_named():
    units = list("abcdefg")
    outcome = find_culprit(units, lambda subset: "b" in subset and "f" in subset)
    assert sorted(outcome.culprit) == ["b", "f"] and outcome.confirmed


def test_a_search_misled_by_noise_says_its_answer_is_unconfirmed():
    # A false alarm on HEAD: no subset regresses. The search ends somewhere and says it did not hold.
    outcome = find_culprit(list("abcd"), lambda subset: False)
    assert not outcome.confirmed


# --- coupled changes (uv's resolver, small test-only wheels) --------------------------------------


def _small_locks(folder: Path, head_pins: dict[str, str | None]) -> tuple[Path, Path]:
    """BASE: six test-only packages at 1.0 (plain wheels for those the test did not build);
    HEAD: BASE with `head_pins` (None: removed)."""
    base_pins = {f"sdperf-testonly-{name}": "1.0" for name in "abcdef"}
    for name in "abcdef":
        if not (folder / f"sdperf_testonly_{name}-1.0-py3-none-any.whl").exists():
            build_wheel(folder, f"sdperf-testonly-{name}", "1.0")
    base, head = folder / "base.txt", folder / "head.txt"
    base.write_text(f"--find-links {folder}\n" + "".join(f"{n}=={v}\n" for n, v in base_pins.items()))
    pins = {**base_pins, **head_pins}
    head.write_text(f"--find-links {folder}\n" + "".join(f"{n}=={v}\n" for n, v in pins.items() if v))
    return base, head


def test_changes_that_must_move_together_are_coupled_with_the_resolvers_reason(tmp_path: Path):
    wheels = tmp_path / "wheels"
    # d 2.0 needs e 2.0 and the new package g; b moves alone.
    build_wheel(wheels, "sdperf-testonly-b", "1.1")
    build_wheel(wheels, "sdperf-testonly-d", "2.0", requires=("sdperf-testonly-e==2.0", "sdperf-testonly-g>=1"))
    build_wheel(wheels, "sdperf-testonly-e", "2.0")
    build_wheel(wheels, "sdperf-testonly-g", "1.0")
    base, head = _small_locks(wheels, {"sdperf-testonly-b": "1.1", "sdperf-testonly-d": "2.0",
                                       "sdperf-testonly-e": "2.0", "sdperf-testonly-g": "1.0"})
    a, b = read_lock(base), read_lock(head)
    assert resolve_lock(head.read_text(), sys.executable).ok
    said = []
    units = couple_changes(a, b, lock_changes(a, b), sys.executable, say=said.append)
    assert [unit.names for unit in units] == [
        ["sdperf-testonly-b"], ["sdperf-testonly-d", "sdperf-testonly-e", "sdperf-testonly-g"],
    ]
    coupled = units[1]
    assert coupled.label == "sdperf-testonly-d 1.0 -> 2.0 + sdperf-testonly-e 1.0 -> 2.0 + +sdperf-testonly-g 1.0"
    why = " ".join(coupled.reasons)
    assert "sdperf-testonly-e" in why and "sdperf-testonly-g" in why
    assert said and said[0].startswith("sdperf culprit: coupled: sdperf-testonly-d")


def test_a_removed_package_base_still_needs_moves_with_the_change_that_frees_it(tmp_path: Path):
    wheels = tmp_path / "wheels"
    # a 1.0 needs f; a 2.0 does not, and HEAD drops f: f cannot go before a moves.
    build_wheel(wheels, "sdperf-testonly-a", "1.0", requires=("sdperf-testonly-f",))
    build_wheel(wheels, "sdperf-testonly-a", "2.0")
    base, head = _small_locks(wheels, {"sdperf-testonly-a": "2.0", "sdperf-testonly-f": None})
    a, b = read_lock(base), read_lock(head)
    units = couple_changes(a, b, lock_changes(a, b), sys.executable)
    assert [unit.names for unit in units] == [["sdperf-testonly-a", "sdperf-testonly-f"]]
    assert units[0].reasons[0].startswith(
        "-sdperf-testonly-f 1.0 alone makes the resolver add sdperf-testonly-f, which that lock does not pin"
    )


def test_a_base_that_does_not_resolve_here_is_refused_naming_it(tmp_path: Path):
    wheels = tmp_path / "wheels"
    build_wheel(wheels, "sdperf-testonly-b", "1.1")
    base, head = _small_locks(wheels, {"sdperf-testonly-b": "1.1"})
    base.write_text(base.read_text().replace("sdperf-testonly-c==1.0", "sdperf-testonly-c==9.9"))
    a, b = read_lock(base), read_lock(head)
    refused = f"BASE \\({re.escape(str(base))}\\) does not resolve on this host: .*sdperf-testonly-c"
    with pytest.raises(CouplingError, match=refused):
        couple_changes(a, b, lock_changes(a, b), sys.executable)


# --- the command ------------------------------------------------------------------------------


def _culprit(base: Path, head: Path, folder: Path, *pytest_args: str) -> tuple[subprocess.CompletedProcess, dict]:
    report = folder / "culprit.json"
    done = subprocess.run(
        [sys.executable, "-m", "sdperf.cli", "culprit", str(base), str(head), "--json", str(report),
         "--markdown", str(folder / "culprit.md"), "--dir", str(folder / "work"),
         "--sdperf-profile", "cpu", "--sdperf-progress", "0", *pytest_args],
        capture_output=True, text=True, timeout=3600,
    )
    assert report.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    return done, json.loads(report.read_text())


def test_a_lock_that_is_not_pins_is_a_usage_error_before_any_run(tmp_path: Path):
    loose = tmp_path / "loose.txt"
    loose.write_text("tqdm>=4\n")
    done = subprocess.run([sys.executable, "-m", "sdperf.cli", "culprit", str(LOCK), str(loose)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2
    assert "loose.txt:1: 'tqdm>=4' is not an exact pin" in done.stderr
    assert list(tmp_path.iterdir()) == [loose]  # no work folder: nothing ran


def test_identical_pins_need_no_run(tmp_path: Path):
    same = tmp_path / "same.txt"
    same.write_text("# the same pins, other comments\n" + LOCK.read_text())
    done, found = _culprit(LOCK, same, tmp_path)
    assert done.returncode == 0 and found == {}
    assert "pins exactly what" in done.stdout and "nothing to search" in done.stdout
    assert not (tmp_path / "work").exists()


def _strict_profiles(folder: Path, alpha: float) -> Path:
    """The shipped profiles with the cpu profile's verdicts at `alpha`."""
    shipped = DEFAULT_PROFILES_FILE.read_text()
    assert "\n[profiles.cpu.verdict]\n" in shipped
    strict = folder / "profiles.toml"
    strict.write_text(shipped.replace("\n[profiles.cpu.verdict]\n", f"\n[profiles.cpu.verdict]\nalpha = {alpha}\n"))
    return strict


def _older_tqdm(folder: Path, *extra: str) -> Path:
    """The committed lock with tqdm one version older (it draws no pixel and runs in no timed code),
    and `extra` lines."""
    text = LOCK.read_text()
    assert "\ntqdm==4.70.1\n" in text, "the lock moved on: pick another tqdm version for this test"
    lock = folder / "tqdm-older.txt"
    lock.write_text(text.replace("\ntqdm==4.70.1\n", "\ntqdm==4.70.0\n") + "".join(f"{line}\n" for line in extra))
    return lock


def test_a_lock_pair_with_no_regression_says_so_after_one_ab_run(tmp_path: Path):
    # Five pairs, one worker a side: no power needed, only no false alarm from a change that
    # touches nothing timed.
    done, found = _culprit(LOCK, _older_tqdm(tmp_path), tmp_path, "-k", "fp32", "--sdperf-rounds", "5")
    assert done.returncode == 0, done.stdout[-3000:]
    assert found == {}
    assert "sdperf culprit: 1 changes, 1 A/B runs" in done.stdout
    assert "sdperf culprit: no case regressed between BASE and HEAD: nothing to search" in done.stdout
    assert sorted(path.name for path in (tmp_path / "work").iterdir()) == ["head.json", "head.log", "head.md"]
    saved = json.loads((tmp_path / "work" / "head.json").read_text())
    assert saved["sdperf"]["ab"]["changes"] == ["tqdm 4.70.1 -> 4.70.0"]
    assert "B installs differently: tqdm 4.70.1 -> 4.70.0" in done.stdout
    case = {case["case_id"]: case for case in saved["sdperf"]["cases"]}["cpu-fp32"]
    assert case["status"] == "passed"
    assert case["verdicts"]["ab"]["latency"]["outcome"] in ("same", "inconclusive")
    assert case["ab_image"]["outcome"] == "identical"
    assert "cpu-fp32 B vs A interleaved: latency" in done.stdout
    assert "cpu-fp32 B vs A: image identical: B draws A's image" in done.stdout
    # uv installed from pip's sources by pip's rule: the same torch build as this environment's
    # (here the local CPU wheel, never PyPI's CUDA build of the same version).
    from importlib.metadata import version

    assert environment_packages(lock_environment_name(LOCK))["torch"] == version("torch")


def test_a_planted_slowdown_is_caught_and_traced_to_its_package(tmp_path: Path):
    wheel = planted_wheel(cache_root() / "test-wheels")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    head = _older_tqdm(tmp_path, f"sdperf-testonly-slowdown @ {wheel.as_uri()}#sha256={digest}")
    # Ten pairs, two workers a side (pairs_per_worker 5): five pairs in one worker pair left the
    # planted slowdown undecided once here, and one image a side (every step a sample) once blamed
    # tqdm. At the shipped alpha (0.05) an unchanged case is called slower in about 1 run of 40 by
    # design; at 0.01 that is about 1 in 200, and the planted +25% is still decided (Wilcoxon p
    # 0.002 to 0.006).
    done, found = _culprit(LOCK, head, tmp_path, "-k", "dpm_solver", "--sdperf-rounds", "10",
                           "--sdperf-profiles-file", str(_strict_profiles(tmp_path, 0.01)))
    assert done.returncode == 1, done.stdout[-3000:]
    # Step 0 is `sdperf ab`'s own run.
    saved = json.loads((tmp_path / "work" / "head.json").read_text())
    assert saved["sdperf"]["ab"]["changes"] == ["+sdperf-testonly-slowdown 1.0", "tqdm 4.70.1 -> 4.70.0"]
    assert "+sdperf-testonly-slowdown 1.0, tqdm 4.70.1 -> 4.70.0" in done.stdout
    slowed = {case["case_id"]: case for case in saved["sdperf"]["cases"]}["cpu-dpm_solver"]
    assert slowed["status"] == "regressed", slowed["verdicts"]
    assert slowed["verdicts"]["ab"]["latency"]["outcome"] == "slower", slowed["verdicts"]
    assert slowed["verdicts"]["ab"]["peak_rss_bytes"]["outcome"] in OUTCOMES
    assert slowed["ab_image"]["outcome"] == "identical"  # slower, but no pixel changed
    assert len(slowed["control_rounds"]) == len(slowed["rounds"]) == 10
    assert "FAILED" in done.stdout and "cpu-dpm_solver" in done.stdout
    step0 = (tmp_path / "work" / "head.md").read_text()
    assert "| B vs A |" in step0 and "+sdperf-testonly-slowdown 1.0" in step0 and "❌ regressed" in step0

    # Then the search: the planted package, and only it.
    assert list(found) == ["cpu-dpm_solver"]
    search = found["cpu-dpm_solver"]
    assert search["culprit"] == ["sdperf-testonly-slowdown"] and search["confirmed"], search
    assert search["regressed_in"] == ["latency"] and search["coupled"] == []
    assert search["units"] == [["sdperf-testonly-slowdown"], ["tqdm"]]
    assert 1 + len(search["steps"]) <= _budget(2)
    first = search["steps"][0]
    assert first["changes"] == ["+sdperf-testonly-slowdown 1.0"] and first["reproduced"]
    assert "latency slower" in first["detail"]
    step_lock = tmp_path / "work" / "cpu-dpm_solver-step1.txt"
    assert step_lock.read_text().count("sdperf-testonly-slowdown @") == 1
    assert not (cache_root() / "envs" / lock_environment_name(step_lock)).exists()  # used once, removed
    assert "sdperf culprit: cpu-dpm_solver: +sdperf-testonly-slowdown 1.0: latency slower" in done.stdout
    report = (tmp_path / "culprit.md").read_text()
    assert "### cpu-dpm_solver" in report and "**Culprit:** +sdperf-testonly-slowdown 1.0: latency slower" in report


# --- the full runs (opt-in: SDPERF_FULL_CULPRIT=1) ---------------------------------------------

full_only = pytest.mark.skipif(
    os.environ.get("SDPERF_FULL_CULPRIT") != "1",
    reason="the full culprit runs (six packages; a coupled pair) take about 10 minutes: SDPERF_FULL_CULPRIT=1 runs "
    "them; make test runs the two-package one above, and the README has the full ones' figures",
)


def _six_package_locks(folder: Path, coupled: bool) -> tuple[Path, Path]:
    """BASE: the committed lock and six test-only packages at 1.0; HEAD: all six at 1.1, where
    d 1.1 carries the planted slowdown (and, `coupled`, needs e 1.1)."""
    wheels = folder / "wheels"
    for name in "abcdef":
        build_wheel(wheels, f"sdperf-testonly-{name}", "1.0")
        if name != "d":
            build_wheel(wheels, f"sdperf-testonly-{name}", "1.1")
    build_wheel(wheels, "sdperf-testonly-d", "1.1", {**planted_files(), "sdperf_testonly_d.py": b""},
                requires=("sdperf-testonly-e==1.1",) if coupled else ())
    locks = []
    for version in ("1.0", "1.1"):
        lock = folder / f"six-at-{version}.txt"
        lock.write_text(f"--find-links {wheels}\n" + LOCK.read_text()
                        + "".join(f"sdperf-testonly-{name}=={version}\n" for name in "abcdef"))
        locks.append(lock)
    return locks[0], locks[1]


@full_only
@pytest.mark.parametrize("coupled", [False, True], ids=["one-of-six", "coupled-pair"])
def test_the_planted_package_is_named_among_six_changes(tmp_path: Path, coupled: bool):
    base, head = _six_package_locks(tmp_path, coupled)
    started = time.perf_counter()
    done, found = _culprit(base, head, tmp_path, "-k", "dpm_solver", "--sdperf-rounds", "10",
                           "--sdperf-profiles-file", str(_strict_profiles(tmp_path, 0.01)))
    wall = time.perf_counter() - started
    search = found["cpu-dpm_solver"]
    expected = ["sdperf-testonly-d", "sdperf-testonly-e"] if coupled else ["sdperf-testonly-d"]
    assert search["culprit"] == expected and search["confirmed"], search
    runs = 1 + len(search["steps"])
    assert runs <= _budget(6), search["steps"]
    if coupled:
        assert search["coupled"][0]["packages"] == expected
        assert "sdperf-testonly-e" in search["coupled"][0]["why"][0]
        assert "coupled, they move together: sdperf-testonly-d, sdperf-testonly-e" in done.stdout
    else:
        assert search["coupled"] == []
    print(f"\n{'coupled pair' if coupled else 'one of six'}: {runs} A/B runs (budget {_budget(6)}), {wall:.0f} s; "
          + "; ".join(f"step {s['number']} {'+'.join(s['changes'])}: {'yes' if s['reproduced'] else 'no'} "
                      f"{s['wall_s']:.0f} s" for s in search["steps"]))
