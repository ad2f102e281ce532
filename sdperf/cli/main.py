"""The `sdperf` command: model building, host diagnosis, recipes, dedicated environments,
A/B runs of two dependency locks, baseline promotion and trend plots beside the pytest suite."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _build_model(args: argparse.Namespace) -> int:
    import time

    from sdperf.models.build import ensure_builtin, quiet_libraries
    from sdperf.models.store import BUILTIN_MODELS, builtin_name, weight_digest

    name = builtin_name(args.name)
    if name is None:
        print(f"sdperf: model {args.name!r} is not built in; built-in: {', '.join(BUILTIN_MODELS)}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    if args.out:
        from sdperf.models.build import build

        out = Path(args.out)
        if out.exists() and any(out.iterdir()):
            print(f"sdperf: --out {str(out)!r} exists and is not empty; choose a new folder", file=sys.stderr)
            return 2
        with quiet_libraries():  # the libraries' warnings and shard bars say nothing a user can act on
            build(name, out)
        path = out
    else:
        path, built = ensure_builtin(name, quiet=True)
        print(f"built in {time.perf_counter() - started:.1f} s" if built else "already cached", file=sys.stderr)
    print(f"{path}\nweights sha256 {weight_digest(path)}")
    return 0


def _models(args: argparse.Namespace) -> int:
    import json

    from sdperf.models.build import parameter_counts
    from sdperf.models.catalog import PUBLISHED_PARAMETERS, RECIPES
    from sdperf.models.store import BUILTIN_MODELS, BUILTIN_PREFIX, READY_MARKER, TINY_MODELS, builtin_folder

    counts = {name: parameter_counts(name) for name in BUILTIN_MODELS}
    if args.json:
        print(json.dumps(counts, indent=2))
        return 0
    for name in BUILTIN_MODELS:
        recipe = RECIPES[name]
        size = ("tiny: the profiles' scaled-down workloads (the default)" if name in TINY_MODELS
                else f"full size, synthetic {recipe['weights_dtype']} weights: the reports' workloads")
        networks = {k: v for k, v in counts[name].items() if "." not in k}
        print(f"{BUILTIN_PREFIX}{name}  {recipe['pipeline']}, {size}; {sum(networks.values()):,} parameters")
        published = PUBLISHED_PARAMETERS.get(name, {})
        for component, count in counts[name].items():
            check = ""
            if component in published:
                check = "  = published" if published[component] == count else f"  published {published[component]:,}"
            print(f"  {component:<16} {count:>15,}{check}")
        folder = builtin_folder(name)
        built = f"cached in {folder}" if (folder / READY_MARKER).is_file() else f"not built yet (sdperf build-model {name})"
        print(f"  {built}")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from sdperf.cli.doctor import run_doctor

    return run_doctor(args.profile, Path(args.host_root))


def _promote(args: argparse.Namespace) -> int:
    from sdperf.storage.baselines import BaselineError, InvalidRunError, promote

    try:
        target = promote(Path(args.run_file), Path(args.root), label=args.label)
    except InvalidRunError as error:
        # The file given is unusable (unreadable, foreign, wrong types or impossible values):
        # bad input, 2 as for the other commands' bad arguments. Nothing was copied.
        print(f"sdperf: {error}", file=sys.stderr)
        return 2
    except BaselineError as error:
        # A usable run refused on purpose (incomplete, failed cases, an A/B run).
        print(f"sdperf: {error}", file=sys.stderr)
        return 1
    print(f"promoted {args.run_file} to {target}; commit it (through a pull request) to make it the baseline")
    return 0


def _trend(args: argparse.Namespace) -> int:
    from sdperf.reporting.trend import plot_trend, trend_points
    from sdperf.storage.baselines import BaselineError

    try:
        points = trend_points(Path(args.storage), args.case)
        out = plot_trend(points, args.case, Path(args.out))
    except BaselineError as error:
        print(f"sdperf: {error}", file=sys.stderr)
        return 1
    for point in points:
        print(f"{point.run}  {point.when}  median {point.median_s:.4f} s  {point.outcome}")
    print(f"wrote {out}")
    return 0


def _env_create(args: argparse.Namespace) -> int:
    import subprocess

    from sdperf.execution.environments import ENVIRONMENTS, create, environment_folder

    spec = ENVIRONMENTS.get(args.name)
    if spec is None:
        print(f"sdperf: environment {args.name!r} is unknown; known: {', '.join(sorted(ENVIRONMENTS))}", file=sys.stderr)
        return 2
    print(f"creating {environment_folder(args.name)}: {spec.summary}; {spec.download_note}", file=sys.stderr)
    try:
        python = create(args.name)
    except subprocess.CalledProcessError as error:
        print(f"sdperf: creating environment {args.name!r} failed: {' '.join(map(str, error.cmd))} "
              f"exited with {error.returncode}; fix what uv printed above and run this again", file=sys.stderr)
        return 1
    print(f"environment {args.name} ready: {python}")
    return 0


def _ab(args: argparse.Namespace, pytest_args: list[str]) -> int:
    import pytest

    from sdperf.execution.ab_sides import ensure_environments
    from sdperf.execution.environments import ROOT, LockError

    base, head = Path(args.base).resolve(), Path(args.head).resolve()
    try:
        # Built here, before pytest starts, so a lock that cannot install is a usage error;
        # the run's summary then names both sides and what B installs differently.
        ensure_environments(base, head, say=lambda line: print(line, file=sys.stderr, flush=True))
    except LockError as error:
        print(f"sdperf: {error}", file=sys.stderr)
        return 2
    # The suite's own latency cases, selected as in any pytest run (-m, -k, --sdperf-recipes ...).
    return int(pytest.main([str(ROOT / "perf" / "test_latency.py"), f"--sdperf-ab={base},{head}", *pytest_args]))


def _culprit(args: argparse.Namespace, pytest_args: list[str]) -> int:
    import time

    from sdperf.cli.culprit import StepFailed, run_culprit
    from sdperf.execution.coupling import CouplingError
    from sdperf.execution.environments import LockError
    from sdperf.execution.locks import LockFileError

    folder = Path(args.dir or time.strftime("sdperf-culprit-%Y%m%d-%H%M%S"))
    try:
        optional = [Path(value) if value else None for value in (args.json, args.markdown, args.from_run)]
        return run_culprit(Path(args.base).resolve(), Path(args.head).resolve(), pytest_args,
                           optional[0], optional[1], folder, optional[2])
    except (LockFileError, LockError, CouplingError) as error:
        print(f"sdperf: {error}", file=sys.stderr)
        return 2
    except StepFailed as error:  # HEAD's own A/B run saved nothing: nothing to search
        print(f"sdperf: {error}", file=sys.stderr)
        return 1


def _env_prune(args: argparse.Namespace) -> int:
    from sdperf.execution.environments import prune_lock_environments

    if args.keep < 0:
        print(f"sdperf: --keep {args.keep}: give a count >= 0", file=sys.stderr)
        return 2
    removed = prune_lock_environments(args.keep)
    for folder in removed:
        print(f"removed {folder}")
    print(f"{len(removed)} lock environment(s) removed; the {args.keep} most recently used are kept")
    return 0


def _recipes(args: argparse.Namespace) -> int:
    from sdperf.config.profiles import load_profiles
    from sdperf.config.recipes import REGISTRY
    from sdperf.execution.cases import make_case
    from sdperf.execution.environments import environment_python
    from sdperf.host.capabilities import host_facts, unmet_for
    from sdperf.host.detection import detect_host
    from sdperf.models.store import ModelSpec

    profiles = load_profiles()
    if args.profile and args.profile not in profiles:
        print(f"sdperf: --profile: profile {args.profile!r} is unknown; known: {', '.join(profiles)}", file=sys.stderr)
        return 2
    facts = host_facts(detect_host(Path(args.host_root)), environment_python)
    for name, profile in profiles.items():
        if args.profile and name != args.profile:
            continue
        print(f"{name} (control: {profile.control})")
        for recipe_name in profile.recipes:
            recipe = REGISTRY[recipe_name]
            reason = unmet_for(make_case(profile, recipe, ModelSpec(name=profile.builtin_model), {}), facts)
            print(f"  {recipe_name:<28} {'runs here' if reason is None else 'skipped: ' + reason}")
            print(f"  {'':<28} {recipe.summary}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdperf", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build-model", help="build a built-in model into the cache (or --out DIR)")
    build.add_argument("name", help="tiny-sd15, tiny-sd3, sd15 or sd3-medium (builtin: prefix optional)")
    build.add_argument("--out", help="write to this new folder instead of the cache")
    build.set_defaults(run=_build_model)
    models = commands.add_parser("models", help="the built-in models and each network's parameter count")
    models.add_argument("--json", action="store_true", help="print {model: {component: count}} as JSON")
    models.set_defaults(run=_models)
    doctor = commands.add_parser("doctor", help="what on this host will ruin the numbers, and how to fix it")
    doctor.add_argument("--profile", help="check the settings of this profile (default: the detected one)")
    doctor.add_argument("--host-root", default="/", help="read /proc and /sys under this folder")
    doctor.set_defaults(run=_doctor)
    promote = commands.add_parser(
        "promote", help="make a saved valid run the newest baseline of its profile (baselines/<profile>/)"
    )
    promote.add_argument("run_file", metavar="RUN", help="a run's JSON (.benchmarks/<profile>/.../NNNN_*.json or --benchmark-json output)")
    promote.add_argument("--root", default=".", help="project folder holding baselines/ (default: here)")
    promote.add_argument("--label", default="baseline", help="name part of the new file (default: baseline)")
    promote.set_defaults(run=_promote)
    trend = commands.add_parser("trend", help="plot a case's latency across saved runs, marked by verdict")
    trend.add_argument("case", help="test id (cpu-fp32) or full test name")
    trend.add_argument("--storage", required=True, help="folder of saved runs, e.g. .benchmarks/cpu")
    trend.add_argument("--out", default="trend.png", help="PNG to write (default: trend.png)")
    trend.set_defaults(run=_trend)
    recipes = commands.add_parser("recipes", help="each profile's recipes, what they do, and whether they run here")
    recipes.add_argument("--profile", help="only this profile")
    recipes.add_argument("--host-root", default="/", help="read /proc and /sys under this folder")
    recipes.set_defaults(run=_recipes)
    ab = commands.add_parser(
        "ab",
        help="does a dependency upgrade make anything slower, hungrier or different? each case in both locks' "
        "environments, alternately; further options go to pytest (-m pi5, -k fp32, --sdperf-rounds 20 ...)",
    )
    ab.add_argument("base", metavar="BASE_LOCK", help="the current lock, e.g. the main branch's constraints.txt (side A)")
    ab.add_argument("head", metavar="HEAD_LOCK", help="the proposed lock (side B)")
    ab.set_defaults(run=_ab, passes_unknown=True)
    culprit = commands.add_parser(
        "culprit",
        help="which package made it slower? for each case `sdperf ab` calls regressed, the smallest set of HEAD's "
        "package changes that still regresses it, by A/B runs of locks in between; further options go to pytest",
    )
    culprit.add_argument("base", metavar="BASE_LOCK", help="the current lock (side A)")
    culprit.add_argument("head", metavar="HEAD_LOCK", help="the proposed lock, regressed against BASE")
    culprit.add_argument("--json", metavar="FILE", help="write {case: {culprit, steps, ...}} to FILE")
    culprit.add_argument("--markdown", metavar="FILE", help="write the report as Markdown to FILE "
                         "(always appended to $GITHUB_STEP_SUMMARY when set)")
    culprit.add_argument("--dir", metavar="DIR", help="work folder for each step's lock, results and output "
                         "(default: sdperf-culprit-<date>-<time> here)")
    culprit.add_argument("--from-run", metavar="FILE", help="take the regressed cases from this A/B run of the same "
                         "locks (`sdperf ab`'s --benchmark-json, e.g. the gate's) instead of running it again")
    culprit.set_defaults(run=_culprit, passes_unknown=True)
    from sdperf.cli.history import add_commands as add_history_commands

    add_history_commands(commands)
    env = commands.add_parser("env", help="dedicated Python environments some recipes run in (ipex_bf16)")
    env_commands = env.add_subparsers(dest="env_command", required=True)
    env_create = env_commands.add_parser("create", help="create (or finish) an environment; cached under sdperf's cache")
    env_create.add_argument("name", help="environment name, e.g. ipex")
    env_create.set_defaults(run=_env_create)
    env_prune = env_commands.add_parser(
        "prune", help="remove the lock environments of `sdperf ab` but the most recently used (each takes gigabytes)"
    )
    env_prune.add_argument("--keep", type=int, default=2, help="how many to keep (default: 2, a gate's A and B)")
    env_prune.set_defaults(run=_env_prune)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if getattr(args, "passes_unknown", False):
        return args.run(args, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
