"""The smallest set of changes that reproduces a regression, by A/B runs of subsets.

`trial(subset)` answers whether BASE plus `subset` regresses against BASE (one A/B run).
HEAD, all of them, is known to regress. The search halves: a half that regresses alone
holds the culprit; when neither half does, both hold part of it (two changes that only
slow things down together), and each half is narrowed with the other applied: Zeller's
delta debugging, which is plain bisection when one change is to blame. One culprit among
n changes takes at most 2*ceil(log2(n)) trials, and the answer is one that was itself seen
to regress (one more trial when the narrowing never ran it alone), or is said to be unconfirmed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Unit = TypeVar("Unit")


@dataclass(frozen=True)
class Outcome(Generic[Unit]):
    culprit: list[Unit]  # the narrowest set found
    confirmed: bool  # it was seen to regress alone (False: noise misled the search; say so)
    trials: int


class _Trials(Generic[Unit]):
    """Each subset tried once; answers remembered, keyed by the set, in trial order."""

    def __init__(self, units: Sequence[Unit], trial: Callable[[list[Unit]], bool]):
        self.order = {id(unit): index for index, unit in enumerate(units)}
        self.trial = trial
        self.seen: dict[frozenset[int], bool] = {}

    def __call__(self, subset: list[Unit]) -> bool:
        key = frozenset(id(unit) for unit in subset)
        if key not in self.seen:
            self.seen[key] = self.trial(sorted(subset, key=lambda unit: self.order[id(unit)]))
        return self.seen[key]


def _narrow(units: list[Unit], fixed: list[Unit], reproduces: _Trials[Unit]) -> list[Unit]:
    """The smallest part of `units` that regresses together with `fixed` (fixed + units does)."""
    if len(units) <= 1:
        return units
    middle = len(units) // 2
    first, second = units[:middle], units[middle:]
    if reproduces(fixed + first):
        return _narrow(first, fixed, reproduces)
    if reproduces(fixed + second):
        return _narrow(second, fixed, reproduces)
    # Each half needs something from the other.
    from_first = _narrow(first, fixed + second, reproduces)
    return from_first + _narrow(second, fixed + from_first, reproduces)


def find_culprit(units: Sequence[Unit], trial: Callable[[list[Unit]], bool]) -> Outcome[Unit]:
    """Narrow `units` (all of which together regress) to the smallest set that regresses alone."""
    reproduces = _Trials(units, trial)
    culprit = _narrow(list(units), [], reproduces)
    # Seen to regress alone: cached when the search ran it, which it does for one culprit. All of
    # HEAD (no smaller set regressed) is run once more: HEAD's own A/B may have been a false alarm.
    confirmed = reproduces(culprit) if culprit else False
    return Outcome(culprit, confirmed, len(reproduces.seen))
