"""The settings that regenerate an image, validated, as PNG metadata carries them
(`sdperf.common.pngmeta` writes and reads them; `sdperf.common.a1111` formats them as text)."""

from __future__ import annotations

import json
import math
import numbers
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

SUITE_KEY_PREFIX = "sdperf:"
# Stored as sdperf:format; bump when the meaning of a chunk changes, and read old ones.
# 1: one iTXt chunk per GenerationSettings field, packages as a JSON object.
FORMAT_VERSION = 1
# Per text field (and for the packages JSON). Far above any real prompt, and far below
# Pillow's default MAX_TEXT_MEMORY even with every field at the limit and the
# `parameters` chunk repeating them, so what is written can always be read back.
MAX_TEXT_CHARS = 65536
PARAMETERS_KEY = "parameters"

_SEED_MAX = 2**64 - 1
_DIMENSION_MAX = 2**31 - 1  # PNG's own limit for width and height; also bounds steps
_CANONICAL_NAN_BITS = 0x7FF8000000000000
_HEX64 = re.compile(r"[0-9a-f]{64}")
WHOLE_NUMBER = re.compile(r"0|[1-9][0-9]*")
_FLOAT = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?inf|[+-]?nan|nan\(0x[0-9a-f]{16}\)"
)
SIZE_TEXT = re.compile(r"([1-9][0-9]*)x([1-9][0-9]*)")


class PngMetadataError(ValueError):
    """Anything wrong with settings, a PNG file or a `parameters` text; the message says what and how to fix it."""


def show_value(value: object, limit: int = 60) -> str:
    """repr() cut to a readable length, for error messages about long prompts."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}...({len(text)} chars)"


# --------------------------------------------------------------------------- settings


def _float_bits(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0]


def _bits_float(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def format_float(value: float) -> str:
    """Text that reads back to the same 64 bits: repr() is exact for every float but NaN,
    whose sign and payload are written as `nan(0x<bits>)` unless it is the usual NaN."""
    if math.isnan(value):
        bits = _float_bits(value)
        return "nan" if bits == _CANONICAL_NAN_BITS else f"nan(0x{bits:016x})"
    return repr(value)


def parse_float(text: str) -> float | None:
    """Inverse of `format_float`, also taking plain decimals such as A1111's `7`; None if not a number."""
    if not _FLOAT.fullmatch(text):
        return None
    if text.startswith("nan(0x"):
        bits = int(text[6:22], 16)
        is_nan = (bits >> 52) & 0x7FF == 0x7FF and bits & ((1 << 52) - 1)
        return _bits_float(bits) if is_nan else None
    if text == "nan":
        return _bits_float(_CANONICAL_NAN_BITS)
    return float(text)


def _whole(value: object, name: str, low: int, high: int) -> int:
    # bool is an int, but True steps is a bug; numpy integers are welcome (via __index__).
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise PngMetadataError(
            f"GenerationSettings.{name}: {show_value(value)} ({type(value).__name__}) is not a whole number; "
            f"give an int from {low} to {high}"
        )
    number = value.__index__()  # type: ignore[attr-defined]
    if not low <= number <= high:
        raise PngMetadataError(
            f"GenerationSettings.{name}: {number} is out of range; give an int from {low} to {high}"
        )
    return int(number)


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise PngMetadataError(
            f"GenerationSettings.{name}: {show_value(value)} ({type(value).__name__}) is not a str; pass text"
        )
    value = str(value)  # a str subclass (Pillow's iTXt, numpy.str_) becomes a plain str
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise PngMetadataError(
            f"GenerationSettings.{name} has a lone surrogate {value[error.start]!r} at index {error.start}, "
            "which UTF-8 cannot encode; fix the text where it was made (bytes decoded with "
            "errors='surrogateescape' or half of an emoji)"
        ) from None
    if len(value) > MAX_TEXT_CHARS:
        raise PngMetadataError(
            f"GenerationSettings.{name} is {len(value)} characters long; at most {MAX_TEXT_CHARS} are stored"
        )
    return value


@dataclass(frozen=True, eq=False)
class GenerationSettings:
    """Everything needed to regenerate an image; validated and normalised on creation.

    Equality compares `guidance` by its 64 bits, so NaN equals the same NaN and -0.0
    differs from 0.0: two settings are equal exactly when they regenerate alike.
    `packages` is kept as a sorted copy; treat it as read-only.
    """

    prompt: str
    steps: int
    width: int
    height: int
    seed: int
    guidance: float | None = None
    prompt_2: str | None = None
    prompt_3: str | None = None
    negative_prompt: str | None = None
    scheduler: str = ""
    model: str = ""
    model_sha256: str = ""
    recipe: str = ""
    packages: Mapping[str, str] = field(default_factory=dict)
    suite_version: str = ""

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        """Validates and normalises every field; write_png calls it again in case a field
        was set behind the frozen dataclass's back (object.__setattr__)."""
        put = object.__setattr__
        put(self, "steps", _whole(self.steps, "steps", 1, _DIMENSION_MAX))
        put(self, "width", _whole(self.width, "width", 1, _DIMENSION_MAX))
        put(self, "height", _whole(self.height, "height", 1, _DIMENSION_MAX))
        put(self, "seed", _whole(self.seed, "seed", 0, _SEED_MAX))
        if self.guidance is not None:
            if isinstance(self.guidance, bool) or not isinstance(self.guidance, numbers.Real):
                raise PngMetadataError(
                    f"GenerationSettings.guidance: {show_value(self.guidance)} ({type(self.guidance).__name__}) "
                    "is not a number; give a float or None"
                )
            try:
                put(self, "guidance", float(self.guidance))
            except OverflowError:
                raise PngMetadataError(
                    f"GenerationSettings.guidance: {show_value(self.guidance)} is too large for a float; "
                    "give a float or None"
                ) from None
        for name in ("prompt", "scheduler", "model", "model_sha256", "recipe", "suite_version"):
            put(self, name, _text(getattr(self, name), name))
        for name in ("prompt_2", "prompt_3", "negative_prompt"):
            if getattr(self, name) is not None:
                put(self, name, _text(getattr(self, name), name))
        if self.model_sha256 and not _HEX64.fullmatch(self.model_sha256):
            raise PngMetadataError(
                f"GenerationSettings.model_sha256: {show_value(self.model_sha256)} is not 64 lowercase hex digits; "
                "give hashlib.sha256(...).hexdigest() or leave it empty"
            )
        if not isinstance(self.packages, Mapping):
            raise PngMetadataError(
                f"GenerationSettings.packages: {show_value(self.packages)} ({type(self.packages).__name__}) "
                "is not a mapping; give a dict of package name to version"
            )
        packages: dict[str, str] = {}
        for name, version in sorted(self.packages.items(), key=lambda item: str(item[0])):
            name = _text(name, "packages key")
            if not name:
                raise PngMetadataError("GenerationSettings.packages has an empty package name; name every package")
            packages[name] = _text(version, f"packages[{name!r}]")
        if len(json.dumps(packages, ensure_ascii=False)) > MAX_TEXT_CHARS:
            raise PngMetadataError(
                f"GenerationSettings.packages is longer than {MAX_TEXT_CHARS} characters as JSON; list fewer packages"
            )
        put(self, "packages", packages)

    def _identity(self) -> tuple[Any, ...]:
        values: list[Any] = []
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "guidance" and value is not None:
                value = ("bits", _float_bits(value))
            elif item.name == "packages":
                value = tuple(sorted(value.items()))
            values.append(value)
        return tuple(values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GenerationSettings):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())


def require_settings(settings: object, where: str) -> GenerationSettings:
    if not isinstance(settings, GenerationSettings):
        raise PngMetadataError(f"{where}: settings must be a GenerationSettings, got {type(settings).__name__}")
    settings._check()
    return settings


# ------------------------------------------------------------------ PNG keywords


def check_keyword(key: str) -> str:
    """`key` if it is a valid PNG text keyword (1-79 printable Latin-1 characters, no
    leading, trailing or double spaces), else PngMetadataError; readers may reject others."""
    problem = ""
    if not isinstance(key, str):
        problem = f"is a {type(key).__name__}, not a str"
    elif not 1 <= len(key) <= 79:
        problem = f"is {len(key)} characters long; PNG allows 1 to 79"
    elif bad := [c for c in key if not (" " <= c <= "~" or "\xa1" <= c <= "\xff")]:
        problem = f"has {bad[0]!r}, which is not a printable Latin-1 character"
    elif key != key.strip(" "):
        problem = "starts or ends with a space"
    elif "  " in key:
        problem = "has two spaces in a row"
    if problem:
        raise PngMetadataError(f"PNG text keyword {show_value(key)} {problem}; pick a keyword that follows the PNG rules")
    return key
