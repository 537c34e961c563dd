"""Inline SVG world map and timeline (no CDN, no script, no network).

The map is an equirectangular sketch (coarse land outlines) with one bubble per country at
its approximate centre, area proportional to the number of flagged sessions and coloured by
the worst severity seen there. Presentation attributes only (no ``style=``), so pages with a
strict Content-Security-Policy render it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cache
from html import escape

from agent.export.worldmap_shapes import LAND
from agent.history.geo import load_centroids
from agent.models import Severity

__all__ = ["SEVERITY_COLOURS", "country_centre", "render_timeline", "render_world_map"]

_TOP, _BOTTOM = 85.0, -60.0
_HEIGHT = _TOP - _BOTTOM
SEVERITY_COLOURS = {
    Severity.CRITICAL.value: "#b3001b",
    Severity.HIGH.value: "#e4572e",
    Severity.MEDIUM.value: "#f3a712",
    Severity.LOW.value: "#29a0b1",
    Severity.INFO.value: "#7d8491",
}


@cache
def _centres() -> dict[str, tuple[float, float]]:
    # One sourced centroid table for the whole product (the history signals use it too).
    return dict(load_centroids().points)


def country_centre(code: str | None) -> tuple[float, float] | None:
    """Approximate ``(lat, lon)`` of a country (ISO alpha-2), or ``None`` if unknown."""
    return _centres().get(code.upper()) if code else None


def _xy(lat: float, lon: float) -> tuple[float, float]:
    return lon + 180.0, _TOP - max(_BOTTOM, min(_TOP, lat))


@cache
def _land_paths() -> str:
    parts = []
    for shape in LAND:
        points = " ".join("{:.1f},{:.1f}".format(*_xy(lat, lon)) for lon, lat in shape)
        parts.append(f'<polygon points="{points}"/>')
    return "".join(parts)


def render_world_map(
    counts: Mapping[str, int],
    *,
    worst: Mapping[str, str] | None = None,
    title: str = "Flagged sessions by source country",
    element_id: str = "world-map",
) -> str:
    """SVG map with a bubble per country in ``counts`` (country code -> sessions)."""
    worst = worst or {}
    top = max(counts.values(), default=0)
    bubbles, unplaced = [], []
    for code, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        centre = country_centre(code)
        if centre is None or n <= 0:
            unplaced.append(f"{code}: {n}")
            continue
        x, y = _xy(*centre)
        radius = 1.5 + 7.5 * math.sqrt(n / top)
        colour = SEVERITY_COLOURS.get(worst.get(code, ""), "#c0392b")
        label = escape(f"{code}: {n} flagged session{'s' if n != 1 else ''}")
        bubbles.append(
            f'<circle class="bubble" data-country="{escape(code)}" cx="{x:.1f}" cy="{y:.1f}" '
            f'r="{radius:.1f}" fill="{colour}" fill-opacity="0.75" stroke="#fff" '
            f'stroke-width="0.4"><title>{label}</title></circle>'
        )
    graticule = "".join(
        f'<line x1="0" y1="{_TOP - lat:.0f}" x2="360" y2="{_TOP - lat:.0f}"/>'
        for lat in range(-60, 90, 30)
    ) + "".join(
        f'<line x1="{lon}" y1="0" x2="{lon}" y2="{_HEIGHT:.0f}"/>' for lon in range(0, 361, 30)
    )
    note = (
        f'<text x="2" y="{_HEIGHT - 2:.0f}" font-size="4" fill="#555">not placed: '
        f"{escape(', '.join(unplaced))}</text>"
        if unplaced
        else ""
    )
    return (
        f'<svg id="{escape(element_id)}" class="world-map" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 360 {_HEIGHT:.0f}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
        f'<rect width="360" height="{_HEIGHT:.0f}" fill="#eef3f7"/>'
        f'<g stroke="#d5dee6" stroke-width="0.3">{graticule}</g>'
        f'<g fill="#cfd8cf" stroke="#9aa79a" stroke-width="0.3">{_land_paths()}</g>'
        f"<g>{''.join(bubbles)}</g>{note}</svg>"
    )


def render_timeline(
    days: Mapping[str, Mapping[str, int]],
    *,
    title: str = "Flagged sessions per day",
    element_id: str = "timeline",
) -> str:
    """SVG stacked bar chart: one bar per day (``YYYY-MM-DD``), stacked by severity."""
    keys = sorted(days)
    width, height, pad = 360.0, 90.0, 12.0
    if not keys:
        return (
            f'<svg id="{escape(element_id)}" class="timeline" xmlns="http://www.w3.org/2000/svg" '
            f'viewBox="0 0 {width:.0f} 30" role="img" aria-label="{escape(title)}">'
            f'<text x="4" y="18" font-size="8" fill="#555">no flagged sessions</text></svg>'
        )
    top = max(sum(days[k].values()) for k in keys) or 1
    step = (width - pad) / len(keys)
    bar = min(24.0, max(1.0, step * 0.8))
    order = [s.value for s in sorted(Severity, key=lambda s: s.rank)]
    rects = []
    for i, day in enumerate(keys):
        x = pad + i * step
        y = height - pad
        for sev in order:
            n = days[day].get(sev, 0)
            if not n:
                continue
            h = (height - 2 * pad) * n / top
            y -= h
            rects.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{SEVERITY_COLOURS[sev]}">'
                f"<title>{escape(f'{day} {sev}: {n}')}</title></rect>"
            )
    labels = (
        f'<text x="{pad:.0f}" y="{height - 2:.0f}" font-size="6" fill="#555">'
        f"{escape(keys[0])}</text>"
        f'<text x="{width - 2:.0f}" y="{height - 2:.0f}" font-size="6" fill="#555" '
        f'text-anchor="end">{escape(keys[-1])}</text>'
        f'<text x="2" y="{pad:.0f}" font-size="6" fill="#555">{top}</text>'
    )
    return (
        f'<svg id="{escape(element_id)}" class="timeline" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
        f'<line x1="{pad:.0f}" y1="{height - pad:.0f}" x2="{width:.0f}" y2="{height - pad:.0f}" '
        f'stroke="#999" stroke-width="0.5"/>{"".join(rects)}{labels}</svg>'
    )
