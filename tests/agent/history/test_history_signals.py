"""History signals (pure): impossible travel, new country / network, restricted office hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.history import HistorySettings, Visit, evaluate_visit, great_circle_km, load_centroids
from agent.history.geo import load_working_hours

CENTROIDS = load_centroids()
SETTINGS = HistorySettings(zones=load_working_hours(), min_sessions=10, hours_share=0.8)
T0 = datetime(2026, 6, 1, 14, 0, tzinfo=UTC)  # a Monday


def visit(n: int, *, country: str = "US", asn: int | None = 7018, at: datetime = T0) -> Visit:
    return Visit(
        principal="alice",
        session_id=f"s{n}",
        started_at=at,
        provider="aws",
        source_ip=f"198.51.100.{n % 250}",
        country=country,
        asn=asn,
    )


def facts(v: Visit, prior: list[Visit]) -> dict[str, str]:
    return evaluate_visit(v, prior, centroids=CENTROIDS, settings=SETTINGS)


def test_great_circle_distance_matches_a_known_value() -> None:
    # Paris (48.8566, 2.3522) to New York (40.7128, -74.0060) is about 5,837 km.
    assert great_circle_km((48.8566, 2.3522), (40.7128, -74.0060)) == pytest.approx(5837, abs=10)


def test_us_then_germany_two_hours_later_is_impossible_travel() -> None:
    got = facts(visit(2, country="DE", at=T0 + timedelta(hours=2)), [visit(1)])

    assert got["history.impossible_travel"] == "true"
    reason = got["history.impossible_travel.reason"]
    assert "session from US at 2026-06-01 14:00Z, then from DE 2.0 h later" in reason
    assert "needs at least" in reason
    assert got["history.reasons"].startswith("impossible travel")


def test_the_same_trip_with_a_days_gap_is_not_flagged() -> None:
    got = facts(visit(2, country="DE", at=T0 + timedelta(hours=24)), [visit(1)])

    assert got["history.impossible_travel"] == "false"


def test_neighbouring_countries_are_too_close_to_judge_by_centroids() -> None:
    got = facts(visit(2, country="BE", at=T0 + timedelta(minutes=5)), [visit(1, country="NL")])

    assert got["history.impossible_travel"] == "false"


def test_a_later_stored_session_is_not_a_neighbour_so_reruns_judge_alike() -> None:
    got = facts(visit(1), [visit(2, country="JP", at=T0 + timedelta(hours=1))])

    assert got["history.impossible_travel"] == "false"
    assert got["history.first_session"] == "true"


def test_first_session_from_a_new_country_and_network_is_reported() -> None:
    prior = [visit(i, at=T0 - timedelta(days=i)) for i in range(1, 4)]

    got = facts(visit(9, country="FR", asn=3215, at=T0 + timedelta(days=2)), prior)

    assert got["history.new_country"] == got["history.new_asn"] == "true"
    assert got["history.new_network"] == "true"
    assert got["history.new_network.reason"] == (
        "principal's first session from FR (earlier sessions came from US) and first session "
        "from network AS3215 in 3 sessions"
    )


def test_a_principals_very_first_session_is_not_new_anything() -> None:
    got = facts(visit(1), [])

    assert got["history.first_session"] == "true"
    assert got["history.new_network"] == "false"
    assert "history.reasons" not in got


def test_only_earlier_sessions_decide_what_is_new() -> None:
    later = [visit(2, country="FR", at=T0 + timedelta(days=3))]

    got = facts(visit(1, country="FR"), [*later, visit(3, at=T0 - timedelta(days=1))])

    assert got["history.new_country"] == "true"


def _shanghai_office_visits(n: int, *, country: str) -> list[Visit]:
    # 02:00 UTC = 10:00 Asia/Shanghai = 21:00 the previous evening US Central (centroid).
    start = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
    days = [
        start + timedelta(days=d) for d in range(14) if (start + timedelta(days=d)).weekday() < 5
    ]
    return [visit(i, country=country, at=days[i]) for i in range(n)]


def test_us_sessions_kept_in_shanghai_office_hours_are_flagged() -> None:
    *prior, current = _shanghai_office_visits(10, country="US")

    got = facts(current, prior)

    assert got["history.restricted_hours"] == "true"
    assert got["history.restricted_hours.jurisdiction"] == "CN"
    assert got["history.restricted_hours.reason"].startswith(
        "10 of the principal's last 10 sessions (100%) fell in weekdays 09:00-18:00 China"
    )


def test_staff_in_a_utc_plus_8_country_working_their_own_day_are_not_flagged() -> None:
    *prior, current = _shanghai_office_visits(10, country="SG")

    assert facts(current, prior)["history.restricted_hours"] == "false"


def test_too_few_sessions_never_flag_office_hours() -> None:
    *prior, current = _shanghai_office_visits(9, country="US")

    assert facts(current, prior)["history.restricted_hours"] == "false"
