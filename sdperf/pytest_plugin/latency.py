"""Runs one case under pytest-benchmark: worker start, load, warm-up, timed rounds.

pytest-benchmark's pedantic mode times each round around a request to the
worker (no calibration loops: one round of real weights can take half an hour).
The worker's own per-phase figures, memory and image hash go to `extra_info`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from sdperf.config.profiles import Limits, VerdictPolicy
from sdperf.config.recipes import REGISTRY
from sdperf.execution import ab_sides as ab
from sdperf.execution.bare_loop import BareLoop
from sdperf.execution.cases import Case
from sdperf.execution.process import Deadline, Worker, WorkerFailed
from sdperf.execution.workers import ControlWorker, alternate, open_worker
from sdperf.host.state import invalid_reasons, read_host_state
from sdperf.judging import verdicts as judge
from sdperf.judging.images import compare_images
from sdperf.judging.noise import LearnedNoise
from sdperf.judging.statistics import paired_overhead
from sdperf.pytest_plugin.benchmark_adapter import BaselineLookup, Timer
from sdperf.pytest_plugin.run_images import DrawnImages, RunImages
from sdperf.storage.results import CaseResult, Status, summarise


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
        images: RunImages | None = None,
        learned_noise: LearnedNoise | None = None,
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
        # The run's image ledger: this case's warm-up and timed images go there for the checks.
        self.images = images
        # This case's run-to-run noise from the machine's history (None: no history kept).
        self.learned_noise = learned_noise
        self._say = say
        self._round_label = "load"
        self.timer = Timer(request, case.profile)
        # One deadline for the whole case: every worker it starts, rotated or control, shares it.
        self.deadline = Deadline(case.run.timeout_s)

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

        def warmed(reply: dict) -> None:
            # Untimed, but an image of the case's seed all the same: the checks count it.
            self.result.warmup_images.append(
                {"worker": self.result.workers_started - 1, "image_sha256": reply["image_sha256"]}
            )

        worker, first_call_s = open_worker(
            self.case, self._on_event, self.progress_every_s or 1e9,
            on_started=started, on_loaded=loaded, on_warmup=warming, deadline=self.deadline,
            on_warmup_reply=warmed,
        )
        if self.result.first_call_s is None:
            self.result.first_call_s = first_call_s
        return worker

    def latency(self) -> CaseResult:
        """Time the case's generation, then judge it against the stored baseline (with
        --benchmark-compare), the interleaved control (with --sdperf-interleave) and the
        profile's memory budgets. A crashed worker, an invalid host state, a regression
        or a budget overrun fails this case alone, with the reason; the rest of the run goes on.
        Whatever images it drew go to the run's ledger, for the correctness checks."""
        try:
            if self.control is None:
                self._timed_rounds(setup=None, rotate_every=self.case.run.rounds_per_worker)
            else:
                self.result.control_recipe = f"{self.control.recipe} in A" if self.ab_sides else self.control.recipe
                self._interleaved()
        finally:
            self._record_images()
        first, median = self.result.first_call_s, self.result.median_s
        if first and median and first > 2 * median:
            # Paid once, before the timed rounds ("first s" in the table): compilation where the
            # recipe compiles, otherwise lazy set-up (allocations, kernel selection, caches).
            what = "compile" if REGISTRY[self.case.recipe].compiles else "warm-up (no compilation: lazy set-up)"
            self.result.notes.append(
                f"{what}: first call {first:.2f} s, about {first - median:.2f} s more than a steady call"
            )
        self._judge()
        return self.result

    def _record_images(self) -> None:
        if self.images is None:
            return
        png = self.save_png if self.save_png is not None and self.save_png.is_file() else None
        self.images.record(self.case, DrawnImages.from_benchmark(
            f"the {self.case.id} benchmark", self.result.warmup_images, self.result.rounds, self.result.load,
            png, stopped=self.result.reason or None,
        ))

    def _interleaved(self) -> None:
        # Two processes running the same thing differ by a few percent for their whole life
        # (measured: +-4% between A/A workers), which pairing cannot cancel. So every
        # `pairs_per_worker` pairs both sides get fresh workers, and the offsets average out.
        control: dict[str, ControlWorker] = {}
        pending: list[Future] = []

        def control_failed(error: WorkerFailed) -> None:
            self.result.move_to(Status.FAILED, "control worker: " + str(error).splitlines()[0])
            pytest.fail(f"control case {self.control.id} failed to start: {error}", pytrace=False)

        def replace_control() -> Callable[[], None]:
            # The replacement starts and loads while the case's own new worker does (nothing is
            # timed then). Its warm-up waits: two warm-ups at once oversubscribe the cores.
            retired = control.pop("worker")
            retired.close()
            index = retired.index + 1
            pending.append(pool.submit(ControlWorker, self.control, self.deadline, False, index))

            def adopt() -> None:
                try:
                    control["worker"] = pending.pop().result()
                    control["worker"].warm_up()
                except WorkerFailed as error:
                    control_failed(error)

            return adopt

        try:
            control["worker"] = ControlWorker(self.control, self.deadline)
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
        verdicts = {}
        policy = self.policy
        if self.learned_noise is not None:
            # Against a stored baseline, two runs differ by the machine's run-to-run noise:
            # the history's figure once calibrated, the profile's prior until then.
            policy = dataclasses.replace(policy, session_noise=self.learned_noise.used)
            self.result.notes.append("history: " + self.learned_noise.describe(policy.threshold))
        if self.ab_sides is not None:
            verdicts["ab"] = judge.against_side_a(self.result, self.policy)
            self._compare_images()
        elif self.control is not None:
            verdicts["control"] = judge.against_control(self.result, self.policy)
        found = self.find_baseline(self.timer.fullname) if self.find_baseline else None
        if self.find_baseline and found is None:
            self.result.notes.append("no baseline entry for this case: nothing to compare with (a new case?)")
        if found is not None:
            bench, source = found
            self.result.baseline_source = source
            reason = judge.not_comparable(self.case.model.name, self.case.workload.to_json(), bench)
            if reason:
                self.result.notes.append(f"not compared with {source}: {reason}")
            else:
                verdicts["baseline"] = judge.against_baseline(self.result, bench, policy)
        self.result.verdicts = {
            against: {name: verdict.to_json() for name, verdict in found_verdicts.items()}
            for against, found_verdicts in verdicts.items()
        }
        self.timer.record(verdicts=self.result.verdicts, baseline_source=self.result.baseline_source)
        over_budget = judge.budget_failures(self.result, self.limits, self.case.profile)
        if over_budget:
            self.result.move_to(Status.FAILED, "; ".join(over_budget))
            pytest.fail(f"case {self.case.id}: " + "; ".join(over_budget), pytrace=False)
        sides = f"in B ({self.ab_sides.b.lock}) against A ({self.ab_sides.a.lock})" if self.ab_sides else "B against A"
        problems = judge.gate(verdicts, self.result.ab_image, self.result.baseline_source, sides)
        if problems:
            self.result.move_to(Status.REGRESSED, "; ".join(problems))
            pytest.fail(f"case {self.case.id} regressed " + "; ".join(problems), pytrace=False)

    def _compare_images(self) -> None:
        self.result.ab_image = compare_images(
            self.result.control_rounds, self.result.rounds, self.control_png, self.save_png,
            review=self.control_png.with_name(f"{self.case.id}-ab"),
        )
        if not self.keep_images:
            for path in (self.control_png, self.save_png):
                if path is not None:
                    path.unlink(missing_ok=True)
            if self.result.image_path and not Path(self.result.image_path).exists():
                self.result.image_path = None

    def harness_overhead(self) -> CaseResult:
        """Time the case as `latency` does, interleaved with a bare `pipe(...)` loop in another
        process, and record the suite's mean latency relative to the bare loop's."""
        try:
            bare = BareLoop(self.case, self.deadline)
        except WorkerFailed as error:
            self.result.move_to(Status.FAILED, str(error).splitlines()[0])
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
        self.timer.record(bare_latencies_s=bare_latencies, harness_overhead=overhead)
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
                # Rounds of one worker share its placement, clock and heat: intervals resample workers.
                reply["worker"] = self.result.workers_started - 1
                self.result.rounds.append(reply)
                self.request.config.hook.pytest_sdperf_round_done(
                    case=self.case, round_index=len(self.result.rounds) - 1, reply=reply
                )

            self.timer.rounds(one_round, setup=before_round, teardown=teardown, rounds=rounds)
            if self.save_png:
                # Written after timing, from the worker's last image: encoding is not timed.
                current["worker"].request("save_image", path=str(self.save_png))
                if self.keep_images:
                    self.result.image_path = str(self.save_png)
            self.timer.record(**summarise(self.result))
        except WorkerFailed as error:
            self.result.move_to(Status.FAILED, str(error).splitlines()[0])
            pytest.fail(str(error), pytrace=False)
        finally:
            if "worker" in current:
                current["worker"].close()
        after = read_host_state(self.host_root)
        self.result.host_state = {"before": before.to_json(), "after": after.to_json()}
        self.timer.record(host_state=self.result.host_state)
        reasons = invalid_reasons(before, after, self.limits)
        if reasons:
            self.result.move_to(Status.INVALID, "; ".join(reasons))
            pytest.fail(f"case {self.case.id}: invalid result, not saved: {self.result.reason}", pytrace=False)
        self.result.move_to(Status.PASSED)
        return self.result
