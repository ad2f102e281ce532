"""The `sdperf` command: model building and host diagnosis beside the pytest suite."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _build_model(args: argparse.Namespace) -> int:
    from sdperf.models.store import BUILTIN_MODELS, ensure_builtin, weight_digest

    if args.name not in BUILTIN_MODELS:
        print(f"sdperf: model {args.name!r} is not built in; built-in: {', '.join(BUILTIN_MODELS)}", file=sys.stderr)
        return 2
    if args.out:
        from sdperf.models.tiny import build

        out = Path(args.out)
        if out.exists() and any(out.iterdir()):
            print(f"sdperf: --out {str(out)!r} exists and is not empty; choose a new folder", file=sys.stderr)
            return 2
        build(args.name, out)
        path = out
    else:
        path, built = ensure_builtin(args.name)
        print("built" if built else "already cached", file=sys.stderr)
    print(f"{path}\nweights sha256 {weight_digest(path)}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdperf", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build-model", help="build a built-in model into the cache (or --out DIR)")
    build.add_argument("name", help="tiny-sd15 or tiny-sd3")
    build.add_argument("--out", help="write to this new folder instead of the cache")
    build.set_defaults(run=_build_model)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
