"""Lock files as sets of pins: what HEAD changes against BASE, and locks in between.

A lock is a pip requirements file of exact pins (`name==version`, or `name @ URL`), each
perhaps followed by `--hash=` options and continued over lines with `\\`, and perhaps
option lines (`--find-links DIR`). A change is one distribution whose line differs; an
intermediate lock is BASE with some of HEAD's changes applied, every other line BASE's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

# pip's rule: a comment starts at the line's start or after whitespace (a URL's `#sha256=` is no comment).
_COMMENT = re.compile(r"(^|\s+)#.*$")


class LockFileError(ValueError):
    """A lock file that cannot be read as pins; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Pin:
    name: str  # canonical (PEP 503)
    version: str  # the pinned version, or the file name of a direct URL
    line: str  # the whole logical line, hashes included: two pins differ when their lines do


@dataclass(frozen=True)
class Lock:
    path: Path
    options: tuple[str, ...]  # option lines (--find-links ...), in order
    pins: dict[str, Pin]


@dataclass(frozen=True)
class Change:
    """One distribution HEAD installs differently: changed (both pins), added (no base) or removed (no head)."""

    name: str
    base: Pin | None
    head: Pin | None

    @property
    def label(self) -> str:
        if self.base is None:
            return f"+{self.name} {self.head.version}"
        if self.head is None:
            return f"-{self.name} {self.base.version}"
        if self.base.version == self.head.version:
            return f"{self.name} {self.base.version} (other hashes or source)"
        return f"{self.name} {self.base.version} -> {self.head.version}"


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, line) with comments removed and `\\` continuations joined."""
    joined: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = _COMMENT.sub("", raw).rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = " ".join((pending + line).split())
        pending = ""
        if line:
            joined.append((start, line))
    if pending.strip():
        joined.append((start, " ".join(pending.split())))
    return joined


def _url_version(url: str) -> str:
    """The version in a direct URL's file name (a wheel's or an sdist's), else the file name."""
    name = url.rsplit("/", 1)[-1].split("#", 1)[0]
    try:
        if name.endswith(".whl"):
            return str(parse_wheel_filename(name)[1])
        return str(parse_sdist_filename(name)[1])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return name


def read_lock(path: Path) -> Lock:
    """The pins and option lines of lock file `path` (raises LockFileError)."""
    if not path.is_file():
        raise LockFileError(f"lock file {str(path)!r} does not exist; give a pip requirements file of pinned versions")
    options: list[str] = []
    pins: dict[str, Pin] = {}
    for number, line in _logical_lines(path.read_text(encoding="utf-8")):
        if line.startswith("-"):
            options.append(line)
            continue
        requirement_text = line.split(" --", 1)[0]
        try:
            requirement = Requirement(requirement_text)
        except InvalidRequirement as error:
            raise LockFileError(f"{path}:{number}: {requirement_text!r} is not a requirement ({error})") from None
        exact = [spec.version for spec in requirement.specifier if spec.operator in ("==", "===")]
        if requirement.url:
            version = _url_version(requirement.url)
        elif len(exact) == 1 and "*" not in exact[0]:
            version = exact[0]
        else:
            raise LockFileError(
                f"{path}:{number}: {requirement_text!r} is not an exact pin; a lock pins every package "
                "(name==version or name @ URL), e.g. as `pip freeze` or `uv pip compile` writes it"
            )
        name = canonicalize_name(requirement.name)
        if name in pins:
            raise LockFileError(f"{path}:{number}: {requirement.name} is pinned twice; keep one line")
        pins[name] = Pin(name, version, line)
    return Lock(path, tuple(options), pins)


def lock_changes(base: Lock, head: Lock) -> list[Change]:
    """Every distribution whose pin differs, by name."""
    changes = []
    for name in sorted(set(base.pins) | set(head.pins)):
        before, after = base.pins.get(name), head.pins.get(name)
        if before is None or after is None or before.line != after.line:
            changes.append(Change(name, before, after))
    return changes


def intermediate_lock(base: Lock, head: Lock, applied: list[Change]) -> str:
    """BASE with `applied` changes taken from HEAD: the text of a lock file. Option lines are
    BASE's, then HEAD's that BASE lacks (a package HEAD adds may come from a source only it names)."""
    pins = dict(base.pins)
    for change in applied:
        if change.head is None:
            pins.pop(change.name, None)
        else:
            pins[change.name] = change.head
    names = ", ".join(change.label for change in applied) or "nothing"
    options = list(base.options) + [line for line in head.options if line not in base.options]
    lines = [f"# {base.path.name} with these changes from {head.path.name}: {names}", *options]
    lines += [pins[name].line for name in sorted(pins)]
    return "\n".join(lines) + "\n"
