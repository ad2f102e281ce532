"""Hardware profiles loaded from TOML into small, self-validating dataclasses."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROFILE_NAMES = ("pi4", "pi5", "sapphire_rapids", "cuda_lowvram", "cpu")
DEFAULT_PROFILES_FILE = Path(__file__).with_name("profiles.toml")
SCHEMA_VERSION = 1


class ProfileError(ValueError):
    """A profile file or value is wrong; the message names where and how to fix it."""


@dataclass(frozen=True)
class Workload:
    """What one generation does: the arguments of the pipeline call."""

    prompt: str
    height: int
    width: int
    steps: int
    seed: int = 0
    prompt_2: str | None = None
    prompt_3: str | None = None
    negative_prompt: str | None = None
    guidance: float | None = None
    generator_device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0 or value % 8:
                raise ProfileError(f"workload {name}={value!r} must be a positive multiple of 8 (the VAE scale factor)")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ProfileError(f"workload steps={self.steps!r} must be a positive integer")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**64:
            raise ProfileError(f"workload seed={self.seed!r} must be an integer in 0..2**64-1")
        if self.generator_device not in ("cpu", "cuda"):
            raise ProfileError(f"workload generator_device={self.generator_device!r}; use 'cpu' or 'cuda'")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RunSize:
    """How many rounds to time, how many to discard first, when to give up, and over how many
    fresh workers the rounds are spread (each warmed up; interleaved runs rotate every
    `pairs_per_worker` pairs instead). Two workers prove a fixed seed draws the same image in
    a fresh process without drawing an image more."""

    rounds: int
    warmup: int
    timeout_s: float
    workers: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.rounds, int) or self.rounds < 1:
            raise ProfileError(f"rounds={self.rounds!r} must be an integer >= 1")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ProfileError(f"warmup={self.warmup!r} must be an integer >= 0")
        if not isinstance(self.timeout_s, (int, float)) or self.timeout_s <= 0:
            raise ProfileError(f"timeout_s={self.timeout_s!r} must be a positive number of seconds")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ProfileError(f"workers={self.workers!r} must be an integer >= 1")

    @property
    def rounds_per_worker(self) -> int:
        """Rounds each worker times before a fresh one takes over (never fewer than one)."""
        return -(-self.rounds // min(self.workers, self.rounds))


@dataclass(frozen=True)
class Limits:
    """Memory budgets, and how far the CPU clock may sag before a result is invalid."""

    peak_rss_mb: int | None = None
    cuda_reserved_mb: int | None = None
    cpu_freq_drop: float | None = None

    def __post_init__(self) -> None:
        for name in ("peak_rss_mb", "cuda_reserved_mb"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ProfileError(f"limits {name}={value!r} must be a positive whole number of MiB")
        drop = self.cpu_freq_drop
        if drop is not None and (not isinstance(drop, (int, float)) or not 0 < drop < 1):
            raise ProfileError(f"limits cpu_freq_drop={drop!r} must be a fraction between 0 and 1, e.g. 0.1")


@dataclass(frozen=True)
class VerdictPolicy:
    """When a difference from the baseline counts: see `sdperf.judging.statistics`."""

    threshold: float = 0.05  # latency change that matters, as a fraction
    memory_threshold: float = 0.05  # the same for peak memory
    alpha: float = 0.05
    # Relative spread of a run's median between sessions on this hardware (measured with
    # A/A reruns); widens every stored-baseline verdict, since rounds inside one run cannot show it.
    session_noise: float = 0.0
    min_rounds: int = 5  # below this many rounds a side, latency verdicts use per-step samples
    # With --sdperf-interleave, both sides get fresh workers after this many pairs.
    pairs_per_worker: int = 5
    # Nights with nothing changed before the noise learned from the history replaces session_noise.
    calibration_nights: int = 5

    def __post_init__(self) -> None:
        for name in ("threshold", "memory_threshold", "alpha"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ProfileError(f"verdict {name}={value!r} must be a fraction between 0 and 1, e.g. 0.05")
        if not isinstance(self.session_noise, (int, float)) or not 0 <= self.session_noise < 1:
            raise ProfileError(f"verdict session_noise={self.session_noise!r} must be a fraction >= 0 and < 1")
        if not isinstance(self.min_rounds, int) or self.min_rounds < 2:
            raise ProfileError(f"verdict min_rounds={self.min_rounds!r} must be an integer >= 2")
        if not isinstance(self.calibration_nights, int) or self.calibration_nights < 2:
            raise ProfileError(f"verdict calibration_nights={self.calibration_nights!r} must be an integer >= 2")
        if not isinstance(self.pairs_per_worker, int) or self.pairs_per_worker < 1:
            raise ProfileError(f"verdict pairs_per_worker={self.pairs_per_worker!r} must be an integer >= 1")


@dataclass(frozen=True)
class Reference:
    """A published figure, shown beside a user's own measurement."""

    recipe: str
    latency_s: float
    label: str
    source: str


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    pipeline: str
    builtin_model: str
    recipes: tuple[str, ...]
    workload: Workload
    real: RunSize
    builtin_workload: Workload
    builtin: RunSize
    env: Mapping[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    verdict: VerdictPolicy = field(default_factory=VerdictPolicy)
    references: tuple[Reference, ...] = ()
    # The recipe every case is judged against when interleaved, and the reference image
    # of fidelity checks: diffusers out of the box on the profile's device.
    control: str = "fp32"

    def workload_for(self, scaled_down: bool) -> Workload:
        """The scaled-down workload for a tiny built-in model, else the report's."""
        return self.builtin_workload if scaled_down else self.workload

    def run_size_for(self, scaled_down: bool) -> RunSize:
        return self.builtin if scaled_down else self.real


_WORKLOAD_FIELDS = {f.name for f in dataclasses.fields(Workload)}
_RUN_FIELDS = {f.name for f in dataclasses.fields(RunSize)}
_LIMIT_FIELDS = {f.name for f in dataclasses.fields(Limits)}
_VERDICT_FIELDS = {f.name for f in dataclasses.fields(VerdictPolicy)}
_PROFILE_KEYS = {
    "description", "pipeline", "builtin_model", "recipes", "workload", "real", "builtin", "env", "limits", "verdict",
    "reference", "control",
}


def _checked_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _profile_from_table(name: str, table: Mapping[str, Any], where: str) -> Profile:
    _checked_keys(table, _PROFILE_KEYS, where)
    for key in ("description", "pipeline", "builtin_model", "workload", "real", "builtin"):
        if key not in table:
            raise ProfileError(f"{where}: missing required key {key!r}")
    _checked_keys(table["workload"], _WORKLOAD_FIELDS, f"{where}.workload")
    _checked_keys(table["real"], _RUN_FIELDS, f"{where}.real")
    _checked_keys(table["builtin"], _WORKLOAD_FIELDS | _RUN_FIELDS, f"{where}.builtin")
    _checked_keys(table.get("limits", {}), _LIMIT_FIELDS, f"{where}.limits")
    _checked_keys(table.get("verdict", {}), _VERDICT_FIELDS, f"{where}.verdict")
    env = dict(table.get("env", {}))
    for key, value in env.items():
        if not isinstance(value, str):
            raise ProfileError(f"{where}.env.{key} = {value!r} must be a string (quote it in TOML)")
    _check_recipes(name, table, where)
    try:
        workload = Workload(**table["workload"])
        builtin_overrides = {k: v for k, v in table["builtin"].items() if k in _WORKLOAD_FIELDS}
        return Profile(
            name=name,
            description=table["description"],
            pipeline=table["pipeline"],
            builtin_model=table["builtin_model"],
            recipes=tuple(table.get("recipes", ())),
            workload=workload,
            real=RunSize(**table["real"]),
            builtin_workload=dataclasses.replace(workload, **builtin_overrides),
            builtin=RunSize(**{k: v for k, v in table["builtin"].items() if k in _RUN_FIELDS}),
            env=env,
            limits=Limits(**table.get("limits", {})),
            verdict=VerdictPolicy(**table.get("verdict", {})),
            references=tuple(Reference(**ref) for ref in table.get("reference", ())),
            control=table.get("control", "fp32"),
        )
    except ProfileError as error:
        raise ProfileError(f"{where}: {error}") from None
    except TypeError as error:
        raise ProfileError(f"{where}: {error}") from None


def _check_recipes(name: str, table: Mapping[str, Any], where: str) -> None:
    from sdperf.config.recipes import REGISTRY, user_recipe_names

    for recipe_name in [*table.get("recipes", ()), table.get("control", "fp32")]:
        recipe = REGISTRY.get(recipe_name)
        if recipe is None:
            raise ProfileError(f"{where}: recipe {recipe_name!r} is unknown; known: {', '.join(user_recipe_names())}")
        if name not in recipe.profiles:
            raise ProfileError(
                f"{where}: recipe {recipe_name!r} is not made for profile {name} (it is for {', '.join(recipe.profiles)})"
            )


def load_profiles(path: Path = DEFAULT_PROFILES_FILE) -> dict[str, Profile]:
    """Read and validate a profile file; every error names the file and the key."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ProfileError(f"profile file {str(path)!r} cannot be read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ProfileError(f"profile file {str(path)!r} is not valid TOML: {error}") from None
    if document.get("schema") != SCHEMA_VERSION:
        raise ProfileError(
            f"profile file {str(path)!r} has schema={document.get('schema')!r}; this sdperf reads schema {SCHEMA_VERSION}"
        )
    tables = document.get("profiles", {})
    unknown = sorted(set(tables) - set(PROFILE_NAMES))
    if unknown:
        raise ProfileError(
            f"profile file {str(path)!r} defines unknown profile(s) {', '.join(unknown)}; known: {', '.join(PROFILE_NAMES)}"
        )
    return {name: _profile_from_table(name, tables[name], f"{path}: profiles.{name}") for name in tables}


def check_profile_name(name: str, source: str) -> str:
    if name not in PROFILE_NAMES:
        raise ProfileError(f"{source}: profile {name!r} is unknown; known: {', '.join(PROFILE_NAMES)}")
    return name
