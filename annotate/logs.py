"""Logging: one line per event, and no traceback for the refusals a web app makes every day."""

from __future__ import annotations

import logging


class ExpectedRefusals(logging.Filter):
    """Drop the traceback of a logged 4xx answer (403 permission denied, 404, a bad request):
    the one-line message says all there is; 5xx keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if status is not None and 400 <= int(status) < 500:
            record.exc_info = None
            record.exc_text = None
        return True
