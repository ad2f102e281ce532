"""Command-line options and ini keys, parsed once into a frozen `Settings`.

Every option lives in the `sdperf` group, is prefixed `--sdperf-`, and has an
ini key of the same name with underscores; a bad value names where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sdperf.config.profiles import DEFAULT_PROFILES_FILE, Profile, ProfileError, check_profile_name, load_profiles
from sdperf.config.recipes import REGISTRY, user_recipe_names
from sdperf.models.store import ModelSpec, parse_model_option

# (option suffix, help, ini type); ini key is "sdperf_" + suffix with underscores.
OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("model", "built-in model (builtin:tiny-sd15, builtin:tiny-sd3; full size, synthetic weights: builtin:sd15, "
     "builtin:sd3-medium; list them: sdperf models) or a local diffusers folder of real weights", "string"),
    ("profile", "emulate this hardware profile here (its recipes and settings, on the built-in model)", "string"),
    ("recipes", "comma-separated recipe names to run (default: each profile's recipes)", "string"),
    ("rounds", "timed rounds per case (default: from the profile)", "string"),
    ("warmup", "untimed warm-up generations per case (default: from the profile)", "string"),
    ("workers", "fresh worker processes a case's rounds are spread over, each loaded and warmed up (default: "
     "from the profile; 2 or more lets the determinism check compare workers without drawing more images)", "string"),
    ("timeout", "seconds one case may take in all before its worker is killed (default: from the profile)", "string"),
    ("progress", "seconds between live progress lines of a running case (0: off; default 5)", "string"),
    ("profiles-file", "TOML file of hardware profiles (default: the one shipped with sdperf)", "string"),
    ("host-root", "read the host's /proc and /sys under this folder (e.g. a container's mount of them)", "string"),
    ("save-images", "save each case's image, with its settings in PNG metadata, under this folder", "string"),
    ("golden-dir", "folder of golden images (default: baselines/golden)", "string"),
    ("markdown", "also write the results as Markdown to this file (always appended to $GITHUB_STEP_SUMMARY when set)",
     "string"),
    ("vram-cap", "MiB of GPU memory each CUDA worker may use, CUDA context included: emulates a smaller card "
     "(6144 for a 6 GB card) on a larger one", "string"),
    ("ab", "compare two dependency locks, BASE,HEAD (pip requirements files of pinned versions): each case runs in "
     "an environment of each (created once per lock, cached), alternately, and fails when HEAD is slower, needs more "
     "memory or draws another image; `sdperf ab BASE HEAD` runs this", "string"),
    ("inherit-env", "comma-separated environment variables workers inherit beyond the few they need to run "
     "(PATH, HOME, locale, caches); everything a worker runs with is recorded in its audit", "string"),
    ("history", "folder that keeps every run's finished cases, for noise learned night to night, change points and "
     "the dashboard (default: $SDPERF_HISTORY, else the user's data folder; off: keep none)", "string"),
    ("interleave", "time each case alternately with its profile's control case (fp32 on CPUs) in a second worker, so machine drift "
     "cancels, and judge it against that case pair by pair (ini: yes/no)", "string"),
)
# Options given without a value on the command line (their ini keys take yes/no).
FLAGS = {"interleave"}


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("sdperf", "Stable Diffusion performance suite")
    for suffix, help_text, ini_type in OPTIONS:
        dest = "sdperf_" + suffix.replace("-", "_")
        if suffix in FLAGS:
            group.addoption(f"--sdperf-{suffix}", dest=dest, default=None, action="store_const", const="yes",
                            help=help_text)
        else:
            group.addoption(f"--sdperf-{suffix}", dest=dest, default=None, help=help_text)
        parser.addini(dest, help=help_text, type=ini_type, default=None)
    # An explicit act each time, so no ini key: goldens never change as a side effect.
    group.addoption(
        "--sdperf-record-golden", action="store_true", default=False,
        help="record this run's fixed-seed images as the golden ones (overwrites)",
    )


def _raw(config: pytest.Config, suffix: str) -> tuple[Any, str]:
    dest = "sdperf_" + suffix.replace("-", "_")
    value = config.getoption(dest)
    if value is not None:
        return value, f"--sdperf-{suffix}"
    value = config.getini(dest)
    if value not in (None, ""):
        overridden = any(item.split("=", 1)[0].strip() == dest for item in (config.option.override_ini or ()))
        if overridden:
            return value, f"-o {dest}"
        source = config.inipath.name if config.inipath else "ini file"
        return value, f"ini key {dest} in {source}"
    return None, ""


def _number(config: pytest.Config, suffix: str, kind: type, minimum: float) -> Any:
    value, source = _raw(config, suffix)
    if value is None:
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number < minimum:
        kind_name = "a whole number" if kind is int else "a number"
        raise pytest.UsageError(f"{source}: {value!r} is not valid; give {kind_name} >= {minimum:g}")
    return number


@dataclass(frozen=True)
class Settings:
    profiles: dict[str, Profile]
    model: ModelSpec | None
    emulate: str | None
    recipes: tuple[str, ...] | None
    run_override: dict[str, Any]
    progress_every_s: float
    host_root: Path = Path("/")
    save_images: Path | None = None
    golden_dir: Path | None = None
    record_golden: bool = False
    markdown: Path | None = None
    interleave: bool = False
    vram_cap_mib: int | None = None
    ab: tuple[Path, Path] | None = None  # (base lock, head lock)
    inherit_env: tuple[str, ...] = ()  # variables workers get from this process beyond the allow-list
    history: str | None = None  # --sdperf-history as given: a folder, "off", or None (SDPERF_HISTORY, default)

    def worker_env(self, device: str) -> dict[str, str]:
        """Variables a case's worker gets from these settings (the VRAM cap, on CUDA)."""
        if device == "cuda" and self.vram_cap_mib:
            return {"SDPERF_VRAM_CAP_MIB": str(self.vram_cap_mib)}
        return {}

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        file_value, file_source = _raw(config, "profiles-file")
        try:
            profiles = load_profiles(Path(file_value) if file_value else DEFAULT_PROFILES_FILE)
        except ProfileError as error:
            raise pytest.UsageError(f"{file_source + ': ' if file_source else ''}{error}") from None

        model_value, model_source = _raw(config, "model")
        try:
            model = parse_model_option(str(model_value), model_source) if model_value else None
        except ValueError as error:
            raise pytest.UsageError(str(error)) from None

        emulate_value, emulate_source = _raw(config, "profile")
        try:
            emulate = check_profile_name(emulate_value, emulate_source) if emulate_value else None
        except ProfileError as error:
            raise pytest.UsageError(str(error)) from None

        recipes_value, recipes_source = _raw(config, "recipes")
        recipes = None
        if recipes_value:
            recipes = tuple(name.strip() for name in str(recipes_value).split(",") if name.strip())
            unknown = [name for name in recipes if name not in REGISTRY]
            if unknown:
                raise pytest.UsageError(
                    f"{recipes_source}: recipe(s) {', '.join(map(repr, unknown))} unknown; "
                    f"known: {', '.join(user_recipe_names())}"
                )

        run_override: dict[str, Any] = {}
        for suffix, field_name, kind, minimum in (
            ("rounds", "rounds", int, 1),
            ("warmup", "warmup", int, 0),
            ("workers", "workers", int, 1),
            ("timeout", "timeout_s", float, 0.001),
        ):
            number = _number(config, suffix, kind, minimum)
            if number is not None:
                run_override[field_name] = number
        progress = _number(config, "progress", float, 0)
        root_value, root_source = _raw(config, "host-root")
        host_root = Path(root_value) if root_value else Path("/")
        if not host_root.is_dir():
            raise pytest.UsageError(f"{root_source}: {str(root_value)!r} is not a folder; give the folder holding proc/ and sys/")
        images_value, _ = _raw(config, "save-images")
        golden_value, _ = _raw(config, "golden-dir")
        markdown_value, _ = _raw(config, "markdown")
        interleave_value, interleave_source = _raw(config, "interleave")
        interleave = str(interleave_value or "no").strip().lower()
        if interleave not in ("yes", "no", "true", "false", "1", "0"):
            raise pytest.UsageError(f"{interleave_source}: {interleave_value!r} is not valid; give yes or no")
        inherit_value, inherit_source = _raw(config, "inherit-env")
        inherit_env = tuple(name.strip() for name in str(inherit_value or "").split(",") if name.strip())
        bad = [name for name in inherit_env if not name.replace("_", "").isalnum() or name[0].isdigit()]
        if bad:
            raise pytest.UsageError(
                f"{inherit_source}: {', '.join(map(repr, bad))} is not an environment variable name; "
                "give names such as PYTHONPATH,OMP_WAIT_POLICY"
            )
        ab = _ab_locks(config)
        history_value, _ = _raw(config, "history")
        if ab and interleave in ("yes", "true", "1"):
            raise pytest.UsageError(
                "--sdperf-ab and --sdperf-interleave both choose what a case is timed against; give one"
            )
        return cls(
            profiles=profiles,
            model=model,
            emulate=emulate,
            recipes=recipes,
            run_override=run_override,
            progress_every_s=5.0 if progress is None else progress,
            host_root=host_root,
            save_images=Path(images_value).resolve() if images_value else None,
            golden_dir=Path(golden_value).resolve() if golden_value else None,
            record_golden=bool(config.getoption("sdperf_record_golden")),
            markdown=Path(markdown_value).resolve() if markdown_value else None,
            interleave=interleave in ("yes", "true", "1"),
            vram_cap_mib=_number(config, "vram-cap", int, 1),
            ab=ab,
            inherit_env=inherit_env,
            history=str(history_value) if history_value else None,
        )


def _ab_locks(config: pytest.Config) -> tuple[Path, Path] | None:
    value, source = _raw(config, "ab")
    if not value:
        return None
    parts = [part.strip() for part in str(value).split(",")]
    if len(parts) != 2 or not all(parts):
        raise pytest.UsageError(f"{source}: {value!r} is not valid; give two lock files, BASE,HEAD")
    locks = []
    for part in parts:
        path = Path(part).expanduser().resolve()
        if not path.is_file():
            raise pytest.UsageError(f"{source}: lock file {part!r} does not exist; give two lock files, BASE,HEAD")
        locks.append(path)
    return locks[0], locks[1]
