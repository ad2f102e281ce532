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
    fidelity: str = "bit-exact"

    def __post_init__(self) -> None:
        if self.fidelity not in FIDELITY_CLASSES:
            raise ValueError(f"recipe {self.name!r}: fidelity {self.fidelity!r} is not one of {FIDELITY_CLASSES}")


_ALL_CPU = ("cpu", "pi4", "pi5", "sapphire_rapids")

REGISTRY: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            name="fp32",
            summary="diffusers out of the box: fp32 weights, the model's own scheduler, profile thread settings",
            profiles=_ALL_CPU,
        ),
    )
}


def get_recipe(name: str, source: str) -> Recipe:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"{source}: recipe {name!r} is unknown; known: {', '.join(sorted(REGISTRY))}") from None
