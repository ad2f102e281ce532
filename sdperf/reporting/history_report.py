"""Each series of the history judged: its learned noise, its change points with what changed
that night, and the nightly gate's verdict. Shared by `sdperf history` and the dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sdperf.config.profiles import Profile
from sdperf.judging.changes import Analysis, find_changes
from sdperf.judging.noise import LearnedNoise, learn_noise
from sdperf.storage.history import series_keys


def what_changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What a change between two nights can be blamed on: lock packages, sdperf commit, model, settings."""
    found = []
    env_before, env_after = before.get("environment") or {}, after.get("environment") or {}
    pins_before, pins_after = env_before.get("lock_packages") or {}, env_after.get("lock_packages") or {}
    for name in sorted(set(pins_before) | set(pins_after)):
        if pins_before.get(name) != pins_after.get(name):
            found.append(f"{name} {pins_before.get(name) or '(none)'} -> {pins_after.get(name) or '(none)'}")
    if not pins_before and not pins_after:
        # No lock recorded: the stack's own versions are what there is.
        packages_before, packages_after = env_before.get("packages") or {}, env_after.get("packages") or {}
        for name in sorted(set(packages_before) | set(packages_after)):
            if packages_before.get(name) != packages_after.get(name):
                found.append(f"{name} {packages_before.get(name)} -> {packages_after.get(name)}")
    if env_before.get("sdperf_commit") != env_after.get("sdperf_commit"):
        found.append(f"sdperf commit {_short(env_before.get('sdperf_commit'))} -> {_short(env_after.get('sdperf_commit'))}")
    if (before.get("model_sha256"), before.get("model")) != (after.get("model_sha256"), after.get("model")):
        found.append(f"model {before.get('model')} ({_short(before.get('model_sha256'))}) -> "
                     f"{after.get('model')} ({_short(after.get('model_sha256'))})")
    if before.get("workload") != after.get("workload"):
        found.append("workload (prompt, size, steps or seed)")
    for key in ("python", "kernel"):
        if env_before.get(key) != env_after.get(key):
            found.append(f"{key} {env_before.get(key)} -> {env_after.get(key)}")
    return found


def _short(text: str | None) -> str:
    return (text or "none")[:12]


@dataclass
class SeriesReport:
    storage_key: str
    machine: str
    case: str
    profile: str
    threshold: float
    entries: list[dict[str, Any]]
    noise: LearnedNoise
    analysis: Analysis

    @property
    def title(self) -> str:
        return f"{self.storage_key}/{self.machine}/{self.case}"

    def changes_json(self) -> list[dict[str, Any]]:
        found = []
        for change in self.analysis.changes:
            first, previous = self.entries[change.index], self.entries[change.index - 1]
            found.append({
                "case": self.case, "storage_key": self.storage_key, "machine": self.machine,
                "first_run": first["run"], "first_night": change.index, "last_run_before": previous["run"],
                "ratio": change.ratio, "ci_low": change.ci_low, "ci_high": change.ci_high,
                "p_value": change.p_value, "direction": change.direction,
                "nights_before": change.before_nights, "nights_after": change.after_nights,
                "what_changed": what_changed(previous, first),
            })
        return found

    def gate(self) -> str:
        return self.analysis.gate()

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.case, "storage_key": self.storage_key, "machine": self.machine, "profile": self.profile,
            "threshold": self.threshold, "nights": len(self.entries), "noise": self.noise.to_json(),
            "changes": self.changes_json(), "suspected": self._suspected_json(), "gate": self.gate(),
        }

    def _suspected_json(self) -> dict[str, Any] | None:
        suspected = self.analysis.suspected
        if suspected is None:
            return None
        return {**suspected, "run": self.entries[suspected["index"]]["run"]}


def profile_of(storage_key: str) -> str:
    """The profile a storage key holds: cpu, emulated-pi5 -> pi5, ab-emulated-pi5 -> pi5."""
    return storage_key.removeprefix("ab-").removeprefix("emulated-")


def analyse(entries: list[dict[str, Any]], profiles: dict[str, Profile],
            profile: str | None = None, case: str | None = None) -> list[SeriesReport]:
    """Every series (storage key x machine x case) of `entries`, optionally of one storage key
    (`profile`: pi5 is the real board's runs; emulated-pi5 and ab-pi5 are kept, and chosen, apart)
    or one case."""
    reports = []
    for storage_key, machine, case_id in series_keys(entries):
        name = profile_of(storage_key)
        if profile and storage_key != profile:
            continue
        if case and case_id != case:
            continue
        found = [e for e in entries if (e["storage_key"], e["machine"], e["case"]) == (storage_key, machine, case_id)]
        policy = profiles[name].verdict if name in profiles else None
        prior = policy.session_noise if policy else 0.0
        threshold = policy.threshold if policy else 0.05
        noise = learn_noise(found, prior, policy.calibration_nights if policy else 5)
        learned = None if noise.calibrating else noise.spread
        analysis = find_changes([e["median_s"] for e in found], threshold, noise=learned)
        reports.append(SeriesReport(storage_key, machine, case_id, name, threshold, found, noise, analysis))
    return reports
