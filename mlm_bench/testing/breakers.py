"""Breakers: what a test of a test plants to break the code a check guards, and whether it reached that code.

A test of a test takes the `breakers` fixture and plants each breaker through it, which counts the calls: a fault of
the registry (`breakers.plant_fault(fault, *params)`, mlm_bench.testing.faults, where every breaker the suite plants
is defined once), or any replacement (`breakers.plant(owner, name, replacement)`). A breaker never called broke
nothing: the library no longer takes that path (accelerate 1.16 clips without `torch.nn.utils.clip_grad_norm_`), so
its test reports itself skipped, "self-test not applicable on <versions>: <breaker> never called", where its
assertions failed or it passed on nothing; an error of any other kind stays a failure. A breaker planted
`required=True` is the one its check must keep on every version set (public, version-stable code, or our own): never
called, it fails the test instead; a fault says whether it is required. The faults live in mlm_bench.testing.faults,
not here: it is no plugin, so the regression battery's sitecustomize can import them at interpreter start.

A pytest plugin, loaded with the others by mlm-bench's entry point (mlm_bench.testing.plugin).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the plugin loads in every pytest run of the environment: torch waits for a self-test
    from mlm_bench.testing.faults import Fault


class Breakers:
    """The breakers one test planted, and how often each was called."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self.calls: dict[str, int] = {}
        self.required: set[str] = set()

    def plant(self, owner: Any, name: str, replacement: Callable[..., Any], required: bool = False) -> None:
        """Replace `owner.name` with `replacement` for this test, counting its calls under `Owner.name`."""
        label = f"{getattr(owner, '__qualname__', getattr(owner, '__name__', owner))}.{name}"
        self.calls[label] = 0
        if required:
            self.required.add(label)

        @functools.wraps(replacement)
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[label] += 1
            return replacement(*args, **kwargs)

        self._monkeypatch.setattr(owner, name, counted)

    def plant_fault(self, fault: Fault, *params: Any) -> None:
        """Plant `fault` of the registry (made with `params`) for this test, required if the fault is."""
        owner, name = fault.target()
        self.plant(owner, name, fault.make(getattr(owner, name), *params), required=fault.required)

    def unreached(self) -> list[str]:
        """The breakers planted but never called."""
        return [label for label, calls in self.calls.items() if not calls]


def version_set() -> str:
    """The full version set a self-test ran on, as its skip reason names it."""
    from mlm_bench.runs.results import versions

    return ", ".join(f"{name} {version}" for name, version in versions().items())


@pytest.fixture
def breakers(monkeypatch: pytest.MonkeyPatch) -> Breakers:
    """Plants a test of a test's breakers and counts their calls (see the module docstring)."""
    return Breakers(monkeypatch)


# What a self-test whose breaker broke nothing ends with: its check passing (pytest.raises' "DID NOT RAISE" is a
# pytest.fail) or an assertion about the breakage failing. Any other exception is an error to see whole.
NOTHING_BROKEN = (AssertionError, pytest.fail.Exception)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator[None, Any, Any]:
    """A test of a test whose breaker was never called is reported skipped (failed if the breaker was required),
    naming the breaker and the versions."""
    report = yield
    planted = getattr(item, "funcargs", {}).get("breakers")
    never = planted.unreached() if call.when == "call" and isinstance(planted, Breakers) else []
    if not never:
        return report
    if planted.required.intersection(never):
        report.outcome = "failed"
        report.longrepr = (
            f"required breaker never called on {version_set()}: {', '.join(never)}: this check has lost it"
        )
    elif call.excinfo is None or call.excinfo.errisinstance(NOTHING_BROKEN):
        report.outcome = "skipped"
        reason = f"self-test not applicable on {version_set()}: {', '.join(never)} never called"
        report.longrepr = (str(item.path), item.location[1] + 1, f"Skipped: {reason}")
    if hasattr(report, "wasxfail"):
        del report.wasxfail
    return report
