"""The shape a saved run must have before it is promoted or compared against.

pytest-benchmark's part is what its `Metadata.as_dict` and `Stats.as_dict` write (5.x);
sdperf's part is what is read again later: promotion (`sdperf.cases`, `sdperf.run`,
`machine_info.sdperf`), verdicts against a baseline (`extra_info.latencies_s`, `rounds`,
`model`, `workload`) and trend plots (`datetime`, `extra_info.verdicts`). Fields nobody
reads again are left alone, so older schemas and later additions still load.

Plain code, not a schema library: the nightly promote job installs sdperf without its
dependencies, and `sdperf promote` runs on the standard library alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from sdperf.storage.results import Status

# Each check takes a value and its field path (`benchmarks[1].stats.median`) and returns
# the problems found, each "path: what is wrong".
Check = Callable[[Any, str], list[str]]

# The per-round figures that verdicts compare (sdperf.judging.verdicts.MEMORY_KEYS; storage
# sits below judging, so the names are repeated here and a test keeps the two equal).
ROUND_MEMORY_KEYS = ("peak_rss_bytes", "cuda_max_reserved_bytes", "cuda_max_allocated_bytes")


def _child(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _shown(value: Any) -> str:
    """The value as the file spells it (null, NaN, "0.4"), cut short."""
    if isinstance(value, str):
        text = f"the string {json.dumps(value)}"
    elif isinstance(value, bool):
        text = f"{json.dumps(value)} (a boolean)"
    elif isinstance(value, dict):
        text = "an object"
    elif isinstance(value, list):
        text = "a list"
    else:
        text = json.dumps(value)  # numbers and null; NaN and Infinity as Python's json writes them
    return text if len(text) <= 48 else text[:45] + "..."


def _is_number(value: Any) -> bool:
    # JSON true/false load as bool, a subclass of int: never a measurement.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value)


# Leaf checks.

def string(value: Any, where: str) -> list[str]:
    return [] if isinstance(value, str) else [f"{where}: {_shown(value)} is not a string"]


def boolean(value: Any, where: str) -> list[str]:
    return [] if isinstance(value, bool) else [f"{where}: {_shown(value)} is not true or false"]


def any_object(value: Any, where: str) -> list[str]:
    return [] if isinstance(value, dict) else [f"{where}: {_shown(value)} is not an object"]


def finite_number(value: Any, where: str) -> list[str]:
    if not _is_number(value):
        return [f"{where}: {_shown(value)} is not a number"]
    if not math.isfinite(value):
        return [f"{where}: {_shown(value)} is not a finite number"]
    return []


def _bounded(minimum: float, inclusive: bool, noun: str) -> Check:
    def check(value: Any, where: str) -> list[str]:
        problems = finite_number(value, where)
        if not problems and (value < minimum or (value == minimum and not inclusive)):
            problems.append(f"{where}: {_shown(value)} is not {noun}")
        return problems

    return check


positive_time = _bounded(0, inclusive=False, noun="a positive time")
non_negative_time = _bounded(0, inclusive=True, noun="a time >= 0")
positive_number = _bounded(0, inclusive=False, noun="a positive number")
non_negative_number = _bounded(0, inclusive=True, noun="a number >= 0")


def count(minimum: int) -> Check:
    def check(value: Any, where: str) -> list[str]:
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{where}: {_shown(value)} is not a whole number"]
        return [f"{where}: {value} is below {minimum}"] if value < minimum else []

    return check


def one_of(allowed: tuple[str, ...]) -> Check:
    def check(value: Any, where: str) -> list[str]:
        if value in allowed and isinstance(value, str):
            return []
        return [f"{where}: {_shown(value)} is not one of {', '.join(allowed)}"]

    return check


# Combinators.

def nullable(check: Check) -> Check:
    return lambda value, where: [] if value is None else check(value, where)


def list_of(item: Check) -> Check:
    def check(value: Any, where: str) -> list[str]:
        if not isinstance(value, list):
            return [f"{where}: {_shown(value)} is not a list"]
        return [problem for index, entry in enumerate(value) for problem in item(entry, f"{where}[{index}]")]

    return check


def mapping_of(item: Check) -> Check:
    def check(value: Any, where: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{where}: {_shown(value)} is not an object"]
        return [problem for key, entry in value.items() for problem in item(entry, _child(where, str(key)))]

    return check


def fields(required: Mapping[str, Check] | None = None, optional: Mapping[str, Check] | None = None) -> Check:
    """An object with these fields; others are allowed (later schemas add some)."""
    required, optional = required or {}, optional or {}

    def check(value: Any, where: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{where or 'the run'}: {_shown(value)} is not an object"]
        missing = [key for key in required if key not in value]
        problems = [f"{where or 'the run'}: missing {', '.join(missing)}"] if missing else []
        for key, field_check in {**required, **optional}.items():
            if key in value:
                problems += field_check(value[key], _child(where, key))
        return problems

    return check


# pytest-benchmark's part.

_STAT_FIELDS = fields(
    required={
        **{name: positive_time for name in ("min", "max", "mean", "median", "q1", "q3", "ld15iqr", "hd15iqr", "total")},
        "stddev": non_negative_time,
        "iqr": non_negative_time,
        "rounds": count(1),
        "iterations": count(1),
        "iqr_outliers": count(0),
        "stddev_outliers": count(0),
        "outliers": string,
    },
    # `ops` came in pytest-benchmark 3.1 (it fills it in on load); `data` only with --benchmark-save-data or --benchmark-json.
    optional={"ops": positive_number, "data": list_of(positive_time)},
)


def _stats_agree(stats: dict[str, Any], where: str) -> list[str]:
    """What single fields cannot show: the order of min, median and max, and the sample count."""
    problems = []
    low, middle, high = stats.get("min"), stats.get("median"), stats.get("max")
    if all(_is_finite(v) and v > 0 for v in (low, middle, high)) and not low <= middle <= high:
        problems.append(f"{where}.median: {_shown(middle)} is not between min {_shown(low)} and max {_shown(high)}")
    data, rounds = stats.get("data"), stats.get("rounds")
    if isinstance(data, list) and isinstance(rounds, int) and not isinstance(rounds, bool) and len(data) != rounds:
        problems.append(f"{where}.rounds: {rounds}, but {where}.data holds {len(data)} sample(s)")
    return problems


def stats(value: Any, where: str) -> list[str]:
    problems = _STAT_FIELDS(value, where)
    return problems + _stats_agree(value, where) if isinstance(value, dict) else problems


# sdperf's per-case figures in extra_info, as verdicts against a baseline read them.

_ROUND = fields(optional={
    "wall_s": positive_time,  # schema 1's latency (saved_latencies)
    "step_s": list_of(non_negative_time),  # 0 s: a step whose start was not seen (OpenVINO)
    "worker": count(0),
    **{key: nullable(non_negative_number) for key in ROUND_MEMORY_KEYS},
})

_VERDICTS = fields(optional={
    "baseline": fields(optional={"latency": nullable(fields(required={"outcome": string}))}),
})

_EXTRA_INFO = fields(optional={
    "latencies_s": list_of(positive_time),
    "rounds": list_of(_ROUND),
    "model": string,
    "workload": nullable(any_object),
    "verdicts": _VERDICTS,
})

_BENCHMARK = fields(
    required={
        "name": string,
        "fullname": string,
        "group": nullable(string),
        "param": nullable(string),
        "params": nullable(any_object),
        "stats": stats,
        "extra_info": _EXTRA_INFO,
    },
    optional={"options": any_object},
)

# sdperf's own section and machine_info part, as promotion reads them.

_CASE = fields(
    required={"case_id": string, "kind": string, "status": one_of(tuple(status.value for status in Status))},
    optional={"reason": nullable(string)},
)

_RUN = fields(optional={
    "selected": list_of(string),
    "unfinished": list_of(string),
    "errors": mapping_of(string),
    "collection_errors": count(0),
    "interrupted": boolean,
    "exitstatus": nullable(count(0)),
})

_SDPERF = fields(required={"cases": list_of(_CASE)}, optional={"run": nullable(_RUN), "ab": nullable(any_object)})

_MACHINE_INFO = fields(optional={
    "sdperf": fields(optional={"storage_key": string, "machine_id": string, "packages": nullable(any_object)}),
})

_RUN_DOCUMENT = fields(
    required={"machine_info": _MACHINE_INFO, "datetime": string, "benchmarks": list_of(_BENCHMARK), "sdperf": _SDPERF},
    optional={"version": string, "commit_info": any_object},
)


def run_problems(document: Any) -> list[str]:
    """Every way `document` breaks the schema, each "field.path: what is wrong"; empty when none."""
    return _RUN_DOCUMENT(document, "")
