"""The outcome of one case, whatever happened to it, in a JSON-friendly shape."""

from __future__ import annotations

import enum
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

# Version of the "sdperf" part of saved JSON; bump and note the change when its shape changes.
# 1: first version (cases with kind, status, reason, latency summary, phases, memory, image hash,
#    saved image paths, host state, notes).
# 2: raw round latencies in each benchmark's extra_info ("latencies_s"), verdicts against the
#    baseline and against the interleaved control, the control's latencies, the machine id.
# 3: the control's rounds ("control_rounds": memory, steps, image hash per round); A/B runs
#    (--sdperf-ab): "ab" verdicts, the image comparison ("ab_image"), and the sides in the run's "ab".
# 4: the run's completeness ("run": selected cases, unfinished ones, errors outside a test, collection
#    errors, interrupted, exit status); each round's worker ("worker" in rounds and control rounds).
# 5: each warm-up's image hash and worker ("warmup_images"): the correctness checks judge every image
#    a benchmark drew; correctness checks' rounds hold (worker, image hash) of the images they judged.
# 6: the roofline ("roofline": FLOPs per denoiser call, achieved and peak FLOP/s, the fraction) and
#    its inputs in "load" ("roofline": the count and the host's GEMM peak, or the error that stopped them).
RESULT_SCHEMA_VERSION = 6
READABLE_SCHEMAS = (1, 2, 3, 4, 5, 6)

PHASES = ("text_encoding_s", "denoise_s", "vae_decode_s", "other_s")


class Status(enum.StrEnum):
    """Where a case stands. Saved as its value; compares equal to it."""

    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    INVALID = "invalid"  # throttled or clock sag: measured something else, never saved as timings
    REGRESSED = "regressed"  # slower than its baseline, control or side A: saved, and can be promoted on purpose


# Every move a case may make. A passed case can still fail its memory budget or its
# verdicts (judged after timing); every other end is final.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.RUNNING: frozenset(Status) - {Status.RUNNING},
    Status.PASSED: frozenset({Status.FAILED, Status.REGRESSED}),
    Status.FAILED: frozenset(),
    Status.SKIPPED: frozenset(),
    Status.INVALID: frozenset(),
    Status.REGRESSED: frozenset(),
}


class StatusError(RuntimeError):
    """A case was moved where it cannot go: a bug in sdperf, named with the case."""


def round_steps(rounds: list[dict[str, Any]]) -> list[float]:
    """Every denoising step time of every round."""
    return [step for r in rounds for step in r.get("step_s", [])]


def round_figures(rounds: list[dict[str, Any]], key: str) -> list[float]:
    """One per-round figure (peak_rss_bytes, cuda_max_reserved_bytes, ...) of the rounds that have it."""
    return [float(r[key]) for r in rounds if r.get(key)]


def round_workers(rounds: list[dict[str, Any]], per: str = "round", key: str | None = None) -> list[int] | None:
    """The worker of each sample that `round_steps` (per="step") or `round_figures` (per="figure",
    with `key`) or the rounds themselves take; None when the rounds predate worker tags (schema 4)."""
    if not rounds or any("worker" not in r for r in rounds):
        return None
    if per == "step":
        return [r["worker"] for r in rounds for _ in r.get("step_s", [])]
    if per == "figure":
        return [r["worker"] for r in rounds if r.get(key)]
    return [r["worker"] for r in rounds]


def saved_latencies(extra_info: dict[str, Any]) -> list[float]:
    """Round latencies of a saved benchmark. Schema 1 kept no parent-side latencies; the
    worker's own wall time is the closest figure."""
    if extra_info.get("latencies_s"):
        return list(extra_info["latencies_s"])
    return [r["wall_s"] for r in extra_info.get("rounds", []) if "wall_s" in r]


@dataclass
class CaseResult:
    case_id: str
    test: str
    profile: str
    recipe: str
    model: str
    workload: dict[str, Any] = field(default_factory=dict)
    kind: str = "latency"  # latency | harness | determinism | fidelity
    status: Status = Status.RUNNING
    reason: str = ""
    rounds: list[dict[str, Any]] = field(default_factory=list)
    load: dict[str, Any] = field(default_factory=dict)
    first_call_s: float | None = None
    parent_latencies_s: list[float] = field(default_factory=list)
    reference: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    host_state: dict[str, Any] = field(default_factory=dict)
    image_path: str | None = None
    # Rounds of the profile's control case, interleaved with this case's (--sdperf-interleave).
    control_latencies_s: list[float] = field(default_factory=list)
    control_rounds: list[dict[str, Any]] = field(default_factory=list)
    control_recipe: str | None = None
    # A/B runs: B's image against A's (sdperf.judging.images.compare_images).
    ab_image: dict[str, Any] | None = None
    workers_started: int = 0
    # Untimed warm-up generations: {"worker": n, "image_sha256": ...} each.
    warmup_images: list[dict[str, Any]] = field(default_factory=list)
    # "baseline", "control" and/or "ab" -> {"latency": Verdict.to_json(), "peak_rss": ...}
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    baseline_source: str | None = None

    def move_to(self, status: Status, reason: str | None = None) -> None:
        """Change the status (and the reason, when given), refusing a move `TRANSITIONS` does not allow."""
        status = Status(status)
        if status not in TRANSITIONS[self.status]:
            raise StatusError(f"case {self.case_id}: cannot go from {self.status.value} to {status.value}")
        self.status = status
        if reason is not None:
            self.reason = reason

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}

    @property
    def mean_s(self) -> float | None:
        return statistics.fmean(self.parent_latencies_s) if self.parent_latencies_s else None

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.parent_latencies_s) if self.parent_latencies_s else None

    def phase_means(self) -> dict[str, float]:
        if not self.rounds:
            return {}
        return {phase: statistics.fmean(r[phase] for r in self.rounds) for phase in PHASES}

    def seconds_per_step(self) -> float | None:
        """Median step time over every step of every round."""
        steps = round_steps(self.rounds)
        return statistics.median(steps) if steps else None

    def peak_rss_bytes(self) -> int | None:
        peaks = [r["peak_rss_bytes"] for r in self.rounds if r.get("peak_rss_bytes")]
        return max(peaks) if peaks else None

    def memory_samples(self, key: str) -> list[float]:
        """Per-round figures of one memory key (peak_rss_bytes, cuda_max_reserved_bytes, ...)."""
        return round_figures(self.rounds, key)

    def image_hashes(self) -> list[str]:
        return sorted({r["image_sha256"] for r in self.rounds})

    def roofline(self) -> dict[str, Any] | None:
        """How far the timed steps are from the host's matrix-multiply peak; None before any load.

        Each denoising step is one denoiser call (the classifier-free guidance halves in one
        batch), so the achieved rate is FLOPs per call times the steps over their time. A step
        whose start was not seen (a denoiser without hooks: OpenVINO) is recorded as 0 s and
        left out."""
        counted = self.load.get("roofline")
        if not counted:
            return None
        if "error" in counted:
            return {"error": counted["error"]}
        steps = [step for step in round_steps(self.rounds) if step > 0]
        flops = counted["flops_per_denoiser_call"]
        achieved = flops * len(steps) / sum(steps) if steps else None
        peak = counted["peak_flops"]
        return {
            "flops_per_denoiser_call": flops,
            "achieved_flops": achieved,
            "peak_flops": peak,
            "fraction_of_peak": achieved / peak if achieved and peak else None,
            "peak_dtype": counted.get("dtype"),
            "peak_threads": counted.get("threads"),
            "peak_device": counted.get("device"),
            "steps_timed": len(steps),
        }


def summarise(result: CaseResult) -> dict[str, Any]:
    """What goes into pytest-benchmark's extra_info for one case."""
    return {
        "sdperf_schema": RESULT_SCHEMA_VERSION,
        "profile": result.profile,
        "recipe": result.recipe,
        "model": result.model,
        "workload": result.workload,
        "load": result.load,
        "first_call_s": result.first_call_s,
        "phase_means_s": result.phase_means(),
        "seconds_per_step": result.seconds_per_step(),
        "roofline": result.roofline(),
        "peak_rss_bytes": result.peak_rss_bytes(),
        "image_sha256": result.image_hashes(),
        "rounds": result.rounds,
        "latencies_s": result.parent_latencies_s,
        "control_latencies_s": result.control_latencies_s,
        "control_rounds": result.control_rounds,
        "control_recipe": result.control_recipe,
        "ab_image": result.ab_image,
        "workers_started": result.workers_started,
        "verdicts": result.verdicts,
        "baseline_source": result.baseline_source,
        "reference": result.reference,
        "image_path": result.image_path,
    }
