"""Verdict: what an upgrade changes for the user, from both sides' outcomes, and the one thing to do about it.

The headline says what to do: upgrade; upgrade but review X (a reviewed fingerprint change, a new warning, a
significant speed change within the threshold); cannot tell yet (too noisy: rerun with more processes); or do not
upgrade because of Y (a newly failing test, an unreviewed fingerprint change, a slowdown, a learning change, a
stage that failed). Exit codes are the gate's: 0 no regression, 1 regression, 3 inconclusive with
--fail-inconclusive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mlm_bench.gate.compare import (
    EXIT_INCONCLUSIVE,
    EXIT_OK,
    EXIT_REGRESSION,
    FingerprintDiff,
    GateResult,
    QualityChange,
    format_value,
    short_name,
)
from mlm_bench.upgrade.outcomes import Outcomes

NOT_APPLICABLE = "self-test not applicable"


@dataclass(frozen=True)
class Contract:
    """Both sides' contract tests, test by test."""

    base: Outcomes
    candidate: Outcomes

    @property
    def newly_failing(self) -> list[str]:
        return [t for t in self.candidate.status if _failed(self.candidate, t) and not _failed(self.base, t)]

    @property
    def newly_passing(self) -> list[str]:
        return [t for t in self.candidate.status if _failed(self.base, t) and self.candidate.status[t] == "passed"]

    @property
    def newly_skipped(self) -> list[str]:
        return [t for t in self.candidate.status if self.candidate.status[t] == "skipped" and self.base.status.get(t)
                == "passed"]  # fmt: skip

    @property
    def missing(self) -> list[str]:
        """Tests the base ran that the candidate did not collect."""
        return [t for t in self.base.status if t not in self.candidate.status]

    @property
    def failing_on_both(self) -> list[str]:
        return [t for t in self.candidate.status if _failed(self.candidate, t) and _failed(self.base, t)]

    def known_defects(self, side: str) -> dict[str, str]:
        """The side's expected failures (known upstream defects) and their reasons."""
        outcomes = getattr(self, side)
        return {t: outcomes.reasons.get(t, "") for t in outcomes.named("xfailed")}

    def not_applicable(self, side: str) -> dict[str, str]:
        """The side's tests of tests whose breaker never reached the code, and why."""
        outcomes = getattr(self, side)
        return {t: r for t, r in outcomes.reasons.items() if r.startswith(NOT_APPLICABLE)}


@dataclass(frozen=True)
class YourSetup:
    """The user's own model on both sides: its contract tests, what its short run learned on each, and each
    artifact that crossed between them (contract.crossing.Crossed as dicts, the results.json reads among them)."""

    contract: Contract | None
    learning: list[QualityChange] | None
    crossings: list[dict]

    @property
    def regressions(self) -> list[str]:
        found = [f"your setup: newly failing test: {t}" for t in (self.contract.newly_failing if self.contract else [])]
        return found + [f"your setup: {_crossed(c)}" for c in self.crossings if c["status"] == "broken"]

    @property
    def review(self) -> list[str]:
        found = [f"your setup: failing on both sides: {t}" for t in (self.contract.failing_on_both
                                                                     if self.contract else [])]  # fmt: skip
        found += [f"your run: {q.key} {format_value(q.base)} -> {format_value(q.new)} ({q.tolerance})"
                  for q in self.learning or [] if q.changed]  # fmt: skip
        return found + [f"your setup: {_crossed(c)}" for c in self.crossings if c["status"] in ("refused", "differs")]


def _crossed(crossing: dict) -> str:
    """One artifact's crossing in words: what, which way, how it ended, and the registry's name for it."""
    known = f" [known: {crossing['known']}]" if crossing.get("known") else ""
    return (
        f"{crossing['path']} written by transformers {crossing['writer']}, read by {crossing['reader']}: "
        f"{crossing['status']}: {crossing['detail']}{known}"
    )


def _failed(outcomes: Outcomes, test: str) -> bool:
    return outcomes.status.get(test) in ("failed", "error")


@dataclass(frozen=True)
class Upgrade:
    """Everything the verdict rests on; any part a stage did not produce is None."""

    contract: Contract | None
    fingerprint: list[FingerprintDiff] | None
    gate: GateResult | None
    new_warnings: list[str] = field(default_factory=list)
    stage_failures: list[str] = field(default_factory=list)  # the candidate's: reasons not to upgrade
    processes: int = 0
    base_failures: list[str] = field(default_factory=list)  # the base's: nothing to compare against
    setup: YourSetup | None = None  # with --model: the user's own setup

    @property
    def regressions(self) -> list[str]:
        """One line per reason not to upgrade."""
        found = list(self.stage_failures) + (self.setup.regressions if self.setup else [])
        if self.contract:
            found += [f"newly failing test: {t}" for t in self.contract.newly_failing]
        found += [f"fingerprint {d.key} changed and no reviewed entry accepts it" for d in self.fingerprint or []
                  if not d.accepted]  # fmt: skip
        if self.gate:
            found += self.gate.benchmark_regressions
        return found

    @property
    def review(self) -> list[str]:
        """What changed without failing anything: worth a look before upgrading."""
        found = [f"fingerprint {d.key} changed (a reviewed change, accepted)" for d in self.fingerprint or []
                 if d.accepted]  # fmt: skip
        found += [f"new warning: {w}" for w in self.new_warnings]
        found += self.setup.review if self.setup else []
        if self.contract:
            found += [f"newly passing test: {t}" for t in self.contract.newly_passing]
            applicable = self.contract.not_applicable("candidate")
            found += [f"self-test no longer applicable (its breaker is not reached): {t}" if t in applicable else
                      f"newly skipped test: {t}" for t in self.contract.newly_skipped]  # fmt: skip
            found += [f"test not collected on the candidate: {t}" for t in self.contract.missing]
            found += [f"failing on both sides (the base was not green): {t}" for t in self.contract.failing_on_both]
        if self.gate:
            found += [_within(name, change) for name, change in self.gate.speed.items() if _significant(change)]
            found += [f"{short_name(name)}: {change.change:+.1%} [{change.low:+.1%}, {change.high:+.1%}], faster"
                      for name, change in self.gate.speed.items() if change.verdict == "faster"]  # fmt: skip
        return found

    @property
    def inconclusive(self) -> list[str]:
        """What the run cannot tell: speeds too noisy to call, and stages the base could not run."""
        noisy = self.gate.inconclusive if self.gate else []
        return [*noisy, *(f"cannot compare, {failure}" for failure in self.base_failures)]

    def exit_code(self, fail_inconclusive: bool) -> int:
        if self.regressions:
            return EXIT_REGRESSION
        return EXIT_INCONCLUSIVE if self.inconclusive and fail_inconclusive else EXIT_OK

    def headline(self) -> str:
        """What to do, in one line."""
        if self.regressions:
            return f"Do not upgrade: {self.regressions[0]}" + _more(self.regressions)
        if self.base_failures:
            return f"Cannot tell: {self.inconclusive[-len(self.base_failures)]}" + _more(self.base_failures)
        if self.inconclusive:
            again = max(2 * self.processes, 4)
            return (f"Cannot tell yet: the speed of {', '.join(self.inconclusive)} is too noisy to call; rerun with "
                    f"--processes {again} on a quiet machine")  # fmt: skip
        if self.review:
            return f"Upgrade, but review: {self.review[0]}" + _more(self.review)
        return "Upgrade: nothing changed beyond the thresholds, and nothing new to review."


def _more(items: list[str]) -> str:
    return f" (and {len(items) - 1} more below)" if len(items) > 1 else ""


def _significant(change) -> bool:
    """A speed change the interval calls real but within the threshold."""
    return change.verdict == "same" and not math.isnan(change.low) and (change.low > 0 or change.high < 0)


def _within(name: str, change) -> str:
    return (f"{short_name(name)}: {change.change:+.1%} [{change.low:+.1%}, {change.high:+.1%}], within "
            f"±{change.threshold:.0%}")  # fmt: skip
