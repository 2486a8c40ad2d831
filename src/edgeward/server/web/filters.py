"""A dashboard page's filters, from its query string."""

from __future__ import annotations

import re

from fastapi import Request


def query_filters(request: Request, patterns: dict[str, re.Pattern[str]], shown: str
                  ) -> tuple[dict[str, str], str | None]:
    """The filters that match their pattern; an invalid one is named and all are dropped
    (the page then shows all ``shown``)."""
    chosen: dict[str, str] = {}
    for name, pattern in patterns.items():
        value = request.query_params.get(name, "").strip()
        if not value:
            continue
        if not pattern.match(value):
            return {}, f"filter {name}={value[:64]!r} is not valid: showing all {shown}"
        chosen[name] = value
    return chosen, None
