"""Gate report: a GateResult as Markdown (one row per benchmark, then learning, fingerprints, defects, tests) and
as PNG plots of loss curves and throughput."""

from __future__ import annotations

import math
from pathlib import Path

from mlm_bench.contract import defects
from mlm_bench.errors import UsageError
from mlm_bench.gate.compare import (
    EXIT_INCONCLUSIVE,
    GateResult,
    QualityChange,
    SpeedChange,
    extra_values,
    format_value,
    natural_key,
    short_name,
    table_cell,
)


def render_markdown(result: GateResult) -> str:
    """The verdict as markdown: one row per benchmark, then the learning, fingerprint and test details."""
    sections = (_speed_section, _learning_section, _fingerprint_section, _defects_section, _tests_section)
    lines = [line for section in sections for line in section(result)]
    lines += ["", "## Verdict", ""]
    lines += [f"- {reason}" for reason in result.regressions] or ["No regression."]
    if result.inconclusive:
        lines.append(
            f"- inconclusive speed (too noisy to call; exit {EXIT_INCONCLUSIVE} with --fail-inconclusive): "
            f"{', '.join(result.inconclusive)}; rerun both environments on a quiet machine, or interleaved"
        )
    return "\n".join(lines) + "\n"


def _speed_section(result: GateResult) -> list[str]:
    """The title, the rules the verdicts follow, and one row per benchmark."""
    th = result.thresholds
    verdict = "REGRESSION" if result.regressions else ("INCONCLUSIVE speed" if result.inconclusive else "no regression")
    lines = [
        f"# Upgrade gate: {verdict}",
        "",
        f"- base: `{result.base.path}` ({result.base.label})",
        f"- new: `{result.new.path}` ({result.new.label})",
        f"- speed: change of the **{th.stat}** time per call, with its {th.confidence:.0%} bootstrap interval "
        f"{_interval_basis(result)}; slower when the interval lies wholly above +{th.slowdown:.0%}, same when "
        f"wholly within ±{th.slowdown:.0%}, inconclusive (too noisy to say) when it straddles the threshold; noise is "
        f"IQR/median; benchmarks with fewer than {th.min_rounds} rounds are shown but not gated",
        f"- learning: losses within relative {th.loss_rtol:g}, context gains within {th.gain_atol:g} nats, other "
        f"metrics within absolute {th.metric_atol:g}, resolved settings exactly",
        "",
        "| benchmark | base s/call | new s/call | change | interval | noise base / new | samples/s (median) "
        "base -> new | speed | learning | verdict |",
        "|---|---:|---:|---:|---|---|---:|---|---|---|",
    ]
    lines += [_speed_row(result, name, change) for name, change in result.speed.items()]
    for title, names in (("Only in base", result.only_base), ("Only in new", result.only_new)):
        if names:
            lines += ["", f"{title} (not compared): " + ", ".join(short_name(n) for n in names)]
    return lines


def _interval_basis(result: GateResult) -> str:
    """What the speed intervals are over, said plainly where one process per side leaves process noise out."""
    counts = {change.processes for change in result.speed.values()}
    if counts and min(counts) >= 2:
        return f"over {min(counts)}+ processes per side (processes resampled, then rounds within each)"
    return (
        "over the rounds of one process per side, which leaves out the noise between processes (warm-up, page "
        "cache, CPU frequency): two sequential runs of one environment can read as a change. Gate a folder of "
        "several processes' files per side, run alternately (`mlm-bench upgrade` does)"
    )


def _speed_row(result: GateResult, name: str, s: SpeedChange) -> str:
    changed = result.learning_changes(name)
    compared = [q for q in result.quality if q.benchmark == name]
    learning = (
        f"CHANGED ({len(changed)}/{len(compared)})" if changed else (f"same ({len(compared)})" if compared else "-")
    )
    row_verdict = "REGRESSION" if s.verdict == "slower" or changed else s.verdict if s.verdict != "same" else "ok"
    throughput = (
        f"{s.base_throughput:.4g} -> {s.new_throughput:.4g}"
        if s.base_throughput is not None and s.new_throughput is not None
        else "-"
    )
    interval = "-" if math.isnan(s.low) else f"{s.low:+.1%} to {s.high:+.1%}"
    return (
        f"| {short_name(name)} | {s.base:.4g} | {s.new:.4g} | {s.change:+.1%} | {interval} | "
        f"{s.base_noise:.0%} / {s.new_noise:.0%} | {throughput} | {s.verdict} | {learning} | {row_verdict} |"
    )


def _learning_section(result: GateResult) -> list[str]:
    return ["", "## Learning", "", *learning_table(result.quality)] if result.quality else []


def learning_table(quality: list[QualityChange]) -> list[str]:
    """Each loss or metric of both sides as a Markdown table row, with its change and tolerance."""
    lines = ["| benchmark | value | base | new | change | tolerance | |", "|---|---|---:|---:|---:|---|---|"]
    for q in quality:
        numeric = isinstance(q.base, (int, float)) and isinstance(q.new, (int, float))
        delta = f"{q.new - q.base:+.4g}" if numeric else "-"
        flag = "CHANGED" if q.changed else "same"
        cells = [short_name(q.benchmark), q.key, format_value(q.base), format_value(q.new), delta, q.tolerance, flag]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_runs(quality: list[QualityChange], base: Path, new: Path) -> str:
    """Two runs' results.json compared, as Markdown: the headline, then every figure."""
    changed = [q.key for q in quality if q.changed]
    headline = f"CHANGED: {', '.join(changed)}" if changed else "same within tolerance in every figure"
    return "\n".join([f"# Runs: {headline}", "", f"base: `{base}`; new: `{new}`", "", *learning_table(quality)]) + "\n"


def _fingerprint_section(result: GateResult) -> list[str]:
    lines = ["", "## Fingerprints", ""]
    if result.fingerprints is None:
        return [*lines, "Not compared: pass `--fingerprints BASE.json NEW.json` (or store them in extra_info)."]
    if not result.fingerprints:
        return [*lines, "Identical."]
    lines += ["| key | base | new | |", "|---|---|---|---|"]
    return lines + [
        f"| {d.key} | {table_cell(d.base)} | {table_cell(d.new)} | {'accepted' if d.accepted else 'NOT ACCEPTED'} |"
        for d in result.fingerprints
    ]


def _defects_section(result: GateResult) -> list[str]:
    lines = ["", "## Known upstream defects", ""]
    for side, run in (("base", result.base), ("new", result.new)):
        found = defects.active(run.versions) if run.versions else []
        named = "; ".join(f"{d.key} ({d.upstream}): {d.breaks}" for d in found)
        lines.append(f"- {side}: {named or 'none registered for these versions'}")
    return lines


def _tests_section(result: GateResult) -> list[str]:
    lines = ["", "## Contract tests", ""]
    if not result.tests and result.tests_exit_code is None:
        lines.append("Not given: pass `--junit BASE.xml NEW.xml` or `--tests-exit-code N`.")
    for side, t in result.tests:
        state = "passed" if t.passed else "FAILED"
        lines.append(
            f"- {side}: {state}: {t.tests} tests, {t.failures} failures, {t.errors} errors, {t.skipped} skipped "
            f"(`{t.source}`)"
        )
    if result.tests_exit_code is not None:
        lines.append(f"- new: pytest exit code {result.tests_exit_code}")
    return lines


def write_report(result: GateResult, directory: Path) -> list[Path]:
    """report.md plus throughput.png and loss_curves.png (matplotlib, the `gate` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError as err:
        raise UsageError(
            "--report draws plots with matplotlib, which is not installed: pip install 'mlm-bench[gate]'"
        ) from err
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / "report.md"]
    written[0].write_text(render_markdown(result), encoding="utf-8")
    labels = (f"base: {result.base.label}", f"new: {result.new.label}")

    names = list(result.speed)
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(names) + 1.5))
    ys = range(len(names))
    for offset, side, label in ((-0.2, "base", labels[0]), (0.2, "new", labels[1])):
        values = [_throughput(result, name, side) for name in names]
        ax.barh([y + offset for y in ys], values, height=0.4, label=label)
    ax.set_yticks(list(ys), [short_name(n) for n in names])
    ax.set_xscale("log")
    ax.set_xlabel(f"samples/s at the {result.thresholds.stat} time per call (log scale)")
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    written.append(directory / "throughput.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    with_losses = [n for n in names if extra_values(result.base.benchmarks[n].get("extra_info", {}), "losses")]
    if with_losses:
        fig, axes = plt.subplots(1, len(with_losses), figsize=(4.5 * len(with_losses), 3.5), squeeze=False)
        for ax, name in zip(axes[0], with_losses, strict=True):
            for run, label, style in ((result.base, labels[0], "o-"), (result.new, labels[1], "x--")):
                losses = extra_values(run.benchmarks[name].get("extra_info", {}), "losses")
                keys = sorted(losses, key=natural_key)
                steps = [natural_key(k)[0] for k in keys]
                ax.plot(steps, [losses[k] for k in keys], style, label=label)
            ax.set_title(short_name(name), fontsize=9)
            ax.set_xlabel("step")
            ax.set_ylabel("train loss")
            ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(directory / "loss_curves.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


def _throughput(result: GateResult, name: str, side: str) -> float:
    run = result.base if side == "base" else result.new
    bench = run.benchmarks[name]
    samples = bench.get("extra_info", {}).get("samples_per_call", 1)
    return samples / bench["stats"][result.thresholds.stat]
