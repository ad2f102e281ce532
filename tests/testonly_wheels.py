"""Test-only wheels, built by the tests that install them: the planted slowdown of
tests/planted_slowdown/ and small do-nothing packages whose versions a lock can move.
Same arguments, same bytes (fixed timestamps): locks naming them, and so their cached
environments, stay the same from run to run."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

PLANTED = Path(__file__).parent / "planted_slowdown"


def planted_files() -> dict[str, bytes]:
    """The planted slowdown's module and the .pth that imports it at every interpreter start."""
    return {name: (PLANTED / name).read_bytes()
            for name in ("sdperf_testonly_slowdown.py", "sdperf_testonly_slowdown.pth")}


def build_wheel(folder: Path, name: str, version: str, files: dict[str, bytes] | None = None,
                requires: tuple[str, ...] = ()) -> Path:
    """A pure-Python wheel of distribution `name` holding `files` (default: an empty module of
    its own name), with `requires` as its dependencies."""
    module = name.replace("-", "_")
    files = dict(files if files is not None else {f"{module}.py": b""})
    info = f"{module}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {requirement}\n" for requirement in requires)
    files[f"{info}/METADATA"] = metadata.encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: sdperf-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(zipfile.ZipInfo(path, date_time=(2026, 1, 1, 0, 0, 0)), data)
    return wheel


def planted_wheel(folder: Path) -> Path:
    """sdperf-testonly-slowdown 1.0: the planted slowdown alone."""
    return build_wheel(folder, "sdperf-testonly-slowdown", "1.0", planted_files())
