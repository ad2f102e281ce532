"""Generation settings in PNG metadata: exact round trips, A1111 compatibility, clear errors."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import pickle
import re
import stat
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, PngImagePlugin

from sdperf.common import pngmeta
from sdperf.common.a1111 import format_parameters, parse_parameters
from sdperf.common.generation_settings import (
    MAX_TEXT_CHARS,
    SUITE_KEY_PREFIX,
    GenerationSettings,
    PngMetadataError,
    check_keyword,
)
from sdperf.common.pngmeta import read_image, read_png, write_png

SHA = "0123456789abcdef" * 4
PIXELS = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)


def typical(**changes: object) -> GenerationSettings:
    values: dict[str, object] = dict(
        prompt="a photo of a cat", steps=20, width=512, height=512, seed=42, guidance=7.5,
        negative_prompt="blurry", scheduler="PNDM", model="tiny-sd15", model_sha256=SHA, recipe="fp32",
        packages={"torch": "2.4.1", "diffusers": "0.35.1"}, suite_version="0.1.0",
    )
    values.update(changes)
    return GenerationSettings(**values)  # type: ignore[arg-type]


def bits(value: float) -> bytes:
    return struct.pack("<d", value)


def from_bits(value: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", value))[0]


def assert_same(got: GenerationSettings, want: GenerationSettings) -> None:
    """Equal field by field, guidance compared by its bits (NaN payloads, -0.0)."""
    for item in dataclasses.fields(GenerationSettings):
        a, b = getattr(got, item.name), getattr(want, item.name)
        if item.name == "guidance" and a is not None and b is not None:
            assert bits(a) == bits(b), (a, b)
        else:
            assert a == b, item.name
    assert got == want


# A1111's reader, as its web UI's "PNG info" tab behaves: the last line holds the
# settings when it has at least three key: value pairs, lines are stripped, and the
# negative prompt starts at a line beginning "Negative prompt:".
A1111_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def a1111_read(text: str) -> tuple[str, str, dict[str, str]]:
    *lines, last = text.strip().split("\n")
    if len(A1111_PAIR.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt, negative, in_negative = "", "", False
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[16:].strip()
        if in_negative:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    values = {}
    for key, value in A1111_PAIR.findall(last):
        if value[:1] == '"' and value[-1:] == '"':
            try:
                value = json.loads(value)
            except ValueError:
                pass
        values[key] = value
    return prompt, negative, values


# ------------------------------------------------------------------ strategies

PIECES = st.sampled_from([
    "Negative prompt:", "Negative prompt: ugly", "\nNegative prompt: x\n", "Steps: 20, Seed: 1, Size: 1x1",
    ", ", ":", '"', "\\", "\n", "\r\n", "\r", " ", "\t", "\u2028", "\x85", "\u3000", "\x00", "null", '""',
    "日本語のプロンプト、猫", "🐱‍👤", "\U000e0001", "sdperf prompt: \"x\"",
])
TEXT = st.one_of(
    st.text(),
    st.lists(st.one_of(PIECES, st.text(max_size=6)), max_size=10).map("".join),
    st.text(min_size=1000, max_size=3000),
)
SHORT = st.one_of(st.text(max_size=12), PIECES)
NANS = st.builds(
    lambda sign, payload: from_bits(sign << 63 | 0x7FF << 52 | payload),
    st.integers(0, 1), st.integers(1, 2**52 - 1),
)
GUIDANCE = st.one_of(
    st.none(), st.floats(), NANS,
    st.sampled_from([-0.0, 0.0, math.inf, -math.inf, 5e-324, 1e-310, 7.0, 7.5, 1.7976931348623157e308]),
)
SETTINGS = st.builds(
    GenerationSettings,
    prompt=TEXT,
    steps=st.integers(1, 2**31 - 1),
    width=st.integers(1, 2**31 - 1),
    height=st.integers(1, 2**31 - 1),
    seed=st.integers(0, 2**64 - 1),
    guidance=GUIDANCE,
    prompt_2=st.none() | TEXT,
    prompt_3=st.none() | TEXT,
    negative_prompt=st.none() | TEXT,
    scheduler=SHORT,
    model=SHORT,
    model_sha256=st.just("") | st.text("0123456789abcdef", min_size=64, max_size=64),
    recipe=SHORT,
    packages=st.dictionaries(st.text(min_size=1, max_size=10), SHORT, max_size=3),
    suite_version=SHORT,
)

PATHOLOGICAL = [
    "", " ", "\n", "\n\n", "  padded  ", "a\nNegative prompt: b", "Negative prompt: only", "Negative prompt:",
    "a, b: \"c\"", "line\r\nbreak", "x\u2028y", "nul\x00", "Steps: 20, Seed: 1, Size: 1x1",
    "日本語のプロンプト、猫",
    "emoji 🐱‍👤 and \U0001f600", "a" * 5000, "\n\nleading", "trailing\n", "\\", '"', "null", '"quoted"',
    "tab\there", "\u3000full-width space", "sdperf prompt: \"x\"",
]
hypothesis_quick = hypothesis_settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# --------------------------------------------------------- the round trips


@hypothesis_settings(hypothesis_quick, max_examples=60)
@given(settings=SETTINGS)
@example(settings=typical(guidance=from_bits(0xFFF0000000000001), prompt="Negative prompt: x\r\n"))
@example(settings=typical(guidance=-0.0, negative_prompt="", prompt_2="", prompt_3=""))
def test_write_then_read_gives_exactly_what_was_written(tmp_path: Path, settings: GenerationSettings) -> None:
    path = tmp_path / "image.png"
    write_png(path, PIXELS, settings)
    assert_same(read_png(path), settings)
    # The `parameters` chunk A1111 reads carries the same settings, in iTXt like every text chunk.
    with Image.open(path) as image:
        text = image.text
    assert all(isinstance(value, PngImagePlugin.iTXt) for value in text.values())
    assert_same(parse_parameters(text["parameters"]), settings)
    assert sorted(os.listdir(tmp_path)) == ["image.png"]


@hypothesis_settings(max_examples=300, deadline=None)
@given(settings=SETTINGS)
def test_parameters_text_round_trips_for_any_settings(settings: GenerationSettings) -> None:
    text = format_parameters(settings)
    assert_same(parse_parameters(text), settings)
    # Whatever the prompts, A1111 reads the settings line right.
    _, _, values = a1111_read(text)
    assert values["Steps"] == str(settings.steps)
    assert values["Seed"] == str(settings.seed)
    assert values["Size"] == f"{settings.width}x{settings.height}"
    assert values.get("Sampler", "") == settings.scheduler
    assert values.get("Model", "") == settings.model
    assert text.split("\n")[-1] == text.splitlines()[-1], "the settings line is one line for any reader"
    # Prompts A1111 reads right are shown as they are, without an exact copy on the settings line.
    prompt, negative, _ = a1111_read(text)
    assert ("sdperf prompt" in values) == (prompt != settings.prompt)
    if "sdperf negative prompt" not in values:
        assert negative == (settings.negative_prompt or "")


@hypothesis_settings(hypothesis_quick, max_examples=40)
@given(pixels=hnp.arrays(np.uint8, hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=24).map(
    lambda shape: (shape[0], shape[1], 3))))
def test_pixels_read_back_equal_the_array_written(tmp_path: Path, pixels: np.ndarray) -> None:
    path = tmp_path / "pixels.png"
    write_png(path, pixels, typical())
    back = read_image(path)
    assert back.dtype == np.uint8 and back.shape == pixels.shape
    np.testing.assert_array_equal(back, pixels)


@pytest.mark.parametrize("field", ["prompt", "negative_prompt", "prompt_2", "prompt_3", "scheduler", "model",
                                   "recipe", "suite_version"])
def test_pathological_text_round_trips_in_every_field(tmp_path: Path, field: str) -> None:
    for number, text in enumerate(PATHOLOGICAL):
        settings = typical(**{field: text})
        assert_same(parse_parameters(format_parameters(settings)), settings)
        path = tmp_path / f"{number}.png"
        write_png(path, PIXELS, settings)
        assert_same(read_png(path), settings)


@pytest.mark.parametrize("guidance", [
    -0.0, 0.0, math.inf, -math.inf, math.nan, -math.nan, 5e-324, 2.2250738585072014e-308 / 3,
    from_bits(0x7FF0000000000001), from_bits(0xFFFFFFFFFFFFFFFF), from_bits(0x7FF4000000000000), None, 7,
])
def test_guidance_round_trips_bit_exactly(tmp_path: Path, guidance: float | None) -> None:
    settings = typical(guidance=guidance)
    write_png(tmp_path / "g.png", PIXELS, settings)
    for got in (read_png(tmp_path / "g.png"), parse_parameters(format_parameters(settings))):
        if guidance is None:
            assert got.guidance is None
        else:
            assert bits(got.guidance) == bits(float(guidance))  # type: ignore[arg-type]
            assert math.isnan(got.guidance) == math.isnan(guidance)  # type: ignore[arg-type]


def test_text_at_the_length_limit_round_trips(tmp_path: Path) -> None:
    # Characters the parameters line must \u-escape make it longest; Pillow still reads it all.
    long = "\u2028" * MAX_TEXT_CHARS
    settings = typical(prompt=long, negative_prompt=long, prompt_2=long, prompt_3=long, model=long, recipe=long,
                       scheduler=long, suite_version=long, packages={"p" * 100: "\u2028" * 60000})
    write_png(tmp_path / "long.png", PIXELS, settings)
    assert read_png(tmp_path / "long.png") == settings


def test_a_path_that_is_not_a_path_is_refused() -> None:
    with pytest.raises(PngMetadataError, match="is not a str or Path"):
        write_png(None, PIXELS, typical())  # type: ignore[arg-type]
    with pytest.raises(PngMetadataError, match="is not a str or Path"):
        read_png(42)  # type: ignore[arg-type]


def test_pixels_are_what_plain_pillow_writes(tmp_path: Path) -> None:
    image = Image.fromarray(PIXELS)
    image.save(tmp_path / "plain.png")
    write_png(tmp_path / "meta.png", image, typical())
    np.testing.assert_array_equal(read_image(tmp_path / "meta.png"), read_image(tmp_path / "plain.png"))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
def test_pil_images_keep_their_mode_and_pixels(tmp_path: Path, mode: str) -> None:
    image = Image.fromarray(PIXELS).convert(mode)
    write_png(tmp_path / "m.png", image, typical())
    np.testing.assert_array_equal(read_image(tmp_path / "m.png"), np.asarray(image))


# ------------------------------------------------------------- A1111 format


def test_ordinary_settings_look_like_what_a1111_writes() -> None:
    text = format_parameters(typical(packages={}, recipe="", suite_version="", model_sha256=""))
    assert text == (
        "a photo of a cat\n"
        "Negative prompt: blurry\n"
        "Steps: 20, Sampler: PNDM, CFG scale: 7.5, Seed: 42, Size: 512x512, Model: tiny-sd15"
    )
    full = format_parameters(typical())
    assert full.startswith("a photo of a cat\nNegative prompt: blurry\nSteps: 20, Sampler: PNDM, CFG scale: 7.5, "
                           "Seed: 42, Size: 512x512, Model hash: 0123456789, Model: tiny-sd15, ")
    assert f"sdperf model sha256: {SHA}" in full and "sdperf prompt" not in full


def test_a1111_reads_ordinary_prompts_and_settings() -> None:
    settings = typical(prompt="masterpiece, 1girl, (blue sky:1.2)\nsecond line, 猫 🐱", model="my: model, v2")
    prompt, negative, values = a1111_read(format_parameters(settings))
    assert (prompt, negative) == (settings.prompt, settings.negative_prompt)
    assert values["Steps"] == "20" and values["Seed"] == "42" and values["Size"] == "512x512"
    assert values["CFG scale"] == "7.5" and values["Sampler"] == "PNDM" and values["Model hash"] == SHA[:10]
    assert values["Model"] == "my: model, v2"  # JSON-quoted on the line, unquoted by A1111
    assert json.loads(values["sdperf packages"]) == {"diffusers": "0.35.1", "torch": "2.4.1"}


def test_a_prompt_a1111_would_misread_is_also_stored_exactly() -> None:
    settings = typical(prompt="a cat\nNegative prompt: not really", negative_prompt=None)
    text = format_parameters(settings)
    assert text.startswith("a cat\nNegative prompt: not really\n")  # shown as A1111 would show it
    assert 'sdperf prompt: "a cat\\nNegative prompt: not really"' in text
    assert "sdperf negative prompt: null" in text
    assert parse_parameters(text) == settings


def test_parse_parameters_reads_a1111_text_it_did_not_write() -> None:
    text = ("a castle on a hill, sunset\nNegative prompt: lowres\n"
            "Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 3456, Size: 768x512, "
            "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Hires upscale, Version: v1.10.1")
    settings = parse_parameters(text)
    assert settings == GenerationSettings(
        prompt="a castle on a hill, sunset", negative_prompt="lowres", steps=30, scheduler="DPM++ 2M",
        guidance=7.0, seed=3456, width=768, height=512, model="v1-5-pruned-emaonly",
    )


@pytest.mark.parametrize(("text", "problem"), [
    ("p\nSteps: 20, Seed: abc, Size: 1x1", "Seed 'abc' is not a whole number"),
    ("p\nSteps: 20, Seed: -1, Size: 1x1", "Seed '-1' is not a whole number"),
    ("p\nSeed: 1, Size: 1x1, Sampler: x", "no 'Steps'"),
    ("p\nSteps: 20, Seed: 1, Size: 512 by 512", "not WIDTHxHEIGHT"),
    ("p\nSteps: 20, Seed: 1, Size: 1x1, CFG scale: lots", "CFG scale 'lots' is not a number"),
    ("p\nSteps: 20, Seed: 1, Size: 1x1, sdperf packages: not json", "sdperf packages is not JSON"),
    ('p\nSteps: 20, Seed: 1, Size: 1x1, sdperf packages: "[1, 2]"', "not a JSON object"),
    ('p\nSteps: 20, Seed: 1, Size: 1x1, Model: "unterminated', "broken JSON string"),
    ('p\nSteps: 20, Seed: 1, Size: 1x1, Model: "a"b', "where ', ' belongs"),
    ("p\nSteps: 20, Seed: 1, Seed: 2, Size: 1x1", "'Seed' appears twice"),
    ("p\nSteps: 20, Seed: 1, Size: 1x1, sdperf prompt: plain", "must be a JSON string"),
    (f"p\nSteps: 20, Seed: 1, Size: 1x1, Model hash: ffffffffff, sdperf model sha256: {SHA}", "not the start of"),
    ("p\nSteps: 0, Seed: 1, Size: 1x1", "steps: 0 is out of range"),
    ("p\nSteps: 1, Seed: 18446744073709551616, Size: 1x1", "seed: 18446744073709551616 is out of range"),
    ("just a prompt", "not A1111/sdperf generation parameters"),
])
def test_bad_parameters_text_is_refused_with_the_reason(text: str, problem: str) -> None:
    with pytest.raises(PngMetadataError) as raised:
        parse_parameters(text)
    assert problem in str(raised.value) and str(raised.value).startswith("parameters text: ")


# ------------------------------------------------------------ bad PNG files


@pytest.fixture
def good_png(tmp_path: Path) -> Path:
    path = tmp_path / "good.png"
    write_png(path, PIXELS, typical(prompt="日本語 🐱 prompt"))
    return path


def refused(path: Path, *fragments: str, read: Callable[[Path], object] = read_png) -> str:
    with pytest.raises(PngMetadataError) as raised:
        read(path)
    message = str(raised.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def rewrite(source: Path, target: Path, change: Callable[[dict[str, str]], dict[str, str]],
            as_text: tuple[str, ...] = ()) -> Path:
    """A copy of `source` with its text chunks changed; keys in `as_text` go into tEXt."""
    with Image.open(source) as image:
        text = {key: str(value) for key, value in image.text.items()}
        pixels = image.copy()
    info = PngImagePlugin.PngInfo()
    for key, value in change(text).items():
        if key in as_text:
            info.add_text(key, value)
        else:
            info.add_itxt(key, value)
    pixels.save(target, pnginfo=info)
    return target


@pytest.mark.parametrize("keep", [0, 4, 8, 20, 60, "half", -1, -4, -5, -12, -13, -20])
def test_a_truncated_png_is_refused(good_png: Path, tmp_path: Path, keep: int | str) -> None:
    data = good_png.read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2 if keep == "half" else keep])  # type: ignore[misc]
    for read in (read_png, read_image):
        refused(cut, read=read)


@pytest.mark.parametrize("where", [b"sdperf:prompt", b"parameters", b"IDAT"])
def test_a_flipped_byte_fails_the_crc(good_png: Path, tmp_path: Path, where: bytes) -> None:
    data = bytearray(good_png.read_bytes())
    data[data.index(where) + len(where) + 6] ^= 0x20
    broken = tmp_path / "crc.png"
    broken.write_bytes(bytes(data))
    refused(broken, "damaged PNG file", "checksum")
    refused(broken, "damaged PNG file", read=read_image)


def test_files_that_are_not_png_are_refused(tmp_path: Path) -> None:
    jpeg, text, empty = tmp_path / "photo.jpg", tmp_path / "notes.png", tmp_path / "empty.png"
    Image.fromarray(PIXELS).save(jpeg, format="JPEG")
    text.write_text("Steps: 20, Seed: 1\n", encoding="utf-8")
    empty.write_bytes(b"")
    refused(jpeg, "not a PNG file (it is a JPEG image)")
    refused(text, "not a PNG file (it is not an image)")
    refused(empty, "not a PNG file")
    refused(jpeg, "not a PNG file", read=read_image)


def test_missing_file_and_folder_are_refused(tmp_path: Path) -> None:
    refused(tmp_path / "absent.png", "no such file")
    refused(tmp_path, "is a folder")
    refused(tmp_path / "absent.png", "no such file", read=read_image)


def test_a_png_without_sdperf_metadata_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain.png"
    info = PngImagePlugin.PngInfo()
    info.add_itxt("parameters", format_parameters(typical()))
    Image.fromarray(PIXELS).save(plain, pnginfo=info)
    refused(plain, "has no sdperf metadata; it was not written by sdperf")
    np.testing.assert_array_equal(read_image(plain), PIXELS)  # its pixels are still readable


@pytest.mark.parametrize("chunk", ["iTXt", "zTXt"])
def test_a_decompression_bomb_is_refused_and_pillow_is_left_as_it_was(good_png: Path, tmp_path: Path,
                                                                       chunk: str) -> None:
    limits = PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY
    bomb = tmp_path / "bomb.png"
    info = PngImagePlugin.PngInfo()
    huge = "a" * (PngImagePlugin.MAX_TEXT_CHUNK + 1)
    if chunk == "iTXt":
        info.add_itxt("sdperf:prompt", huge, zip=True)
    else:
        info.add_text("comment", huge, zip=True)
    Image.fromarray(PIXELS).save(bomb, pnginfo=info)
    assert bomb.stat().st_size < 20_000
    refused(bomb, "decompresses past Pillow's limit", "decompression bomb")
    refused(bomb, "decompression bomb", read=read_image)
    assert (PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY) == limits


def test_text_past_pillows_total_limit_is_refused(good_png: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PngImagePlugin, "MAX_TEXT_MEMORY", 100)
    refused(good_png, "MAX_TEXT_MEMORY", "decompression bomb")


def test_an_image_too_large_to_decode_is_refused(good_png: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5)
    refused(good_png, "decompression bomb", read=read_image)


def _set(key: str, value: str | None) -> Callable[[dict[str, str]], dict[str, str]]:
    def change(text: dict[str, str]) -> dict[str, str]:
        if value is None:
            text.pop(key)
        else:
            text[key] = value
        return text
    return change


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("sdperf:seed", "abc", "sdperf:seed is 'abc', not a whole number"),
    ("sdperf:seed", "-5", "sdperf:seed is '-5', not a whole number"),
    ("sdperf:seed", str(2**64), "seed: 18446744073709551616 is out of range"),
    ("sdperf:steps", "0", "steps: 0 is out of range"),
    ("sdperf:guidance", "lots", "sdperf:guidance is 'lots', not a number"),
    ("sdperf:packages", "torch==2.4", "sdperf:packages is not JSON"),
    ("sdperf:packages", '["torch"]', "not a JSON object of package name to version"),
    ("sdperf:model_sha256", "abc", "model_sha256: 'abc' is not 64 lowercase hex digits"),
    ("sdperf:seed", None, "lacks sdperf:seed"),
    ("sdperf:format", None, "no sdperf:format"),
    ("sdperf:format", "2", "this sdperf reads format 1"),
    ("sdperf:colour", "blue", "unknown metadata chunk 'sdperf:colour'"),
])
def test_malformed_fields_are_refused(good_png: Path, tmp_path: Path, key: str, value: str | None,
                                      problem: str) -> None:
    refused(rewrite(good_png, tmp_path / "bad.png", _set(key, value)), problem)


def test_sdperf_fields_in_latin1_text_chunks_are_refused(good_png: Path, tmp_path: Path) -> None:
    # The field report: another tool rewrote the metadata into tEXt, which is Latin-1.
    bad = rewrite(good_png, tmp_path / "text.png", lambda text: text, as_text=("sdperf:seed",))
    refused(bad, "sdperf:seed is in a tEXt/zTXt chunk", "Latin-1")


@hypothesis_settings(hypothesis_quick, max_examples=120)
@given(data=st.data())
def test_damaged_files_give_the_settings_or_png_metadata_error(tmp_path: Path, data: st.DataObject) -> None:
    path = tmp_path / "fuzz.png"
    if not path.exists():
        write_png(path, PIXELS[:2, :3], typical(prompt="日本語"))
    original = path.read_bytes()
    damaged = bytearray(original)
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(damaged) - 1))
        damaged[position] ^= data.draw(st.integers(1, 255))
    if data.draw(st.booleans()):
        damaged = damaged[: data.draw(st.integers(0, len(damaged)))]
    broken = tmp_path / "broken.png"
    broken.write_bytes(bytes(damaged))
    for read in (read_png, read_image):
        try:
            result = read(broken)
        except PngMetadataError as error:
            assert str(broken) in str(error)
        else:  # every byte is under a checksum, so only what was written can come back
            if read is read_png:
                assert result == typical(prompt="日本語")
            else:
                np.testing.assert_array_equal(result, PIXELS[:2, :3])


# ------------------------------------------------------------------- writing


def test_writing_is_atomic_and_leaves_only_the_file(tmp_path: Path) -> None:
    path = tmp_path / "out.png"
    write_png(str(path), PIXELS, typical(seed=1))
    write_png(path, PIXELS, typical(seed=2))  # replaces
    assert read_png(path).seed == 2 and os.listdir(tmp_path) == ["out.png"]
    (tmp_path / "other").write_bytes(b"")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "other").stat().st_mode)


def test_writing_into_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PngMetadataError, match="does not exist; create it first") as raised:
        write_png(tmp_path / "no" / "such" / "x.png", PIXELS, typical())
    assert str(tmp_path / "no" / "such") in str(raised.value)
    assert os.listdir(tmp_path) == []


def test_a_failed_write_leaves_no_temporary_and_the_old_file_untouched(good_png: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    before = good_png.read_bytes()
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    stream = io.BytesIO()
    Image.fromarray(noise).save(stream, format="PNG")
    broken = tmp_path / "broken-source.png"
    broken.write_bytes(stream.getvalue()[:6000])  # cut inside the pixel data
    with Image.open(broken) as lazy:  # its pixels are only read, and fail, while saving
        with pytest.raises(PngMetadataError, match="not written") as raised:
            write_png(good_png, lazy, typical(seed=7))
    assert str(good_png) in str(raised.value) and "unchanged" in str(raised.value)

    def no_space(source: object, target: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(PngMetadataError, match="No space left on device"):
        write_png(good_png, PIXELS, typical(seed=8))
    assert good_png.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["broken-source.png", "good.png"]


def test_a_lone_surrogate_is_refused_naming_the_field_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(PngMetadataError, match=r"GenerationSettings.negative_prompt has a lone surrogate '\\ud800'"):
        typical(negative_prompt="ok \ud800")
    with pytest.raises(PngMetadataError, match=r"packages\['torch'\] has a lone surrogate"):
        typical(packages={"torch": "2.4\udcff"})
    settings = typical()
    object.__setattr__(settings, "prompt", "a cat \ud800")  # past the frozen dataclass's own check
    with pytest.raises(PngMetadataError) as raised:
        write_png(tmp_path / "x.png", PIXELS, settings)
    message = str(raised.value)
    assert str(tmp_path / "x.png") in message and "GenerationSettings.prompt" in message and "surrogate" in message
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(("image", "problem"), [
    (PIXELS.astype(np.float32), "float32 of shape (4, 6, 3)"),
    (PIXELS[:, :, 0], "uint8 of shape (4, 6)"),
    (np.zeros((0, 4, 3), np.uint8), "shape (0, 4, 3)"),
    (Image.new("F", (2, 2)), "mode 'F' is not stored losslessly"),
    (Image.new("CMYK", (2, 2)), "mode 'CMYK'"),
    ([[1, 2, 3]], "image is a list"),
])
def test_unsuitable_images_are_refused(tmp_path: Path, image: object, problem: str) -> None:
    with pytest.raises(PngMetadataError, match=re.escape(problem)):
        write_png(tmp_path / "x.png", image, typical())
    assert os.listdir(tmp_path) == []


def test_every_written_keyword_follows_the_png_rules(good_png: Path) -> None:
    with Image.open(good_png) as image:
        keys = list(image.text)
    assert "parameters" in keys and all(check_keyword(key) == key for key in keys)
    assert all(key.startswith(SUITE_KEY_PREFIX) for key in keys if key != "parameters")


@pytest.mark.parametrize(("key", "problem"), [
    ("", "is 0 characters long"), ("k" * 80, "is 80 characters long"), (" lead", "starts or ends with a space"),
    ("trail ", "starts or ends with a space"), ("two  spaces", "two spaces in a row"),
    ("tab\there", "'\\t', which is not a printable Latin-1"), ("arrow→", "'→'"), ("nbsp\xa0x", "'\\xa0'"),
    ("del\x7f", "'\\x7f'"), (b"bytes", "is a bytes"),
])
def test_keywords_against_the_png_rules_are_refused(key: str, problem: str) -> None:
    with pytest.raises(PngMetadataError, match=re.escape(problem)):
        check_keyword(key)
    assert check_keyword("sdperf:negative_prompt") == "sdperf:negative_prompt"
    assert check_keyword("Ünïcödé ok") == "Ünïcödé ok"


# ---------------------------------------------------------------- the settings


@pytest.mark.parametrize(("changes", "problem"), [
    ({"seed": -1}, "seed: -1 is out of range"),
    ({"seed": 2**64}, "seed: 18446744073709551616 is out of range"),
    ({"steps": 0}, "steps: 0 is out of range"),
    ({"steps": True}, "steps: True (bool) is not a whole number"),
    ({"width": "512"}, "width: '512' (str) is not a whole number"),
    ({"height": 512.0}, "height: 512.0 (float) is not a whole number"),
    ({"guidance": "7.5"}, "guidance: '7.5' (str) is not a number"),
    ({"guidance": 10**400}, "too large for a float"),
    ({"prompt": None}, "prompt: None (NoneType) is not a str"),
    ({"prompt": "x" * (MAX_TEXT_CHARS + 1)}, f"{MAX_TEXT_CHARS + 1} characters long"),
    ({"model_sha256": SHA.upper()}, "not 64 lowercase hex digits"),
    ({"packages": ["torch"]}, "packages: ['torch'] (list) is not a mapping"),
    ({"packages": {"torch": None}}, "packages['torch']: None (NoneType) is not a str"),
    ({"packages": {"": "1"}}, "empty package name"),
])
def test_settings_validate_themselves(changes: dict[str, object], problem: str) -> None:
    with pytest.raises(PngMetadataError, match=re.escape(problem)):
        typical(**changes)


def test_settings_normalise_equal_compare_by_bits_and_are_frozen() -> None:
    packages = {"torch": "2.4.1"}
    settings = typical(steps=np.int64(20), guidance=np.float32(7.5), packages=packages)
    packages["torch"] = "changed"
    assert type(settings.steps) is int and type(settings.guidance) is float
    assert settings.packages == {"torch": "2.4.1"}
    assert typical(guidance=7) == typical(guidance=7.0)
    assert typical(guidance=from_bits(0x7FF8000000000001)) == typical(guidance=from_bits(0x7FF8000000000001))
    assert typical(guidance=from_bits(0x7FF8000000000001)) != typical(guidance=math.nan)
    assert typical(guidance=-0.0) != typical(guidance=0.0)
    assert len({typical(guidance=math.nan), typical(guidance=math.nan)}) == 1
    assert dataclasses.asdict(settings)["packages"] == {"torch": "2.4.1"}
    assert pickle.loads(pickle.dumps(settings)) == settings
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.seed = 1  # type: ignore[misc]


def test_module_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, sdperf.common.pngmeta; print('torch' in sys.modules or 'diffusers' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(pngmeta.__file__).parents[1])
    assert done.stdout.strip() == "False"


def test_read_image_reads_any_png(tmp_path: Path) -> None:
    stream = io.BytesIO()
    Image.fromarray(PIXELS).convert("P").save(stream, format="PNG")
    (tmp_path / "p.png").write_bytes(stream.getvalue())
    assert read_image(tmp_path / "p.png").shape == (4, 6, 3)
