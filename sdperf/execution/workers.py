"""Opening, warming and pairing workers: what a case's timing loop is built from (no pytest).

A worker is started, loaded, proven to run what its case claims (`sdperf.judging.proof`)
and warmed up before anything is timed; the control of an interleaved or A/B run is a
second worker timed between the case's rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from sdperf.execution.cases import Case
from sdperf.execution.process import Deadline, Worker, WorkerFailed
from sdperf.judging.proof import problems


class NotInForce(WorkerFailed):
    """The worker runs, but not what the recipe claims."""


def require_in_force(case: Case, load_reply: Mapping[str, Any]) -> None:
    """Raise NotInForce, naming every mismatch, unless `case`'s recipe is fully in force."""
    found = problems(case.expect, load_reply)
    if found:
        raise NotInForce(f"case {case.id}: recipe {case.recipe} did not take effect: " + "; ".join(found))


def open_worker(
    case: Case,
    on_event: Callable[[dict], None] | None = None,
    progress_every_s: float = 1e9,
    on_started: Callable[[Worker], None] | None = None,
    on_loaded: Callable[[dict], None] | None = None,
    on_warmup: Callable[[int], None] | None = None,
    warmup: bool = True,
    deadline: Deadline | None = None,
    on_warmup_reply: Callable[[dict], None] | None = None,
) -> tuple[Worker, float | None]:
    """A worker for `case`, started, loaded and (unless `warmup` is False) warmed up:
    (worker, first call in s). Closed again if any of that fails; the callbacks see each
    stage (a warm-up's reply too: its image counts), so a failure loses nothing. `deadline`
    is the case's, shared with its other workers."""
    worker = Worker(case, on_event=on_event, progress_every_s=progress_every_s, deadline=deadline)
    try:
        worker.start()
        if on_started:
            on_started(worker)
        reply = worker.request("load", case=case.to_json())
        if on_loaded:
            on_loaded({key: value for key, value in reply.items() if key != "ok"})
        require_in_force(case, reply)
        first_call_s = warm_up(worker, case, on_warmup, on_warmup_reply) if warmup else None
    except BaseException:
        worker.close()
        raise
    return worker, first_call_s


def warm_up(worker: Worker, case: Case, on_warmup: Callable[[int], None] | None = None,
            on_reply: Callable[[dict], None] | None = None) -> float | None:
    """The case's untimed warm-up calls; returns how long the first took."""
    first_call_s = None
    for index in range(case.run.warmup):
        if on_warmup:
            on_warmup(index)
        started = time.perf_counter()
        reply = worker.request("generate")
        if on_reply:
            on_reply(reply)
        if index == 0:
            # The first call pays for lazy initialisation (and compilation, for some recipes).
            first_call_s = time.perf_counter() - started
    return first_call_s


class ControlWorker:
    """The case timed against, in a worker of its own, between the case's rounds: the
    profile's control recipe (fp32), or in an A/B run the same case in environment A."""

    def __init__(self, case: Case, deadline: Deadline, warm: bool = True, index: int = 0) -> None:
        self.case = case
        self.index = index  # which of the control's workers this is (rounds are tagged with it)
        self.worker, _ = open_worker(case, warmup=warm, deadline=deadline)

    def warm_up(self) -> None:
        warm_up(self.worker, self.case)

    def time_one(self, replies: list[dict]) -> float:
        """One timed generation; its reply (memory, steps, image hash) goes to `replies`."""
        started = time.perf_counter()
        reply = self.worker.request("generate")
        elapsed = time.perf_counter() - started
        reply.pop("ok", None)
        reply["worker"] = self.index
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
