"""Template filters of Parley's pages."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone

register = template.Library()


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
