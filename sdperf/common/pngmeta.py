"""Generation settings in PNG metadata: written with every image, read back exactly.

Each field goes into its own iTXt chunk keyed `sdperf:<field>` (authoritative), and
the whole set also into an iTXt `parameters` chunk in the text format AUTOMATIC1111's
web UI writes, so its "PNG info" tab and image managers show the settings. Text goes
into iTXt only: tEXt is Latin-1 by the PNG specification, and UTF-8 written there
(as in the field report this module reproduces) comes back garbled.

Only Pillow and numpy, imported when used: the pytest process never loads torch.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import secrets
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy
    from PIL import Image as PILImage

__all__ = [
    "FORMAT_VERSION",
    "MAX_TEXT_CHARS",
    "PARAMETERS_KEY",
    "SUITE_KEY_PREFIX",
    "GenerationSettings",
    "PngMetadataError",
    "check_keyword",
    "format_parameters",
    "parse_parameters",
    "read_image",
    "read_png",
    "write_png",
]

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
_WHOLE = re.compile(r"0|[1-9][0-9]*")
_FLOAT = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?inf|[+-]?nan|nan\(0x[0-9a-f]{16}\)"
)
_SIZE = re.compile(r"([1-9][0-9]*)x([1-9][0-9]*)")


class PngMetadataError(ValueError):
    """Anything wrong with settings, a PNG file or a `parameters` text; the message says what and how to fix it."""


def _show(value: object, limit: int = 60) -> str:
    """repr() cut to a readable length, for error messages about long prompts."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}...({len(text)} chars)"


# --------------------------------------------------------------------------- settings


def _float_bits(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0]


def _bits_float(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def _format_float(value: float) -> str:
    """Text that reads back to the same 64 bits: repr() is exact for every float but NaN,
    whose sign and payload are written as `nan(0x<bits>)` unless it is the usual NaN."""
    if math.isnan(value):
        bits = _float_bits(value)
        return "nan" if bits == _CANONICAL_NAN_BITS else f"nan(0x{bits:016x})"
    return repr(value)


def _parse_float(text: str) -> float | None:
    """Inverse of `_format_float`, also taking plain decimals such as A1111's `7`; None if not a number."""
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
            f"GenerationSettings.{name}: {_show(value)} ({type(value).__name__}) is not a whole number; "
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
            f"GenerationSettings.{name}: {_show(value)} ({type(value).__name__}) is not a str; pass text"
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
                    f"GenerationSettings.guidance: {_show(self.guidance)} ({type(self.guidance).__name__}) "
                    "is not a number; give a float or None"
                )
            try:
                put(self, "guidance", float(self.guidance))
            except OverflowError:
                raise PngMetadataError(
                    f"GenerationSettings.guidance: {_show(self.guidance)} is too large for a float; "
                    "give a float or None"
                ) from None
        for name in ("prompt", "scheduler", "model", "model_sha256", "recipe", "suite_version"):
            put(self, name, _text(getattr(self, name), name))
        for name in ("prompt_2", "prompt_3", "negative_prompt"):
            if getattr(self, name) is not None:
                put(self, name, _text(getattr(self, name), name))
        if self.model_sha256 and not _HEX64.fullmatch(self.model_sha256):
            raise PngMetadataError(
                f"GenerationSettings.model_sha256: {_show(self.model_sha256)} is not 64 lowercase hex digits; "
                "give hashlib.sha256(...).hexdigest() or leave it empty"
            )
        if not isinstance(self.packages, Mapping):
            raise PngMetadataError(
                f"GenerationSettings.packages: {_show(self.packages)} ({type(self.packages).__name__}) "
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


def _require_settings(settings: object, where: str) -> GenerationSettings:
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
        raise PngMetadataError(f"PNG text keyword {_show(key)} {problem}; pick a keyword that follows the PNG rules")
    return key


# ------------------------------------------------------- A1111 `parameters` text
#
# What A1111 writes, and reads back with `parse_generation_parameters`:
#
#     <prompt lines>
#     Negative prompt: <negative prompt lines>        (only when there is one)
#     Steps: 20, Sampler: PNDM, CFG scale: 7.5, Seed: 42, Size: 512x512, ...
#
# Its reader takes the last line as the settings, strips every other line, starts
# the negative prompt at any line beginning "Negative prompt:", and joins the rest
# with "\n". Values on the settings line are plain, or JSON strings when they hold a
# comma, colon or line break.
#
# Escaping: the prompt and the negative prompt are always written as above, so every
# A1111-style reader shows them as A1111 would. The formatter then reads its own
# text back the way A1111 does; only where that does not give back the exact value
# (a line with edge whitespace or "\r", a prompt line starting "Negative prompt:",
# leading empty lines) it adds `sdperf prompt` and/or `sdperf
# negative prompt` to the settings line, holding the exact value as a JSON string
# (`null` for "no negative prompt"); the parser prefers those keys. Settings-line
# values are plain only when that cannot be misread (printable, no edge spaces, none
# of , : " \, not empty), else JSON strings whose non-printable characters
# (U+2028, U+0085, ...) are \u-escaped as well, so the line stays one line for any
# reader's idea of a line break. Ordinary prompts therefore look exactly as A1111
# writes them, and parse_parameters(format_parameters(s)) == s for every s. An empty
# negative prompt is a bare "Negative prompt:" line; None is no such line. CFG scale
# is repr(guidance), exact for every float; a NaN other than the usual one is written
# nan(0x<64 bits>) to keep its sign and payload.

_NEGATIVE = "Negative prompt:"
_K_STEPS, _K_SAMPLER, _K_CFG, _K_SEED, _K_SIZE = "Steps", "Sampler", "CFG scale", "Seed", "Size"
_K_HASH, _K_MODEL, _K_PROMPT_2, _K_PROMPT_3 = "Model hash", "Model", "Prompt 2", "Prompt 3"
_K_RECIPE, _K_SHA256, _K_PACKAGES = "sdperf recipe", "sdperf model sha256", "sdperf packages"
_K_VERSION, _K_PROMPT, _K_NEGATIVE = "sdperf version", "sdperf prompt", "sdperf negative prompt"
_SETTINGS_KEY = re.compile(r"\s*(\w[\w \-/]+):\s*")  # A1111's key pattern


def _json_string(value: str) -> str:
    quoted = json.dumps(value, ensure_ascii=False)
    if quoted.isprintable():
        return quoted
    out = []
    for char in quoted:
        if char.isprintable():
            out.append(char)
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:  # JSON spells characters beyond the BMP as a surrogate pair
            high, low = divmod(ord(char) - 0x10000, 0x400)
            out.append(f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}")
    return "".join(out)


def _value(value: str) -> str:
    plain = value and value == value.strip() and value.isprintable() and not any(c in value for c in ',:"\\')
    return value if plain else _json_string(value)


def _split(text: str) -> tuple[list[str], str]:
    """Prompt lines and the settings line, cut as A1111 cuts them."""
    *lines, last = text.strip().split("\n")
    return lines, last


def _a1111_prompts(lines: list[str]) -> tuple[str, str | None]:
    """Prompt and negative prompt as A1111's reader makes them of the lines before the settings."""
    prompt, negative = "", None
    for line in lines:
        line = line.strip()
        if line.startswith(_NEGATIVE):
            negative = "" if negative is None else negative
            line = line[len(_NEGATIVE):].strip()
        if negative is None:
            prompt += ("\n" if prompt else "") + line
        else:
            negative += ("\n" if negative else "") + line
    return prompt, negative


def format_parameters(settings: GenerationSettings) -> str:
    """The settings as AUTOMATIC1111's `parameters` text; `parse_parameters` inverts it exactly."""
    s = _require_settings(settings, "format_parameters")
    head = s.prompt if s.negative_prompt is None else f"{s.prompt}\n{_NEGATIVE} {s.negative_prompt}"
    pairs: list[tuple[str, str]] = [(_K_STEPS, str(s.steps))]
    if s.scheduler:
        pairs.append((_K_SAMPLER, _value(s.scheduler)))
    if s.guidance is not None:
        pairs.append((_K_CFG, _format_float(s.guidance)))
    pairs += [(_K_SEED, str(s.seed)), (_K_SIZE, f"{s.width}x{s.height}")]
    if s.model_sha256:
        pairs.append((_K_HASH, s.model_sha256[:10]))  # A1111's short hash; the full one follows
    if s.model:
        pairs.append((_K_MODEL, _value(s.model)))
    for key, text in ((_K_PROMPT_2, s.prompt_2), (_K_PROMPT_3, s.prompt_3)):
        if text is not None:
            pairs.append((key, _value(text)))
    if s.recipe:
        pairs.append((_K_RECIPE, _value(s.recipe)))
    if s.model_sha256:
        pairs.append((_K_SHA256, s.model_sha256))
    if s.packages:
        pairs.append((_K_PACKAGES, _json_string(json.dumps(s.packages, ensure_ascii=False, sort_keys=True))))
    if s.suite_version:
        pairs.append((_K_VERSION, _value(s.suite_version)))
    # The settings line never holds a line break and never starts or ends with
    # whitespace, so appending the escape keys below leaves the prompt lines as they are.
    prompt, negative = _a1111_prompts(_split(head + "\n" + _K_STEPS)[0])
    if prompt != s.prompt:
        pairs.append((_K_PROMPT, _json_string(s.prompt)))
    if negative != s.negative_prompt:
        pairs.append((_K_NEGATIVE, "null" if s.negative_prompt is None else _json_string(s.negative_prompt)))
    return head + "\n" + ", ".join(f"{key}: {value}" for key, value in pairs)


def _settings_line(line: str, source: str) -> dict[str, tuple[str, bool]]:
    """key -> (value, was JSON-quoted) of an A1111 settings line."""
    decoder = json.JSONDecoder()
    found: dict[str, tuple[str, bool]] = {}
    pos = 0
    while pos < len(line):
        match = _SETTINGS_KEY.match(line, pos)
        if match is None:  # A1111 writes some flags as a bare word; skip to the next pair
            comma = line.find(",", pos)
            pos = len(line) if comma < 0 else comma + 1
            continue
        key, pos = match.group(1), match.end()
        if line.startswith('"', pos):
            try:
                value, pos = decoder.raw_decode(line, pos)
            except json.JSONDecodeError as error:
                raise PngMetadataError(
                    f"{source}: the value of {key!r} is a broken JSON string ({error.msg}); write it again"
                ) from None
            quoted = True
        else:
            end = line.find(",", pos)
            end = len(line) if end < 0 else end
            value, pos, quoted = line[pos:end], end, False
        if pos < len(line):
            if line[pos] != ",":
                raise PngMetadataError(
                    f"{source}: {_show(line[pos:pos + 20])} follows the value of {key!r} where ', ' belongs; "
                    "JSON-quote values that hold commas or quotes"
                )
            pos += 1
        if key in found:
            raise PngMetadataError(f"{source}: {key!r} appears twice on the settings line; keep one")
        found[key] = (value, quoted)
    return found


def parse_parameters(text: str) -> GenerationSettings:
    """Settings from AUTOMATIC1111-style `parameters` text; the inverse of `format_parameters`.

    Keys it does not know (A1111 writes many) are ignored. A1111's own text has no full
    model hash, so model_sha256 is empty unless `sdperf model sha256` is there.
    """
    source = "parameters text"
    if not isinstance(text, str):
        raise PngMetadataError(f"{source}: expected a str, got {type(text).__name__}")
    lines, last = _split(text)
    pairs = _settings_line(last, source)
    prompt, negative = _a1111_prompts(lines)

    def get(key: str, default: str | None = None) -> str | None:
        return pairs[key][0] if key in pairs else default

    def whole(key: str) -> int:
        value = get(key)
        if value is None:
            raise PngMetadataError(
                f"{source}: its last line has no {key!r}; it is not A1111/sdperf generation parameters"
            )
        if not _WHOLE.fullmatch(value):
            raise PngMetadataError(f"{source}: {key} {_show(value)} is not a whole number; write decimal digits")
        return int(value)

    def exact(key: str) -> str | None:
        value, quoted = pairs[key]
        if quoted:
            return value
        if key == _K_NEGATIVE and value == "null":
            return None
        raise PngMetadataError(f"{source}: {key} must be a JSON string (or null), not {_show(value)}")

    steps, seed = whole(_K_STEPS), whole(_K_SEED)
    size = get(_K_SIZE)
    if size is None or not (match := _SIZE.fullmatch(size)):
        raise PngMetadataError(f"{source}: Size {_show(size)} is not WIDTHxHEIGHT such as 512x512; write it so")
    guidance = None
    if (cfg := get(_K_CFG)) is not None:
        guidance = _parse_float(cfg)
        if guidance is None:
            raise PngMetadataError(f"{source}: CFG scale {_show(cfg)} is not a number; write it like 7.5")
    sha256 = get(_K_SHA256, "") or ""
    short = get(_K_HASH)
    if sha256 and short is not None and not sha256.startswith(short):
        raise PngMetadataError(
            f"{source}: Model hash {_show(short)} is not the start of sdperf model sha256 {sha256}; "
            "one of them was edited, write the parameters again"
        )
    packages: dict[str, str] = {}
    if (packages_json := get(_K_PACKAGES)) is not None:
        packages = _packages(packages_json, f"{source}: {_K_PACKAGES}")
    if _K_PROMPT in pairs:
        prompt = exact(_K_PROMPT)  # type: ignore[assignment]
    if _K_NEGATIVE in pairs:
        negative = exact(_K_NEGATIVE)
    try:
        return GenerationSettings(
            prompt=prompt,
            steps=steps,
            width=int(match.group(1)),
            height=int(match.group(2)),
            seed=seed,
            guidance=guidance,
            prompt_2=get(_K_PROMPT_2),
            prompt_3=get(_K_PROMPT_3),
            negative_prompt=negative,
            scheduler=get(_K_SAMPLER, "") or "",
            model=get(_K_MODEL, "") or "",
            model_sha256=sha256,
            recipe=get(_K_RECIPE, "") or "",
            packages=packages,
            suite_version=get(_K_VERSION, "") or "",
        )
    except PngMetadataError as error:
        raise PngMetadataError(f"{source}: {error}") from None


def _packages(text: str, where: str) -> dict[str, str]:
    try:
        packages = json.loads(text)
    except json.JSONDecodeError as error:
        raise PngMetadataError(
            f"{where} is not JSON ({error.msg} at character {error.pos}): {_show(text)}; "
            'it must be a JSON object such as {"torch": "2.4.1"}'
        ) from None
    if not isinstance(packages, dict) or not all(isinstance(v, str) for v in packages.values()):
        raise PngMetadataError(
            f'{where} is {_show(text)}, not a JSON object of package name to version such as {{"torch": "2.4.1"}}'
        )
    return packages


# ---------------------------------------------------------------------- PNG files

# Field -> how its sdperf:<field> chunk is written; None values get no chunk.
_INT_FIELDS = ("steps", "width", "height", "seed")
_OPTIONAL_FIELDS = ("guidance", "prompt_2", "prompt_3", "negative_prompt")
_FIELD_NAMES = tuple(item.name for item in fields(GenerationSettings))


def _chunks(settings: GenerationSettings) -> dict[str, str]:
    """Keyword -> text of every iTXt chunk sdperf writes for these settings."""
    chunks = {SUITE_KEY_PREFIX + "format": str(FORMAT_VERSION)}
    for name in _FIELD_NAMES:
        value = getattr(settings, name)
        if value is None:
            continue
        if name == "guidance":
            value = _format_float(value)
        elif name == "packages":
            value = json.dumps(value, ensure_ascii=False, sort_keys=True)
        chunks[SUITE_KEY_PREFIX + name] = str(value)
    chunks[PARAMETERS_KEY] = format_parameters(settings)
    return {check_keyword(key): value for key, value in chunks.items()}


def _as_pil(path: Path, image: object) -> PILImage.Image:
    from PIL import Image

    if isinstance(image, Image.Image):
        # Modes PNG stores losslessly as they are; others would be converted or clipped.
        if image.mode not in ("RGB", "RGBA", "L", "LA"):
            raise PngMetadataError(
                f"{path}: not written: image mode {image.mode!r} is not stored losslessly; "
                "give an RGB, RGBA, L or LA image (image.convert('RGB'))"
            )
        if image.width < 1 or image.height < 1:
            raise PngMetadataError(f"{path}: not written: the image is {image.width}x{image.height}; PNG needs pixels")
        return image
    import numpy as np

    if not isinstance(image, np.ndarray):
        raise PngMetadataError(
            f"{path}: not written: image is a {type(image).__name__}; give a PIL image or an HxWx3 uint8 numpy array"
        )
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise PngMetadataError(
            f"{path}: not written: image array is {image.dtype} of shape {image.shape}; give HxWx3 uint8 "
            "(from floats in 0..1: (np.clip(x, 0, 1) * 255).round().astype('uint8'))"
        )
    return Image.fromarray(np.ascontiguousarray(image))


def _as_path(path: object, doing: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise PngMetadataError(
            f"{doing}: path {_show(path)} ({type(path).__name__}) is not a str or Path; give a file path"
        )
    return Path(path)


def _fsync_folder(folder: Path) -> None:
    """Makes the rename itself durable; not every platform can open a folder."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def write_png(path: str | Path, image: Any, settings: GenerationSettings) -> None:
    """Writes `image` as a PNG at `path` carrying `settings`, atomically: a reader sees the
    old file or the complete new one, and a failure leaves no file behind."""
    from PIL import PngImagePlugin

    path = _as_path(path, "write_png")
    try:
        settings = _require_settings(settings, "write_png")
    except PngMetadataError as error:
        raise PngMetadataError(f"{path}: not written: {error}") from None
    pil = _as_pil(path, image)
    info = PngImagePlugin.PngInfo()
    for key, text in _chunks(settings).items():
        info.add_itxt(key, text)
    folder = path.parent
    if not folder.is_dir():
        raise PngMetadataError(
            f"{path}: not written: folder {folder} does not exist; create it first (mkdir(parents=True))"
        )
    # Same folder, so os.replace is a rename on one file system; os.open with 0o666
    # lets the umask set the permissions, as for any new file (mkstemp would give 0600).
    temporary = folder / f".{path.name[:100]}.{secrets.token_hex(8)}.tmp"
    try:
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as error:
        raise PngMetadataError(
            f"{path}: not written: cannot create a file in {folder} ({error.strerror}); check its permissions and space"
        ) from error
    try:
        with os.fdopen(handle, "wb") as stream:
            pil.save(stream, format="PNG", pnginfo=info)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        if isinstance(error, (OSError, ValueError, SyntaxError, struct.error, zlib.error)):
            reason = str(error) or type(error).__name__
            if isinstance(error, OSError) and error.strerror:
                reason = error.strerror
            raise PngMetadataError(
                f"{path}: not written ({reason}); any earlier file there is unchanged. Check the path, "
                "permissions, free space and that the image can be read"
            ) from error
        raise
    _fsync_folder(folder)


# Exceptions Pillow raises for damaged, truncated or hostile files.
def _reading_errors() -> tuple[type[BaseException], ...]:
    from PIL import Image

    return (
        OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError,
        struct.error, zlib.error, Image.DecompressionBombError,
    )


def _damage(path: Path, error: BaseException) -> PngMetadataError:
    from PIL import Image, PngImagePlugin

    if isinstance(error, Image.DecompressionBombError):
        return PngMetadataError(
            f"{path}: refused as a possible decompression bomb ({error}); sdperf never writes images this large"
        )
    message = str(error) or type(error).__name__
    if isinstance(error, struct.error) or isinstance(error.__cause__, struct.error):
        message = "it ends too early"  # Pillow unpacked bytes that are not there
    elif message.startswith("broken PNG file (") and message.endswith(")"):
        message = message[len("broken PNG file ("):-1]
    if isinstance(error, ValueError) and ("MAX_TEXT_CHUNK" in message or "MAX_TEXT_MEMORY" in message):
        return PngMetadataError(
            f"{path}: a text chunk decompresses past Pillow's limit ({message}; PngImagePlugin.MAX_TEXT_CHUNK is "
            f"{PngImagePlugin.MAX_TEXT_CHUNK} bytes, MAX_TEXT_MEMORY {PngImagePlugin.MAX_TEXT_MEMORY}): refused as a "
            "possible decompression bomb. sdperf never writes that much text; the file is not one of its images"
        )
    return PngMetadataError(
        f"{path}: damaged PNG file ({message}); it was truncated or corrupted, write it again or restore a good copy"
    )


def _why_unidentified(path: Path, stream: Any) -> PngMetadataError:
    """The reason Image.open gave up on a file, which it does not say: PNG's own reader does."""
    from PIL import Image, PngImagePlugin

    stream.seek(0)
    try:
        with PngImagePlugin.PngImageFile(stream):
            pass
    except SyntaxError as error:
        if str(error) != "not a PNG file":
            return _damage(path, error)
    except _reading_errors() as error:
        return _damage(path, error)
    else:
        return PngMetadataError(f"{path}: Pillow cannot open this PNG file; write it again")
    stream.seek(0)
    try:
        with Image.open(stream) as other:
            kind = f"a {other.format} image"
    except Exception:  # noqa: BLE001 - only to name what the file is, for the message
        kind = "not an image"
    return PngMetadataError(f"{path}: not a PNG file (it is {kind}); give a PNG written by sdperf")


def _open_checked(path: str | Path, use: Any) -> Any:
    """Calls use(image) with the PNG at `path`: every chunk's checksum verified, pixels
    and text loaded; any failure becomes PngMetadataError naming the file."""
    from PIL import Image, PngImagePlugin, UnidentifiedImageError

    path = _as_path(path, "reading a PNG")
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        raise PngMetadataError(f"{path}: no such file; check the path and that the image was written") from None
    except IsADirectoryError:
        raise PngMetadataError(f"{path}: is a folder, not a PNG file; give the image's path") from None
    except OSError as error:
        raise PngMetadataError(f"{path}: cannot be read ({error.strerror}); check its permissions") from None
    with stream:
        try:
            # Two passes over the one open file: verify() checks every checksum to IEND but
            # leaves the image unusable, so the file is opened again to load it.
            with Image.open(stream, formats=["PNG"]) as image:
                image.verify()
            # verify() stops after IEND's type, before its checksum; check that too,
            # so a file cut anywhere, even in its last four bytes, is refused.
            PngImagePlugin.ChunkStream(stream).crc(b"IEND", b"")
            stream.seek(0)
            with Image.open(stream, formats=["PNG"]) as image:
                image.load()
                return use(image)
        except UnidentifiedImageError:
            raise _why_unidentified(path, stream) from None
        except PngMetadataError:
            raise
        except _reading_errors() as error:
            raise _damage(path, error) from error


def read_image(path: str | Path) -> numpy.ndarray:
    """The pixels of a PNG file as a numpy array (HxWx3 uint8 for what sdperf writes)."""
    import numpy as np

    def pixels(image: PILImage.Image) -> numpy.ndarray:
        if image.mode in ("P", "PA"):  # palette indices are no use for comparing pixels
            image = image.convert("RGBA" if image.mode == "PA" or "transparency" in image.info else "RGB")
        return np.array(image)

    return _open_checked(path, pixels)


def _field_value(path: Path, key: str, name: str, text: str) -> Any:
    """The value of field `name` from its chunk text."""
    where = f"{path}: {key}"
    if name in _INT_FIELDS:
        if not _WHOLE.fullmatch(text):
            raise PngMetadataError(
                f"{where} is {_show(text)}, not a whole number; the metadata is corrupt, write the image again"
            )
        return int(text)
    if name == "guidance":
        value = _parse_float(text)
        if value is None:
            raise PngMetadataError(
                f"{where} is {_show(text)}, not a number; the metadata is corrupt, write the image again"
            )
        return value
    if name == "packages":
        return _packages(text, where)
    return text


def read_png(path: str | Path) -> GenerationSettings:
    """The settings `write_png` stored in the file at `path`, exactly as written."""
    from PIL import PngImagePlugin

    path = _as_path(path, "read_png")
    text = _open_checked(path, lambda image: dict(image.text))
    ours = {key: value for key, value in text.items() if key.startswith(SUITE_KEY_PREFIX)}
    if not ours:
        raise PngMetadataError(f"{path}: has no sdperf metadata; it was not written by sdperf (write_png)")
    for key, value in ours.items():
        if not isinstance(value, PngImagePlugin.iTXt):
            raise PngMetadataError(
                f"{path}: {key} is in a tEXt/zTXt chunk, which PNG defines as Latin-1, so non-ASCII text may be "
                "garbled; sdperf writes iTXt, so another tool has rewritten the file: write the image again with sdperf"
            )
    format_key = SUITE_KEY_PREFIX + "format"
    if format_key not in ours:
        raise PngMetadataError(
            f"{path}: has sdperf chunks but no {format_key}; the metadata is incomplete, write the image again"
        )
    if ours[format_key] != str(FORMAT_VERSION):
        raise PngMetadataError(
            f"{path}: {format_key} is {_show(str(ours[format_key]))}; this sdperf reads format {FORMAT_VERSION}, "
            "so read it with the sdperf version that wrote it"
        )
    values: dict[str, Any] = {}
    for key, value in ours.items():
        name = key[len(SUITE_KEY_PREFIX):]
        if key == format_key:
            continue
        if name not in _FIELD_NAMES:
            raise PngMetadataError(
                f"{path}: unknown metadata chunk {key!r} for format {FORMAT_VERSION}; another tool added it, "
                "or a newer sdperf wrote the file without bumping the format"
            )
        values[name] = _field_value(path, key, name, str(value))
    missing = [SUITE_KEY_PREFIX + name for name in _FIELD_NAMES if name not in values and name not in _OPTIONAL_FIELDS]
    if missing:
        raise PngMetadataError(
            f"{path}: lacks {', '.join(missing)}; the sdperf metadata is incomplete (edited by another tool?), "
            "write the image again"
        )
    try:
        return GenerationSettings(**values)
    except PngMetadataError as error:
        raise PngMetadataError(f"{path}: {error}") from None
