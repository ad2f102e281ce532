"""A case's run-to-run noise on one machine, learned from its history, and the smallest change
that machine can see.

Nights on which nothing the result depends on changed (same lock, sdperf commit, model and
workload) are A/A runs. The noise is the robust spread of successive such nights: the median
absolute difference of the logarithms of their medians, scaled to a normal standard deviation
and divided by sqrt(2). Differences only pair nights of one environment, so a change of
package or model is never counted as noise; the median ignores a wild night. The unit is the
night (a run's median): its rounds and steps refine that median, never count as nights.

Until `needed` such nights exist the profile's prior (`session_noise`) is used and the
report says "calibrating: N of M nights".
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from typing import Any

_MAD_TO_SD = 1.4826
_Z95 = 1.959964
_Z_POWER80 = 0.841621


def environment_of(entry: dict[str, Any]) -> tuple:
    """What, when it changes, makes two nights not an A/A pair."""
    environment = entry.get("environment") or {}
    return (environment.get("lock_sha256"), environment.get("sdperf_commit"),
            entry.get("model_sha256") or entry.get("model"), entry.get("recipe"),
            json.dumps(entry.get("workload"), sort_keys=True))


@dataclass(frozen=True)
class LearnedNoise:
    spread: float | None  # relative standard deviation of one night's median; None before 2 A/A nights
    nights: int  # nights that have an A/A partner (the evidence)
    needed: int
    prior: float
    reference_nights: int  # nights in the newest environment: what a new night is compared with

    @property
    def calibrating(self) -> bool:
        return self.spread is None or self.nights < self.needed

    @property
    def used(self) -> float:
        """The figure verdicts use: the learned one once calibrated, the profile's prior before."""
        return self.prior if self.calibrating else self.spread

    def detectable(self, lasting: int) -> float:
        """Smallest change (a fraction) seen with 95% confidence and 80% power when it lasts
        `lasting` nights, against the nights before it in the newest environment."""
        reference = max(self.reference_nights, 1)
        log_change = (_Z95 + _Z_POWER80) * self.used * math.sqrt(1 / lasting + 1 / reference)
        return math.expm1(log_change)

    def describe(self, threshold: float | None = None) -> str:
        if self.calibrating:
            text = (f"calibrating: {self.nights} of {self.needed} nights; using the profile's prior noise "
                    f"{self.prior:.1%}")
        else:
            text = f"run-to-run noise {self.spread:.1%}, learned from {self.nights} nights with nothing changed"
        if self.used:
            text += (f"; this runner sees a change of {self.detectable(1):.0%} in one night, "
                     f"{self.detectable(3):.0%} when it lasts 3 nights")
            if threshold is not None and self.detectable(3) < threshold:
                text += f" (the {threshold:.0%} threshold decides what counts)"
        return text

    def to_json(self) -> dict[str, Any]:
        return {"spread": self.spread, "nights": self.nights, "needed": self.needed, "prior": self.prior,
                "calibrating": self.calibrating, "used": self.used,
                "detectable_one_night": self.detectable(1) if self.used else None,
                "detectable_three_nights": self.detectable(3) if self.used else None}


def learn_noise(entries: list[dict[str, Any]], prior: float, needed: int = 5) -> LearnedNoise:
    """The noise of one case's series (its entries on one machine, oldest first)."""
    differences = []
    partnered: set[int] = set()
    for index, (before, after) in enumerate(zip(entries, entries[1:])):
        if environment_of(before) == environment_of(after):
            differences.append(abs(math.log(after["median_s"] / before["median_s"])))
            partnered.update((index, index + 1))
    spread = _MAD_TO_SD * statistics.median(differences) / math.sqrt(2) if differences else None
    newest = environment_of(entries[-1]) if entries else None
    reference = sum(1 for entry in entries if environment_of(entry) == newest)
    return LearnedNoise(spread, len(partnered), needed, prior, reference)
