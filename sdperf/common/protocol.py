"""Messages between the pytest process and a worker: one JSON object per line.

Requests go down one pipe, replies and progress events come up another, so the
worker's own stdout/stderr (library warnings, progress bars) never corrupt them.
"""

from __future__ import annotations

import json
import os
from typing import Any

PROTOCOL_VERSION = 1


def encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")


def write_message(fd: int, message: dict[str, Any]) -> None:
    data = encode(message)
    while data:
        written = os.write(fd, data)
        data = data[written:]


class LineReader:
    """Splits bytes read from a pipe into JSON messages; keeps a partial line for later."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]


def read_message_blocking(fd: int, reader: LineReader, pending: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Next message from `fd`, blocking; None at end of file. Used by the worker."""
    while not pending:
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        pending.extend(reader.feed(chunk))
    return pending.pop(0)
