"""AUTOMATIC1111's `parameters` text: written beside sdperf's own chunks so image tools show
the settings, and parsed back exactly."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

from sdperf.common.generation_settings import (
    SIZE_TEXT,
    WHOLE_NUMBER,
    GenerationSettings,
    PngMetadataError,
    format_float,
    parse_float,
    require_settings,
    show_value,
)

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
    s = require_settings(settings, "format_parameters")
    head = s.prompt if s.negative_prompt is None else f"{s.prompt}\n{_NEGATIVE} {s.negative_prompt}"
    pairs: list[tuple[str, str]] = [(_K_STEPS, str(s.steps))]
    if s.scheduler:
        pairs.append((_K_SAMPLER, _value(s.scheduler)))
    if s.guidance is not None:
        pairs.append((_K_CFG, format_float(s.guidance)))
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
                    f"{source}: {show_value(line[pos:pos + 20])} follows the value of {key!r} where ', ' belongs; "
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
        if not WHOLE_NUMBER.fullmatch(value):
            raise PngMetadataError(f"{source}: {key} {show_value(value)} is not a whole number; write decimal digits")
        return int(value)

    def exact(key: str) -> str | None:
        value, quoted = pairs[key]
        if quoted:
            return value
        if key == _K_NEGATIVE and value == "null":
            return None
        raise PngMetadataError(f"{source}: {key} must be a JSON string (or null), not {show_value(value)}")

    steps, seed = whole(_K_STEPS), whole(_K_SEED)
    size = get(_K_SIZE)
    if size is None or not (match := SIZE_TEXT.fullmatch(size)):
        raise PngMetadataError(f"{source}: Size {show_value(size)} is not WIDTHxHEIGHT such as 512x512; write it so")
    guidance = None
    if (cfg := get(_K_CFG)) is not None:
        guidance = parse_float(cfg)
        if guidance is None:
            raise PngMetadataError(f"{source}: CFG scale {show_value(cfg)} is not a number; write it like 7.5")
    sha256 = get(_K_SHA256, "") or ""
    short = get(_K_HASH)
    if sha256 and short is not None and not sha256.startswith(short):
        raise PngMetadataError(
            f"{source}: Model hash {show_value(short)} is not the start of sdperf model sha256 {sha256}; "
            "one of them was edited, write the parameters again"
        )
    packages: dict[str, str] = {}
    if (packages_json := get(_K_PACKAGES)) is not None:
        packages = parse_packages(packages_json, f"{source}: {_K_PACKAGES}")
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


def parse_packages(text: str, where: str) -> dict[str, str]:
    try:
        packages = json.loads(text)
    except json.JSONDecodeError as error:
        raise PngMetadataError(
            f"{where} is not JSON ({error.msg} at character {error.pos}): {show_value(text)}; "
            'it must be a JSON object such as {"torch": "2.4.1"}'
        ) from None
    if not isinstance(packages, dict) or not all(isinstance(v, str) for v in packages.values()):
        raise PngMetadataError(
            f'{where} is {show_value(text)}, not a JSON object of package name to version such as {{"torch": "2.4.1"}}'
        )
    return packages
