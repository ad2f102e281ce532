"""Named optimisation recipes: one registry entry each.

An entry says which profiles it belongs to, how the worker process must be
started (environment) and which pipeline transform the worker applies. The
transform itself lives in the worker (`sdperf.worker.transforms`), so this
module stays import-light for the pytest process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

FIDELITY_CLASSES = ("bit-exact", "close", "changes-image")


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    profiles: tuple[str, ...]
    # Set (str) or removed (None) in the worker's environment before it starts.
    env: Mapping[str, str | None] = field(default_factory=dict)
    transform: str | None = None
    # What the image may do against the profile's fp32 image, and the PSNR floor for
    # "close" and "changes-image", with the measurement that justified it.
    fidelity: str = "bit-exact"
    min_psnr_db: float | None = None
    fidelity_evidence: str = ""

    def __post_init__(self) -> None:
        if self.fidelity not in FIDELITY_CLASSES:
            raise ValueError(f"recipe {self.name!r}: fidelity {self.fidelity!r} is not one of {FIDELITY_CLASSES}")
        if self.fidelity != "bit-exact" and (self.min_psnr_db is None or not self.fidelity_evidence):
            raise ValueError(
                f"recipe {self.name!r}: fidelity {self.fidelity!r} needs min_psnr_db and the fidelity_evidence behind it"
            )


_ALL_CPU = ("cpu", "pi4", "pi5", "sapphire_rapids")

REGISTRY: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            name="fp32",
            summary="diffusers out of the box: fp32 weights, the model's own scheduler, profile thread settings",
            profiles=_ALL_CPU,
        ),
        Recipe(
            name="dpm_solver",
            summary="DPMSolverMultistepScheduler in place of the model's scheduler (the Xeon report's last step)",
            profiles=("cpu", "sapphire_rapids"),
            transform="dpm_solver",
            fidelity="changes-image",
            min_psnr_db=20.0,
            fidelity_evidence=(
                "tiny-sd15, cpu built-in workload (128x128, 20 steps, seed 0), 2026-11-21: 30.0 dB against "
                "PNDM fp32; an unrelated image (seed 1 or 2) scores 9.3-9.4 dB, so 20 dB separates a "
                "different scheduler from a different image"
            ),
        ),
        Recipe(
            name="testonly_slowdown",
            summary=(
                "TEST ONLY, never a default: fp32 made slower on purpose (sleeps a fraction of each call's time, "
                "SDPERF_TESTONLY_SLOWDOWN, default 0.10) to measure how often verdicts catch a known regression"
            ),
            profiles=(*_ALL_CPU, "cuda_lowvram"),
            transform="testonly_slowdown",
        ),
    )
}


def get_recipe(name: str, source: str) -> Recipe:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"{source}: recipe {name!r} is unknown; known: {', '.join(sorted(REGISTRY))}") from None
