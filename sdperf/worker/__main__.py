"""Worker process: serves one benchmark case over two pipes until told to stop.

Started fresh for every case by `sdperf.execution.process`, with the case's environment
already in place, because thread counts, allocators and affinity are fixed at
process start and offload hooks or compiled graphs must not leak between cases.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

from sdperf.common import protocol


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sdperf.worker")
    parser.add_argument("--requests-fd", type=int, required=True)
    parser.add_argument("--replies-fd", type=int, required=True)
    parser.add_argument("--progress-every", type=float, default=5.0, help="seconds between step events")
    args = parser.parse_args(argv)

    requests, replies = args.requests_fd, args.replies_fd
    protocol.write_message(replies, {"event": "ready", "pid": os.getpid(), "protocol": protocol.PROTOCOL_VERSION})

    last_event = [time.perf_counter()]

    def on_step(step: int, total: int | None, step_s: float) -> None:
        # Rate-limited: a tiny model's steps take milliseconds, a Pi's half a minute.
        now = time.perf_counter()
        if now - last_event[0] >= args.progress_every:
            last_event[0] = now
            protocol.write_message(replies, {"event": "step", "step": step, "of": total, "step_s": step_s})

    reader, pending = protocol.LineReader(), []
    session = None
    while True:
        request = protocol.read_message_blocking(requests, reader, pending)
        if request is None or request.get("op") == "shutdown":
            return 0
        try:
            if request["op"] == "load":
                # Heavy imports happen here, inside the worker, never in pytest.
                from sdperf.worker.pipeline import PipelineSession

                session = PipelineSession(request["case"], on_step)
                reply = session.load()
            elif request["op"] == "audit":
                # What the process really runs with, without loading a model (for `sdperf doctor`).
                from sdperf.worker.audit import worker_audit

                reply = {"audit": worker_audit()}
            elif request["op"] == "save_image":
                if session is None:
                    raise RuntimeError("save_image before load")
                reply = session.save_last(request["path"])
            elif request["op"] == "generate":
                if session is None:
                    raise RuntimeError("generate before load")
                last_event[0] = time.perf_counter()
                reply = session.generate(save_png=request.get("save_png"))
            else:
                raise ValueError(f"unknown request {request.get('op')!r}")
            protocol.write_message(replies, {"ok": True, **reply})
        except Exception as error:  # reported to the parent, which fails the case
            protocol.write_message(
                replies,
                {"ok": False, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()},
            )


if __name__ == "__main__":
    code = main()
    # Skip the interpreter's teardown of torch and the pipeline (over a second per worker, and
    # nothing left to write): every reply is already on its pipe, the log is flushed here.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
