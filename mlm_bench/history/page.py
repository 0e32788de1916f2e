"""Page: the history as one static HTML file that needs nothing else (no CDN, no script): the releases x checks
table whose cells link to their detail, and with benchmarks one SVG plot each, steps marked."""

from __future__ import annotations

from html import escape

from mlm_bench.history.matrix import Row

STYLE = """body{font:14px system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 6px;font-size:12px}th.check{text-align:left;min-width:240px;max-width:420px;
overflow-wrap:anywhere}td a{color:inherit;text-decoration:none}.pass,.same{background:#e6f4e6}
.fail,.changed{background:#f8d0d0}.known-defect{background:#fbe7c0}.skip,.absent{background:#eee}
.cannot-build{background:#ccc}pre{white-space:pre-wrap;background:#f6f6f6;padding:6px}
figure{display:inline-block;margin:8px}svg text{font-size:10px}"""
WIDTH, HEIGHT, MARGIN = 520, 240, 48


def render(title: str, provenance: list[str], releases: list[str], rows: list[Row], steady: int,
           series: dict[str, list[dict]]) -> str:  # fmt: skip
    """The whole page."""
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>",
             *(f"<p>{escape(line)}</p>" for line in provenance),
             f"<h2>Checks</h2><p>{steady} tests pass on every release that ran; the table holds every other test "
             "and every fingerprint field that changed between neighbours. A cell links to its detail.</p>",
             _table(releases, rows)]  # fmt: skip
    if series:
        parts += ["<h2>Benchmarks</h2><p>Time per call on each release, with its 99% interval over processes; a "
                  "red mark is a step the gate calls slower than the release before, green faster.</p>"]  # fmt: skip
        parts += [_plot(name, points, releases) for name, points in series.items()]
    parts.append(_details(releases, rows))
    return "\n".join(parts) + "\n</body></html>\n"


def _table(releases: list[str], rows: list[Row]) -> str:
    head = "".join(f"<th>{escape(r)}</th>" for r in releases)
    lines = [f"<table id='matrix'><thead><tr><th class='check'>check</th>{head}</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cells = "".join(f"<td class='{c.status.replace(' ', '-')}'><a href='#d-{i}-{j}'>{escape(c.status)}</a></td>"
                        for j, c in enumerate(row.cells))  # fmt: skip
        lines.append(f"<tr class='{row.kind}'><th class='check'>{escape(row.check)}</th>{cells}</tr>")
    return "\n".join(lines) + "</tbody></table>"


def _details(releases: list[str], rows: list[Row]) -> str:
    lines = ["<h2>Details</h2>"]
    for i, row in enumerate(rows):
        for j, cell in enumerate(row.cells):
            lines.append(f"<div id='d-{i}-{j}'><h3>{escape(row.check)} on {escape(releases[j])}: "
                         f"{escape(cell.status)}</h3><pre>{escape(cell.detail) or '-'}</pre></div>")  # fmt: skip
    return "\n".join(lines)


def _plot(name: str, points: list[dict], releases: list[str]) -> str:
    """One benchmark over the releases: its level with the interval as a bar, steps marked."""
    top = max(p["high"] for p in points) * 1.1
    x = {r: MARGIN + i * (WIDTH - 2 * MARGIN) / max(len(releases) - 1, 1) for i, r in enumerate(releases)}

    def y(value: float) -> float:
        return HEIGHT - MARGIN - value / top * (HEIGHT - 2 * MARGIN)

    line = " ".join(f"{x[p['release']]:.1f},{y(p['time']):.1f}" for p in points)
    marks = [f"<polyline points='{line}' fill='none' stroke='#36c' stroke-width='2'/>"]
    for p in points:
        px = x[p["release"]]
        marks.append(f"<line x1='{px:.1f}' x2='{px:.1f}' y1='{y(p['low']):.1f}' y2='{y(p['high']):.1f}' "
                     "stroke='#36c' stroke-width='2'/>")  # fmt: skip
        colour = {"slower": "#c00", "faster": "#090"}.get(p["step"] or "", "#36c")
        radius = 5 if colour != "#36c" else 3
        marks.append(
            f"<circle cx='{px:.1f}' cy='{y(p['time']):.1f}' r='{radius}' fill='{colour}'><title>"
            f"{escape(p['release'])}: {p['time'] * 1e3:.3f} ms ({p['step'] or 'first'})</title></circle>"
        )
    labels = [f"<text x='{x[r]:.1f}' y='{HEIGHT - MARGIN + 12}' transform='rotate(40 {x[r]:.1f} "
              f"{HEIGHT - MARGIN + 12})'>{escape(r)}</text>" for r in releases]  # fmt: skip
    axis = (
        f"<line x1='{MARGIN}' x2='{MARGIN}' y1='{MARGIN}' y2='{HEIGHT - MARGIN}' stroke='#999'/>"
        f"<text x='4' y='{MARGIN - 8}'>{top * 1e3:.2f} ms</text><text x='4' y='{HEIGHT - MARGIN}'>0</text>"
    )
    return (
        f"<figure><figcaption>{escape(name)}</figcaption><svg class='plot' xmlns='http://www.w3.org/2000/svg' "
        f"width='{WIDTH}' height='{HEIGHT + 20}'>{axis}{''.join(marks)}{''.join(labels)}</svg></figure>"
    )
