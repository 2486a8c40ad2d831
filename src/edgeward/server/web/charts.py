"""Telemetry charts for the dashboard, drawn on the server as inline SVG (the page's
content security policy allows no script): a gateway's CPU, memory and network over
time, each app's CPU beside the gateway's, the band between each bucket's low and high
under its mean, and the open alerts marked where they were raised. Pure geometry:
series in, coordinates out; the template only places them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import distinct, select
from sqlalchemy.orm import Session

from edgeward.server.db.models import Alert, Gateway
from edgeward.server.db.monitoring import MetricPoint
from edgeward.server.services import metricstore
from edgeward.server.services.registry import aware

PLOT = {"left": 56, "top": 10, "width": 640, "height": 120}
WINDOW = dt.timedelta(hours=6)
POINTS = 180
COLOURS = ("#1f6feb", "#bf5700", "#8250df", "#0e7490", "#9a6700", "#57606a")
PANELS = (("cpu_percent", "CPU (%)", 100.0), ("memory_percent", "Memory (%)", 100.0),
          ("net_tx_rate", "Network sent (bytes/s)", None),
          ("net_rx_rate", "Network received (bytes/s)", None))


def _at(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def _label(value: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"


def panel(title: str, series: list[tuple[str, list[dict[str, Any]]]], since: dt.datetime,
          now: dt.datetime, ceiling: float | None, marks: list[tuple[dt.datetime, str]]
          ) -> dict[str, Any]:
    """One chart: ``series`` as (name, points with at/mean/low/high) lines."""
    left, top, width, height = (PLOT[k] for k in ("left", "top", "width", "height"))
    start, span = since.timestamp(), max(1.0, (now - since).total_seconds())
    peak = max((p["high"] for _, points in series for p in points), default=0.0)
    top_value = ceiling if ceiling is not None and peak <= ceiling else max(peak * 1.1, 1.0)

    def x(at: float) -> float:
        return round(left + width * min(max((at - start) / span, 0.0), 1.0), 1)

    def y(value: float) -> float:
        return round(top + height * (1 - min(max(value / top_value, 0.0), 1.0)), 1)

    lines = []
    for index, (name, points) in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        mean = " ".join(f"{x(_at(p['at']))},{y(p['mean'])}" for p in points)
        band = " ".join([f"{x(_at(p['at']))},{y(p['high'])}" for p in points] +
                        [f"{x(_at(p['at']))},{y(p['low'])}" for p in reversed(points)])
        last = points[-1]["mean"] if points else None
        lines.append({"name": name, "colour": colour, "mean": mean, "band": band,
                      "last": _label(last) if last is not None else "-"})
    return {"title": title, "lines": lines, "plot": PLOT,
            "ticks": [{"y": y(v), "label": _label(v)} for v in (0.0, top_value / 2, top_value)],
            "times": [{"x": x(start + span * f), "anchor": anchor,
                       "label": dt.datetime.fromtimestamp(start + span * f, dt.UTC).strftime(
                           "%H:%M" if span <= 86400 else "%m-%d %H:%M")}
                      for f, anchor in ((0.0, "start"), (0.5, "middle"), (1.0, "end"))],
            "marks": [{"x": x(at.timestamp()), "label": label} for at, label in marks
                      if at >= since],
            "empty": not any(points for _, points in series)}


def for_gateway(session: Session, gateway: Gateway, now: dt.datetime,
                window: dt.timedelta = WINDOW) -> list[dict[str, Any]]:
    """The panels of a gateway the caller found and may read, over the last ``window``."""
    since = now - window
    apps = sorted(a for (a,) in session.execute(select(distinct(MetricPoint.app)).where(
        MetricPoint.gateway_id == gateway.id, MetricPoint.at >= since,
        MetricPoint.app != "")).all())
    marks = [(aware(a.at), f"{a.kind}{' (' + a.app + ')' if a.app else ''}")
             for a in session.execute(select(Alert).where(
                 Alert.gateway_id == gateway.id, Alert.at >= since,
                 Alert.status != "resolved")).scalars()]
    panels = []
    for metric, title, ceiling in PANELS:
        series = [("gateway", metricstore.series_of(session, gateway, metric, "", since, now,
                                                    POINTS)["points"])]
        if metric == "cpu_percent":  # each app's, in % of one CPU
            series += [(f"app {app}", metricstore.series_of(
                session, gateway, metric, app, since, now, POINTS)["points"])
                for app in apps[:len(COLOURS) - 1]]
        panels.append(panel(title, series, since, now, ceiling, marks))
    return panels
