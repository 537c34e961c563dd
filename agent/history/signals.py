"""Principal-history signals (pure): impossible travel, first session from a new country or
network, and activity concentrated in a restricted jurisdiction's working hours.

Each signal yields context facts (``"history.<name>" = "true" | "false"``) and a plain-word
reason under ``"history.<name>.reason"``; ``"history.reasons"`` joins the reasons that fired.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from agent.history.geo import Centroids, WorkingHours

__all__ = ["HistorySettings", "Visit", "evaluate_visit"]

_LOCAL_DAY = (8, 19)  # a source's own working day, local hours [start, end)


@dataclass(frozen=True)
class Visit:
    """One session as history remembers it (principal, when, where from)."""

    principal: str
    session_id: str
    started_at: datetime
    provider: str
    source_ip: str | None
    country: str | None
    asn: int | None
    seq: int | None = None
    """When the store first recorded it (``None``: not recorded, or before revision 0004)."""


@dataclass(frozen=True)
class HistorySettings:
    """Thresholds; defaults match ``HistoryConfig``."""

    keep: int = 50
    max_speed_kmh: float = 900.0
    slack_km: float = 500.0
    min_sessions: int = 10
    hours_share: float = 0.8
    zones: tuple[WorkingHours, ...] = field(default=())


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%MZ")


def _travel(visit: Visit, other: Visit, centroids: Centroids, s: HistorySettings) -> str | None:
    if not visit.country or not other.country or visit.country == other.country:
        return None
    distance = centroids.distance_km(visit.country, other.country)
    if distance is None:
        return None
    effective = distance - s.slack_km
    if effective <= s.slack_km:
        return None
    hours = abs((visit.started_at - other.started_at).total_seconds()) / 3600
    needed = effective / s.max_speed_kmh
    if hours >= needed:
        return None
    earlier, later = sorted((visit, other), key=lambda v: v.started_at)
    return (
        f"impossible travel: session from {earlier.country} at {_stamp(earlier.started_at)}, "
        f"then from {later.country} {hours:.1f} h later; about {distance:,.0f} km between the "
        f"countries' centroids (less {s.slack_km:,.0f} km slack) needs at least {needed:.1f} h "
        f"at {s.max_speed_kmh:,.0f} km/h"
    )


def _new_network(visit: Visit, before: Sequence[Visit]) -> tuple[bool, bool, str | None]:
    countries = {v.country for v in before if v.country}
    asns = {v.asn for v in before if v.asn is not None}
    new_country = bool(visit.country and countries and visit.country not in countries)
    new_asn = bool(visit.asn is not None and asns and visit.asn not in asns)
    parts = []
    if new_country:
        seen = ", ".join(sorted(countries))
        parts.append(f"first session from {visit.country} (earlier sessions came from {seen})")
    if new_asn:
        parts.append(f"first session from network AS{visit.asn}")
    if not parts:
        return new_country, new_asn, None
    return new_country, new_asn, f"principal's {' and '.join(parts)} in {len(before)} sessions"


def _local_working(visit: Visit, centroids: Centroids) -> bool:
    offset = centroids.utc_offset_hours(visit.country)
    if offset is None:
        return False
    hour = (visit.started_at.hour + offset) % 24
    weekday = (visit.started_at.weekday() + (visit.started_at.hour + offset) // 24) % 7
    return weekday < 5 and _LOCAL_DAY[0] <= hour < _LOCAL_DAY[1]


def _hours(
    visits: Sequence[Visit], centroids: Centroids, s: HistorySettings
) -> tuple[str | None, str | None]:
    """(jurisdiction, reason) of the first zone whose share of unexplained sessions is high."""
    recent = list(visits)[-s.keep :]
    if len(recent) < s.min_sessions:
        return None, None
    for zone in s.zones:
        hits = [
            v for v in recent if zone.contains(v.started_at) and not _local_working(v, centroids)
        ]
        share = len(hits) / len(recent)
        if share >= s.hours_share:
            return zone.jurisdiction, (
                f"{len(hits)} of the principal's last {len(recent)} sessions ({share:.0%}) fell "
                f"in {zone.describe()} while it was outside working hours at their source"
            )
    return None, None


def evaluate_visit(
    visit: Visit,
    prior: Sequence[Visit],
    *,
    centroids: Centroids,
    settings: HistorySettings,
    recorded_before: frozenset[str] = frozenset(),
) -> dict[str, str]:
    """Context facts for ``visit`` given the principal's ``prior`` visits (any order).

    ``recorded_before``: session ids of ``prior`` visits history held before ``visit`` was
    recorded. The next session in time counts as a travel neighbour only when it is one of
    them: each pair of neighbouring sessions is judged once, by whichever was judged second."""
    others = sorted(
        (v for v in prior if v.session_id != visit.session_id), key=lambda v: v.started_at
    )
    # Sessions that started before this one decide what is new; a later one is a travel
    # neighbour only if history held it before this one (see ``recorded_before``), so a
    # rerun (crash recovery, overlapping window) judges exactly as the first run did.
    before = [v for v in others if v.started_at <= visit.started_at]
    facts: dict[str, str] = {"history.sessions": str(len(before))}
    fired: list[str] = []

    travel = None
    for neighbour in before[-1:]:
        travel = _travel(visit, neighbour, centroids, settings)
    following = [v for v in others if v.started_at > visit.started_at][:1]
    if not travel and following and following[0].session_id in recorded_before:
        # that later session was judged before this earlier one arrived (another source)
        travel = _travel(visit, following[0], centroids, settings)
    facts["history.impossible_travel"] = "true" if travel else "false"
    if travel:
        facts["history.impossible_travel.reason"] = travel
        fired.append(travel)

    new_country, new_asn, why = _new_network(visit, before)
    facts["history.first_session"] = "false" if before else "true"
    facts["history.new_country"] = str(new_country).lower()
    facts["history.new_asn"] = str(new_asn).lower()
    facts["history.new_network"] = str(new_country or new_asn).lower()
    if why:
        facts["history.new_network.reason"] = why
        fired.append(why)

    jurisdiction, hours_why = _hours([*before, visit], centroids, settings)
    facts["history.restricted_hours"] = "true" if hours_why else "false"
    if hours_why and jurisdiction:
        facts["history.restricted_hours.jurisdiction"] = jurisdiction
        facts["history.restricted_hours.reason"] = hours_why
        fired.append(hours_why)
    if fired:
        facts["history.reasons"] = "; ".join(fired)
    return facts
