"""Search: which releases to probe to find the first one whose result differs from the good release's, as git
bisect does with its old and new terms, so a breakage and a fix are found alike.

Pure: releases in order and a probe that gives each one's result (None when it cannot be installed or imported,
which is skipped as `git bisect skip` does). About log2(n) probes, then the boundary's outer neighbours, so a
result that flips back right beside it is seen.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from mlm_bench.errors import UsageError


@dataclass(frozen=True)
class Probe:
    """One release's result of the check (None: skipped), how long it took, and what to say about it."""

    release: str
    result: str | None
    seconds: float = 0.0
    note: str = ""


@dataclass(frozen=True)
class Answer:
    """The boundary: the last release like --good and the first that differs, or the releases it may be among when
    skips leave it open, with every probe made and any result out of order."""

    releases: list[str]
    good: str
    probes: dict[str, Probe] = field(default_factory=dict)
    last_old: str | None = None
    first_new: str | None = None
    candidates: list[str] = field(default_factory=list)  # when open: the first changed release is one of these
    out_of_order: list[str] = field(default_factory=list)  # probed releases whose result breaks monotonicity

    @property
    def found(self) -> bool:
        return not self.candidates

    def is_old(self, release: str) -> bool:
        """Whether a probed release gives --good's result."""
        return self.probes[release].result == self.good


def expected_probes(count: int) -> int:
    """How many probes a bisect of `count` releases makes when none is skipped: both ends, the halvings between
    them, and the boundary's two outer neighbours."""
    return min(count, 4 + math.ceil(math.log2(max(count - 1, 1))))


def bisect(releases: list[str], probe: Callable[[str], Probe]) -> Answer:
    """Probe the ends, halve the range between the last old and the first new release (stepping past skipped
    ones), then probe the boundary's outer neighbours; the Answer."""
    if len(releases) < 2:
        raise UsageError(f"nothing to bisect: {len(releases)} release between --good and --bad; widen the range")
    probes = {r: probe(r) for r in (releases[0], releases[-1])}
    good, bad = probes[releases[0]].result, probes[releases[-1]].result
    for end, result in ((releases[0], good), (releases[-1], bad)):
        if result is None:
            raise UsageError(f"{end} cannot be probed ({probes[end].note}): pass an end that installs and imports")
    if good == bad:
        raise UsageError(f"{releases[0]} and {releases[-1]} give the same result ({good}): nothing changed between "
                         "them for this check; pick ends that differ")  # fmt: skip
    low, high = 0, len(releases) - 1
    while (index := _next(low, high, releases, probes)) is not None:
        probes[releases[index]] = probe(releases[index])
        result = probes[releases[index]].result
        if result is not None:
            low, high = (index, high) if result == good else (low, index)
    for index in (low - 1, high + 1):  # the outer neighbours: a flip back beside the boundary shows there
        if 0 <= index < len(releases) and releases[index] not in probes:
            probes[releases[index]] = probe(releases[index])
    return _answer(releases, good, probes, low, high)


def _next(low: int, high: int, releases: list[str], probes: dict[str, Probe]) -> int | None:
    """The unprobed release nearest the middle of (low, high), or None when every one between is probed."""
    middle = (low + high) / 2
    left = [i for i in range(low + 1, high) if releases[i] not in probes]
    return min(left, key=lambda i: (abs(i - middle), i)) if left else None


def _answer(releases: list[str], good: str, probes: dict[str, Probe], low: int, high: int) -> Answer:
    """The boundary found between releases[low] (old) and releases[high] (new), with what skips left open and the
    probes whose result is out of order."""
    position = {r: i for i, r in enumerate(releases)}
    out_of_order = [r for r, p in probes.items() if p.result is not None and (
        (position[r] < low and p.result != good) or (position[r] > high and p.result == good))]  # fmt: skip
    between = releases[low + 1 : high + 1]
    ordered = dict(sorted(probes.items(), key=lambda item: position[item[0]]))
    if high - low > 1:  # every release between was skipped
        return Answer(releases, good, ordered, releases[low], None, between, sorted(out_of_order, key=position.get))
    return Answer(releases, good, ordered, releases[low], releases[high], [], sorted(out_of_order, key=position.get))
