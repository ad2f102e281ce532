"""Seeded weights that are a pure function of (parameter name, shape, seed).

Library initialisers change between releases (transformers changed its default
init between 5.5 and 5.23, which moved the generated image). Deriving every
value from SHAKE-256 of the parameter's name and seed gives the same bytes on
every machine and every library version.
"""

from __future__ import annotations

import hashlib
import math

# Bump when the scheme below changes: it is part of the built-in models' recipe.
SCHEME_VERSION = 1

_NORM_HINTS = ("norm", "ln_", "layer_norm", "layernorm", "group_norm")


def _uniform(key: str, count: int):
    """`count` floats in [-1, 1) drawn from SHAKE-256 of `key`."""
    import numpy as np

    raw = hashlib.shake_256(key.encode("utf-8")).digest(4 * count)
    ints = np.frombuffer(raw, dtype="<u4").astype(np.float64)
    return (ints / 2.0**32) * 2.0 - 1.0


def _is_norm_scale(name: str, shape: tuple[int, ...]) -> bool:
    lowered = name.lower()
    return len(shape) == 1 and lowered.endswith("weight") and any(h in lowered for h in _NORM_HINTS)


def seeded_values(name: str, shape: tuple[int, ...], seed: int):
    """Values for one parameter, scaled like a sensible init so activations stay finite."""
    count = math.prod(shape) if shape else 1
    noise = _uniform(f"sdperf-weights/v{SCHEME_VERSION}/{seed}/{name}", count).reshape(shape)
    if _is_norm_scale(name, shape):
        values = 1.0 + 0.1 * noise
    elif len(shape) <= 1:
        values = 0.02 * noise
    else:
        fan_in = math.prod(shape[1:])
        # Uniform on [-a, a] has std a/sqrt(3); aim for std 1/sqrt(fan_in).
        values = noise * math.sqrt(3.0 / fan_in)
    return values.astype("float32")
