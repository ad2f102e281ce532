"""Generation settings in PNG files: written with every image, read back exactly.

Each field goes into its own iTXt chunk keyed `sdperf:<field>` (authoritative), and
the whole set also into an iTXt `parameters` chunk in the text format AUTOMATIC1111's
web UI writes, so its "PNG info" tab and image managers show the settings. Text goes
into iTXt only: tEXt is Latin-1 by the PNG specification, and UTF-8 written there
(as in the field report this module reproduces) comes back garbled.

Only Pillow and numpy, imported when used: the pytest process never loads torch.
"""

from __future__ import annotations

import json
import os
import secrets
import struct
import zlib
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy
    from PIL import Image as PILImage

from sdperf.common.a1111 import format_parameters, parse_packages
from sdperf.common.generation_settings import (
    FORMAT_VERSION,
    PARAMETERS_KEY,
    SUITE_KEY_PREFIX,
    WHOLE_NUMBER,
    GenerationSettings,
    PngMetadataError,
    check_keyword,
    format_float,
    parse_float,
    require_settings,
    show_value,
)

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
            value = format_float(value)
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
            f"{doing}: path {show_value(path)} ({type(path).__name__}) is not a str or Path; give a file path"
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
        settings = require_settings(settings, "write_png")
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
        if not WHOLE_NUMBER.fullmatch(text):
            raise PngMetadataError(
                f"{where} is {show_value(text)}, not a whole number; the metadata is corrupt, write the image again"
            )
        return int(text)
    if name == "guidance":
        value = parse_float(text)
        if value is None:
            raise PngMetadataError(
                f"{where} is {show_value(text)}, not a number; the metadata is corrupt, write the image again"
            )
        return value
    if name == "packages":
        return parse_packages(text, where)
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
            f"{path}: {format_key} is {show_value(str(ours[format_key]))}; this sdperf reads format {FORMAT_VERSION}, "
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
