"""Server-side SVG charts for the dashboards.

Why SVG from the server rather than a charting library: the figures are few and simple (lines,
bars, a reliability diagram), they then need no JavaScript, no CDN and no build step, render
in the no-script case and in print, stay accessible (a <title> and a role on each chart, and
every chart has a table of the same numbers beside it), and tests can read them.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT, PAD = 420, 200, 32
COLOURS = ("#0b5cad", "#b35900", "#1a6b32", "#7a3e9d")


def _frame(
    title: str, body: str, x_labels: Sequence[str], y_max: float, y_format: str
) -> SafeString:
    ticks = []
    for k in range(5):
        value = y_max * k / 4
        y = HEIGHT - PAD - (HEIGHT - 2 * PAD) * k / 4
        ticks.append(
            f'<line x1="{PAD}" y1="{y:.1f}" x2="{WIDTH - 8}" y2="{y:.1f}" stroke="#d0d7de"/>'
            f'<text x="{PAD - 4}" y="{y + 4:.1f}" text-anchor="end">{format(value, y_format)}</text>'
        )
    step = (WIDTH - PAD - 16) / max(len(x_labels), 1)
    every = max(1, len(x_labels) // 8)
    xs = "".join(
        f'<text x="{PAD + step * (i + 0.5):.1f}" y="{HEIGHT - 10}" text-anchor="middle">{escape(label)}</text>'
        for i, label in enumerate(x_labels)
        if i % every == 0
    )
    return mark_safe(  # noqa: S308 - every interpolated text is escaped above
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'font-size="10" font-family="system-ui, sans-serif"><title>{escape(title)}</title>'
        f"{''.join(ticks)}{xs}{body}</svg>"
    )


def line_chart(
    title: str,
    x_labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    y_max: float = 1.0,
    y_format: str = ".0%",
    empty: str = "No data yet.",
) -> SafeString:
    """One polyline per series over the x labels (None values leave a gap); with no value at
    all, the frame says `empty` instead of standing blank."""
    if not any(v is not None for values in series.values() for v in values):
        note = (
            f'<text x="{WIDTH / 2:.0f}" y="{HEIGHT / 2:.0f}" text-anchor="middle" '
            f'class="empty">{escape(empty)}</text>'
        )
        return _frame(title, note, x_labels, y_max, y_format)
    step = (WIDTH - PAD - 16) / max(len(x_labels), 1)
    body = []
    for colour, (name, values) in zip(COLOURS, series.items(), strict=False):
        points = [
            f"{PAD + step * (i + 0.5):.1f},{HEIGHT - PAD - (HEIGHT - 2 * PAD) * (v / y_max if y_max else 0):.1f}"
            for i, v in enumerate(values)
            if v is not None
        ]
        body.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(points)}">'
            f"<title>{escape(name)}</title></polyline>"
        )
        body.extend(
            f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="3" fill="{colour}"/>'
            for p in points
        )
    legend = "".join(
        f'<text x="{PAD + 90 * i}" y="12" fill="{colour}">■ {escape(name)}</text>'
        for i, (colour, name) in enumerate(zip(COLOURS, series, strict=False))
    )
    return _frame(title, "".join(body) + legend, x_labels, y_max, y_format)


def bar_chart(
    title: str,
    x_labels: Sequence[str],
    values: Sequence[float],
    *,
    y_format: str = ".0f",
) -> SafeString:
    """Vertical bars, one per x label."""
    y_max = max([*values, 1e-9])
    step = (WIDTH - PAD - 16) / max(len(x_labels), 1)
    body = "".join(
        f'<rect x="{PAD + step * i + step * 0.15:.1f}" y="{HEIGHT - PAD - (HEIGHT - 2 * PAD) * v / y_max:.1f}" '
        f'width="{step * 0.7:.1f}" height="{(HEIGHT - 2 * PAD) * v / y_max:.1f}" fill="{COLOURS[0]}">'
        f"<title>{escape(label)}: {format(v, y_format)}</title></rect>"
        for i, (label, v) in enumerate(zip(x_labels, values, strict=True))
    )
    return _frame(title, body, x_labels, y_max, y_format)


def reliability_diagram(
    title: str, bins: Sequence[dict[str, float]], n_bins: int = 10
) -> SafeString:
    """Observed accuracy per trust bin (bars) against the diagonal of perfect calibration."""
    size = HEIGHT - 2 * PAD
    step = (WIDTH - PAD - 16) / n_bins
    diagonal = (
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{PAD + step * n_bins:.1f}" y2="{PAD}" '
        f'stroke="#57606a" stroke-dasharray="4 3"><title>perfect calibration</title></line>'
    )
    bars = "".join(
        f'<rect x="{PAD + step * b["bin"] + 2:.1f}" y="{HEIGHT - PAD - size * b["accuracy"]:.1f}" '
        f'width="{step - 4:.1f}" height="{size * b["accuracy"]:.1f}" fill="{COLOURS[0]}" fill-opacity="0.8">'
        f"<title>trust {b['low']:.1f}–{b['high']:.1f}: {b['accuracy']:.0%} right of {int(b['n'])}</title></rect>"
        for b in bins
    )
    labels = [f"{k / n_bins:.1f}" for k in range(n_bins)]
    return _frame(title, bars + diagonal, labels, 1.0, ".0%")
