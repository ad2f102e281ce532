"""Runs one case under pytest-benchmark: worker start, load, warm-up, timed rounds.

pytest-benchmark's pedantic mode times each round around a request to the
worker (no calibration loops: one round of real weights can take half an hour).
The worker's own per-phase figures, memory and image hash go to `extra_info`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from sdperf import ab, judge
from sdperf.cases import Case
from sdperf.hoststate import invalid_reasons, read_host_state
from sdperf.overhead import BareLoop
from sdperf.profiles import Limits, VerdictPolicy
from sdperf.proof import require_in_force
from sdperf.results import CaseResult, summarise
from sdperf.runner import Worker, WorkerFailed

# Finds the stored baseline's entry for a test (pytest-benchmark's fullname): (entry, file) or None.
BaselineLookup = Callable[[str], "tuple[dict, str] | None"]


def paired_overhead(suite: list[float], bare: list[float]) -> dict[str, float]:
    """Relative overhead of `suite` over `bare` (paired rounds), with a normal-approximation 95% CI."""
    pairs = min(len(suite), len(bare))
    differences = [s - b for s, b in zip(suite, bare)]
    bare_mean = statistics.fmean(bare[:pairs])
    mean_difference = statistics.fmean(differences)
    spread = statistics.stdev(differences) / pairs**0.5 if pairs > 1 else float("inf")
    z = statistics.NormalDist().inv_cdf(0.975)
    return {
        "pairs": pairs,
        "suite_mean_s": statistics.fmean(suite[:pairs]),
        "bare_mean_s": bare_mean,
        "overhead": mean_difference / bare_mean,
        "ci_low": (mean_difference - z * spread) / bare_mean,
        "ci_high": (mean_difference + z * spread) / bare_mean,
    }


def open_worker(
    case: Case,
    on_event: Callable[[dict], None] | None = None,
    progress_every_s: float = 1e9,
    on_started: Callable[[Worker], None] | None = None,
    on_loaded: Callable[[dict], None] | None = None,
    on_warmup: Callable[[int], None] | None = None,
    warmup: bool = True,
) -> tuple[Worker, float | None]:
    """A worker for `case`, started, loaded and (unless `warmup` is False) warmed up:
    (worker, first call in s). Closed again if any of that fails; the callbacks see each
    stage, so a failure loses nothing."""
    worker = Worker(case, on_event=on_event, progress_every_s=progress_every_s)
    try:
        worker.start()
        if on_started:
            on_started(worker)
        reply = worker.request("load", case=case.to_json())
        if on_loaded:
            on_loaded({key: value for key, value in reply.items() if key != "ok"})
        require_in_force(case, reply)
        first_call_s = warm_up(worker, case, on_warmup) if warmup else None
    except BaseException:
        worker.close()
        raise
    return worker, first_call_s


def warm_up(worker: Worker, case: Case, on_warmup: Callable[[int], None] | None = None) -> float | None:
    """The case's untimed warm-up calls; returns how long the first took."""
    first_call_s = None
    for index in range(case.run.warmup):
        if on_warmup:
            on_warmup(index)
        started = time.perf_counter()
        worker.request("generate")
        if index == 0:
            # The first call pays for lazy initialisation (and compilation, for some recipes).
            first_call_s = time.perf_counter() - started
    return first_call_s


class ControlWorker:
    """The case timed against, in a worker of its own, between the case's rounds: the
    profile's control recipe (fp32), or in an A/B run the same case in environment A."""

    def __init__(self, case: Case, warm: bool = True) -> None:
        self.case = case
        self.worker, _ = open_worker(case, warmup=warm)

    def warm_up(self) -> None:
        warm_up(self.worker, self.case)

    def time_one(self, replies: list[dict]) -> float:
        """One timed generation; its reply (memory, steps, image hash) goes to `replies`."""
        started = time.perf_counter()
        reply = self.worker.request("generate")
        elapsed = time.perf_counter() - started
        reply.pop("ok", None)
        replies.append(reply)
        return elapsed

    def close(self) -> None:
        self.worker.close()


def alternate(partner: Callable[[], float], samples: list[float]):
    """pedantic `setup` and `teardown` that time `partner` before even rounds and after odd
    ones (partner-case, case-partner, ...): each pair sits side by side in time and the
    order effect cancels. Both run untimed by pytest-benchmark."""
    position = {"round": 0}

    def before() -> None:
        if position["round"] % 2 == 0:
            samples.append(partner())

    def after() -> None:
        if position["round"] % 2 == 1:
            samples.append(partner())
        position["round"] += 1

    return before, after


class CaseBench:
    """What a benchmark test gets as `sdperf_bench`."""

    def __init__(
        self,
        request: pytest.FixtureRequest,
        case: Case,
        result: CaseResult,
        progress_every_s: float,
        say: Callable[[str], None],
        host_root: Path = Path("/"),
        limits: Limits = Limits(),
        save_png: Path | None = None,
        policy: VerdictPolicy = VerdictPolicy(),
        control: Case | None = None,
        find_baseline: BaselineLookup | None = None,
        ab_sides: ab.Sides | None = None,
        control_png: Path | None = None,
        keep_images: bool = False,
    ) -> None:
        self.request = request
        self.case = case
        self.result = result
        self.progress_every_s = progress_every_s
        self.host_root = host_root
        self.limits = limits
        self.save_png = save_png
        self.policy = policy
        self.control = control
        self.find_baseline = find_baseline
        # A/B: `control` is this case in environment A, the case itself runs in B.
        self.ab_sides = ab_sides
        self.control_png = control_png
        self.keep_images = keep_images
        self._say = say
        self._round_label = "load"

    def _on_event(self, event: dict) -> None:
        if event.get("event") == "step" and self.progress_every_s:
            step, step_s = event["step"], event["step_s"]
            total = event.get("of") or max(self.case.workload.steps, step)
            remaining = max(total - step, 0) * step_s
            self._say(
                f"[{self.case.id}] {self._round_label}: step {step}/{total}, "
                f"{step_s:.2f} s/it, about {remaining:.0f} s left in this image"
            )

    def _new_worker(self) -> Worker:
        """A ready worker for the case; the first one's load and first-call figures are recorded."""

        def started(worker: Worker) -> None:
            self.request.config.hook.pytest_sdperf_worker_started(case=self.case, pid=worker.pid)

        def loaded(reply: dict) -> None:
            if not self.result.load:
                # How the worker was launched: pinning command, dedicated interpreter.
                launch = {"command_prefix": list(self.case.command_prefix), "python_env": self.case.python_env}
                self.result.load = {**reply, "launch": launch}
            self.result.workers_started += 1

        def warming(index: int) -> None:
            self._round_label = f"warm-up {index + 1}/{self.case.run.warmup}"

        worker, first_call_s = open_worker(
            self.case, self._on_event, self.progress_every_s or 1e9,
            on_started=started, on_loaded=loaded, on_warmup=warming,
        )
        if self.result.first_call_s is None:
            self.result.first_call_s = first_call_s
        return worker

    def latency(self) -> CaseResult:
        """Time the case's generation, then judge it against the stored baseline (with
        --benchmark-compare), the interleaved control (with --sdperf-interleave) and the
        profile's memory budgets. A crashed worker, an invalid host state, a regression
        or a budget overrun fails this case alone, with the reason; the rest of the run goes on."""
        if self.control is None:
            self._timed_rounds(setup=None)
        else:
            self.result.control_recipe = f"{self.control.recipe} in A" if self.ab_sides else self.control.recipe
            self._interleaved()
        first, median = self.result.first_call_s, self.result.median_s
        if first and median and first > 2 * median:
            # Compilation (torch.compile, OpenVINO) or lazy set-up paid once: its own phase.
            self.result.notes.append(
                f"compile: first call {first:.2f} s, about {first - median:.2f} s more than a steady call"
            )
        self._judge()
        return self.result

    def _interleaved(self) -> None:
        # Two processes running the same thing differ by a few percent for their whole life
        # (measured: +-4% between A/A workers), which pairing cannot cancel. So every
        # `pairs_per_worker` pairs both sides get fresh workers, and the offsets average out.
        control: dict[str, ControlWorker] = {}
        pending: list[Future] = []

        def control_failed(error: WorkerFailed) -> None:
            self.result.status, self.result.reason = "failed", "control worker: " + str(error).splitlines()[0]
            pytest.fail(f"control case {self.control.id} failed to start: {error}", pytrace=False)

        def replace_control() -> Callable[[], None]:
            # The replacement starts and loads while the case's own new worker does (nothing is
            # timed then). Its warm-up waits: two warm-ups at once oversubscribe the cores.
            control.pop("worker").close()
            pending.append(pool.submit(ControlWorker, self.control, False))

            def adopt() -> None:
                try:
                    control["worker"] = pending.pop().result()
                    control["worker"].warm_up()
                except WorkerFailed as error:
                    control_failed(error)

            return adopt

        try:
            control["worker"] = ControlWorker(self.control)
        except WorkerFailed as error:
            control_failed(error)
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sdperf-control") as pool:
                before, after = alternate(
                    lambda: control["worker"].time_one(self.result.control_rounds), self.result.control_latencies_s
                )
                self._timed_rounds(
                    before, after, rotate_every=self.policy.pairs_per_worker, on_rotate=replace_control
                )
                if self.control_png:
                    control["worker"].worker.request("save_image", path=str(self.control_png))
        finally:
            # A replacement still pending when the case failed is closed too, not leaked.
            for future in pending:
                if future.exception() is None:
                    future.result().close()
            if "worker" in control:
                control["worker"].close()

    def _judge(self) -> None:
        benchmark = self.request.getfixturevalue("benchmark")
        verdicts = {}
        if self.ab_sides is not None:
            verdicts["ab"] = judge.against_side_a(self.result, self.policy)
            self._compare_images()
        elif self.control is not None:
            verdicts["control"] = judge.against_control(self.result, self.policy)
        found = self.find_baseline(benchmark.fullname) if self.find_baseline else None
        if self.find_baseline and found is None:
            self.result.notes.append("no baseline entry for this case: nothing to compare with (a new case?)")
        if found is not None:
            bench, source = found
            self.result.baseline_source = source
            reason = judge.not_comparable(self.case, bench)
            if reason:
                self.result.notes.append(f"not compared with {source}: {reason}")
            else:
                verdicts["baseline"] = judge.against_baseline(self.result, bench, self.policy)
        self.result.verdicts = {
            against: {name: verdict.to_json() for name, verdict in found_verdicts.items()}
            for against, found_verdicts in verdicts.items()
        }
        benchmark.extra_info.update(verdicts=self.result.verdicts, baseline_source=self.result.baseline_source)
        over_budget = judge.budget_failures(self.result, self.limits, self.case.profile)
        if over_budget:
            self.result.status, self.result.reason = "failed", "; ".join(over_budget)
            pytest.fail(f"case {self.case.id}: " + "; ".join(over_budget), pytrace=False)
        if self.ab_sides is not None:
            self._gate_ab(verdicts["ab"])
        slower = judge.regressions(verdicts.get("baseline", {}))
        if slower:
            self.result.status = "regressed"
            self.result.reason = "; ".join(slower)
            pytest.fail(
                f"case {self.case.id} regressed against {self.result.baseline_source}: " + "; ".join(slower),
                pytrace=False,
            )

    def _compare_images(self) -> None:
        self.result.ab_image = ab.compare_images(
            self.result.control_rounds, self.result.rounds, self.control_png, self.save_png,
            review=self.control_png.with_name(f"{self.case.id}-ab"),
        )
        if not self.keep_images:
            for path in (self.control_png, self.save_png):
                if path is not None:
                    path.unlink(missing_ok=True)
            if self.result.image_path and not Path(self.result.image_path).exists():
                self.result.image_path = None

    def _gate_ab(self, verdicts: dict) -> None:
        """B fails the case when it is slower or hungrier than A, or draws another image."""
        problems = judge.regressions(verdicts)
        image = self.result.ab_image or {}
        if image.get("outcome") == "changed":
            problems.append("image " + image["detail"])
        if problems:
            self.result.status = "regressed"
            self.result.reason = "; ".join(problems)
            pytest.fail(
                f"case {self.case.id}: B ({self.ab_sides.b.lock}) against A ({self.ab_sides.a.lock}): "
                + "; ".join(problems),
                pytrace=False,
            )

    def harness_overhead(self) -> CaseResult:
        """Time the case as `latency` does, interleaved with a bare `pipe(...)` loop in another
        process, and record the suite's mean latency relative to the bare loop's."""
        try:
            bare = BareLoop(self.case)
        except WorkerFailed as error:
            self.result.status, self.result.reason = "failed", str(error).splitlines()[0]
            pytest.fail(str(error), pytrace=False)
        bare_latencies: list[float] = []
        before, after = alternate(bare.time_one, bare_latencies)
        try:
            # Same warm-up as the suite's worker: first calls pay for lazy initialisation.
            for _ in range(self.case.run.warmup):
                bare.time_one()
            self._timed_rounds(setup=before, teardown=after)
        finally:
            bare.close()
        overhead = paired_overhead(self.result.parent_latencies_s, bare_latencies)
        self.result.notes.append(
            f"harness overhead over {overhead['pairs']} interleaved pairs: suite mean {overhead['suite_mean_s']:.4f} s "
            f"vs bare perf_counter loop {overhead['bare_mean_s']:.4f} s: {overhead['overhead']:+.2%} "
            f"(approx. 95% CI {overhead['ci_low']:+.2%} to {overhead['ci_high']:+.2%})"
        )
        self.request.getfixturevalue("benchmark").extra_info.update(
            bare_latencies_s=bare_latencies, harness_overhead=overhead
        )
        return self.result

    def _timed_rounds(
        self,
        setup: Callable[[], None] | None,
        teardown: Callable[[], None] | None = None,
        rotate_every: int | None = None,
        on_rotate: Callable[[], Callable[[], None]] | None = None,
    ) -> CaseResult:
        rounds = self.case.run.rounds
        before = read_host_state(self.host_root)
        current: dict[str, Worker] = {}
        try:
            current["worker"] = self._new_worker()

            def before_round() -> None:
                done = len(self.result.rounds)
                if rotate_every and done and done % rotate_every == 0:
                    current.pop("worker").close()
                    # on_rotate starts the partner's replacement and returns what waits for it.
                    partner_ready = on_rotate() if on_rotate else None
                    current["worker"] = self._new_worker()
                    if partner_ready:
                        partner_ready()
                if setup:
                    setup()

            def one_round() -> None:
                self._round_label = f"round {len(self.result.rounds) + 1}/{rounds}"
                started = time.perf_counter()
                reply = current["worker"].request("generate")
                self.result.parent_latencies_s.append(time.perf_counter() - started)
                reply.pop("ok", None)
                self.result.rounds.append(reply)
                self.request.config.hook.pytest_sdperf_round_done(
                    case=self.case, round_index=len(self.result.rounds) - 1, reply=reply
                )

            # Requested only now: a case that fails before timing leaves no empty benchmark behind.
            benchmark = self.request.getfixturevalue("benchmark")
            benchmark.group = self.case.profile
            benchmark.pedantic(
                one_round, setup=before_round, teardown=teardown, rounds=rounds, warmup_rounds=0, iterations=1
            )
            if self.save_png:
                # Written after timing, from the worker's last image: encoding is not timed.
                current["worker"].request("save_image", path=str(self.save_png))
                self.result.image_path = str(self.save_png)
            benchmark.extra_info.update(summarise(self.result))
        except WorkerFailed as error:
            self.result.status = "failed"
            self.result.reason = str(error).splitlines()[0]
            pytest.fail(str(error), pytrace=False)
        finally:
            if "worker" in current:
                current["worker"].close()
        after = read_host_state(self.host_root)
        self.result.host_state = {"before": before.to_json(), "after": after.to_json()}
        benchmark.extra_info["host_state"] = self.result.host_state
        reasons = invalid_reasons(before, after, self.limits)
        if reasons:
            self.result.status = "invalid"
            self.result.reason = "; ".join(reasons)
            pytest.fail(f"case {self.case.id}: invalid result, not saved: {self.result.reason}", pytrace=False)
        self.result.status = "passed"
        return self.result
