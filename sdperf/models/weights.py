"""Seeded weights that are a pure function of (parameter name, shape, seed).

Library initialisers change between releases (transformers changed its default
init between 5.5 and 5.23, which moved the generated image). Deriving every
value from SHAKE-256 of the parameter's name and seed gives the same bytes on
every machine and every library version.
"""

from __future__ import annotations

import hashlib
import math

# A recipe names its scheme; a changed scheme is a new number (the recipe is the cache key).
# The tiny models keep scheme 1 (their goldens depend on its exact values); the full-size
# ones use scheme 2, as version-independent and about ten times faster for a billion values.
SCHEMES = (1, 2)

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


def _uniform_fast(key: str, count: int):
    """`count` float32 values in [-1, 1), 2**23 levels, from a PCG64 stream keyed by SHAKE-256 of `key`.

    NumPy keeps its bit generators' raw streams stable across releases (NEP 19), and
    the conversion below is exact in float32, so the values are the same everywhere.
    """
    import numpy as np

    seed = int.from_bytes(hashlib.shake_256(key.encode("utf-8")).digest(16), "little")
    raw = np.random.PCG64(seed).random_raw((count + 1) // 2)  # 64 bits give two values
    low_bits = raw.view("<u4")[:count] & np.uint32(0x7FFFFF)
    values = low_bits.astype(np.float32)
    values *= np.float32(2.0**-22)
    values -= np.float32(1.0)
    return values


def _scale(name: str, shape: tuple[int, ...]) -> tuple[float, float]:
    """(offset, spread) of a parameter, like a sensible init so activations stay finite."""
    if _is_norm_scale(name, shape):
        return 1.0, 0.1
    if len(shape) <= 1:
        return 0.0, 0.02
    # Uniform on [-a, a] has std a/sqrt(3); aim for std 1/sqrt(fan_in).
    return 0.0, math.sqrt(3.0 / math.prod(shape[1:]))


def seeded_values(name: str, shape: tuple[int, ...], seed: int, scheme: int = 1):
    """Values (float32) for one parameter of a built-in model, by weights scheme."""
    count = math.prod(shape) if shape else 1
    offset, spread = _scale(name, shape)
    if scheme == 1:
        noise = _uniform(f"sdperf-weights/v1/{seed}/{name}", count).reshape(shape)
        return (offset + spread * noise if offset else spread * noise).astype("float32")
    if scheme == 2:
        import numpy as np

        values = _uniform_fast(f"sdperf-weights/v2/{seed}/{name}", count).reshape(shape)
        values *= np.float32(spread)
        if offset:
            values += np.float32(offset)
        return values
    raise ValueError(f"weights scheme {scheme!r} is unknown; known: {SCHEMES}")
