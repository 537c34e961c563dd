"""Places and clocks for history signals: country centroids (bundled, sourced), great-circle
distance, and working-hours zones of restricted jurisdictions."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone, tzinfo
from functools import cache
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from agent.errors import ConfigError

__all__ = [
    "DATA_DIR",
    "Centroids",
    "WorkingHours",
    "great_circle_km",
    "load_centroids",
    "load_working_hours",
]

DATA_DIR: Final = Path(__file__).resolve().parent / "data"
EARTH_RADIUS_KM: Final = 6371.0088
CENTROIDS_SOURCE: Final = "country centroids: Google DSPL canonical countries.csv (CC BY 4.0)"


def great_circle_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine distance in km between two (latitude, longitude) points in degrees."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True)
class Centroids:
    """ISO alpha-2 -> representative (latitude, longitude)."""

    points: dict[str, tuple[float, float]]
    source: str = CENTROIDS_SOURCE

    def get(self, country: str | None) -> tuple[float, float] | None:
        return self.points.get(country.upper()) if country else None

    def distance_km(self, a: str | None, b: str | None) -> float | None:
        """Distance between two countries' points, ``None`` if either is unknown."""
        pa, pb = self.get(a), self.get(b)
        return None if pa is None or pb is None else great_circle_km(pa, pb)

    def utc_offset_hours(self, country: str | None) -> float | None:
        """Solar-time estimate of a country's UTC offset from its centroid longitude."""
        point = self.get(country)
        return None if point is None else round(point[1] / 15)


@cache
def load_centroids(path: Path = DATA_DIR / "country_centroids.csv") -> Centroids:
    """Read ``country,latitude,longitude[,name]`` rows; a bad row names file and line."""
    points: dict[str, tuple[float, float]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for n, row in enumerate(csv.DictReader(handle), 2):
            try:
                points[row["country"].strip().upper()] = (
                    float(row["latitude"]),
                    float(row["longitude"]),
                )
            except (KeyError, ValueError, AttributeError) as exc:
                raise ConfigError(f"{path}:{n}: bad centroid row ({exc})") from exc
    return Centroids(points=points)


@dataclass(frozen=True)
class WorkingHours:
    """Weekday office hours in one restricted jurisdiction's time zone."""

    jurisdiction: str
    label: str
    zone: tzinfo
    weekdays: frozenset[int]
    start: time
    end: time
    source: str

    def contains(self, when: datetime) -> bool:
        """Whether ``when`` (aware) falls inside these hours."""
        local = when.astimezone(self.zone)
        return local.weekday() in self.weekdays and self.start <= local.time() < self.end

    def describe(self) -> str:
        return f"weekdays {self.start:%H:%M}-{self.end:%H:%M} {self.label}"


def _zone(name: str, offset: float) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return timezone(timedelta(hours=offset), name)


@cache
def load_working_hours(path: Path = DATA_DIR / "working_hours.yaml") -> tuple[WorkingHours, ...]:
    """The zones in ``path``; a malformed entry raises ConfigError naming it."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out = []
    for i, z in enumerate(data.get("zones") or []):
        try:
            out.append(
                WorkingHours(
                    jurisdiction=str(z["jurisdiction"]),
                    label=str(z["label"]),
                    zone=_zone(str(z["tz"]), float(z.get("utc_offset_hours", 0))),
                    weekdays=frozenset(int(d) for d in z["weekdays"]),
                    start=time.fromisoformat(str(z["start"])),
                    end=time.fromisoformat(str(z["end"])),
                    source=str(z.get("source", "")),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: zones[{i}]: {exc}") from exc
    return tuple(out)
