"""Template filters of Parley's pages."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

register = template.Library()

# CommonMark with raw HTML turned off: a guideline's "<script>" is shown as text, and
# markdown-it refuses javascript:, vbscript: and file: links (and data: but for images).
_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")


@register.filter
def markdown(text: str) -> SafeString:
    """Markdown (a task's guidelines) as HTML, safe to show: no raw HTML passes."""
    html: str = _markdown.render(text or "")
    return mark_safe(html)  # noqa: S308 - raw HTML is off above


def duration_text(seconds: float) -> str:
    """A duration as people say it: "42 s", "3 min 20 s", "1 h 05 min"."""
    seconds = max(int(round(seconds)), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@register.filter
def elapsed(start: datetime | None, end: datetime | None = None) -> str:
    """The time from `start` to `end` (default: now), to the second."""
    if start is None:
        return ""
    return duration_text(((end or timezone.now()) - start).total_seconds())


@register.filter
def duration(seconds: float | None) -> str:
    """Seconds as `duration_text`; empty for None."""
    return "" if seconds is None else duration_text(seconds)


COLOURS = ("blue", "orange", "green", "pink", "sky", "vermilion", "yellow", "grey")
"""The palette's names, in the order of app.css's --label-0 … --label-7."""


@register.filter
def colour(label: object) -> int:
    """The colour slot (0–7, app.css) of a label: the one chosen, else its place."""
    chosen = getattr(label, "colour", None)
    if chosen is not None:
        return int(chosen) % len(COLOURS)
    return int(getattr(label, "order", 0) or 0) % len(COLOURS)
