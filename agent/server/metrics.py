"""Prometheus metrics of one app instance (own registry, so several apps can coexist).

Counters and the latency histogram are updated by requests; store-derived gauges (findings by
severity and status, checkpoint and last-run age, geo database age, active exceptions) are
computed when ``/metrics`` is scraped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.errors import ChipwardenError
from agent.server.state import ServiceState

__all__ = ["ServerMetrics"]

log = structlog.get_logger(__name__)

_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})\s*\)?$")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def geo_build_date(source: str) -> date | None:
    """The build date at the end of a geo source string (``GeoLite2-City 2026-11-20``)."""
    match = _DATE.search(source)
    return date.fromisoformat(match.group(1)) if match else None


class _StoreCollector(Collector):
    """Gauges read from the store and the loaded data at scrape time."""

    def __init__(self, state: Callable[[], ServiceState | None]) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        state = self._state()
        if state is None:
            return
        now = state.clock()
        up = GaugeMetricFamily("chipwarden_store_up", "1 when the store answered this scrape")
        try:
            counts = state.review.queries.status_severity_counts()
            checkpoints = state.review.queries.checkpoint_times()
            run_started, run_finished = state.review.queries.last_run_times()
            active = len(state.review.exceptions.list(active_only=True))
        except ChipwardenError as exc:
            log.warning("metrics_store_failed", error=exc.message)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        findings = GaugeMetricFamily(
            "chipwarden_findings",
            "Stored findings by severity and review status",
            labels=["severity", "status"],
        )
        for (severity, status), n in sorted(counts.items()):
            findings.add_metric([severity, status], n)
        yield findings
        lag = GaugeMetricFamily(
            "chipwarden_checkpoint_age_seconds",
            "Seconds since each source scope's checkpoint last advanced (source lag)",
            labels=["scope"],
        )
        for scope, at in sorted(checkpoints.items()):
            lag.add_metric([scope], (now - at).total_seconds())
        yield lag
        if run_started is not None:
            last = GaugeMetricFamily(
                "chipwarden_last_run_age_seconds",
                "Seconds since the newest audit run finished (or started, if still running)",
            )
            last.add_metric([], (now - (run_finished or run_started)).total_seconds())
            yield last
        geo = GaugeMetricFamily(
            "chipwarden_geo_database_age_seconds",
            "Age of each geo database with a known build date",
            labels=["source"],
        )
        info = GaugeMetricFamily(
            "chipwarden_geo_database_info", "Geo databases in use", labels=["source"]
        )
        for source in state.enricher.describe():
            info.add_metric([source], 1)
            built = geo_build_date(source)
            if built is not None:
                start = datetime(built.year, built.month, built.day, tzinfo=UTC)
                geo.add_metric([source], (now - start).total_seconds())
        yield geo
        yield info
        exceptions = GaugeMetricFamily("chipwarden_exceptions_active", "Active exceptions")
        exceptions.add_metric([], active)
        yield exceptions
        instances = GaugeMetricFamily(
            "chipwarden_inventory_instances", "Instances known to /v1/evaluate"
        )
        instances.add_metric([], len(state.inventory))
        yield instances


class ServerMetrics:
    """The app's registry and the instruments routes update."""

    def __init__(self, state: Callable[[], ServiceState | None]) -> None:
        self.registry = CollectorRegistry()
        self.sessions_evaluated = Counter(
            "chipwarden_sessions_evaluated",
            "Sessions evaluated by the service",
            ["path"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "chipwarden_decisions",
            "Evaluate answers by decision",
            ["decision"],
            registry=self.registry,
        )
        self.findings_produced = Counter(
            "chipwarden_findings_produced",
            "Findings produced by the service, by severity",
            ["severity"],
            registry=self.registry,
        )
        self.ingest_rejected = Counter(
            "chipwarden_ingest_rejected",
            "Webhook bodies rejected as malformed",
            ["webhook"],
            registry=self.registry,
        )
        self.ingest_items_quarantined = Counter(
            "chipwarden_ingest_items_quarantined",
            "Malformed items inside accepted webhook bodies",
            ["webhook"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "chipwarden_auth_failures",
            "Failed authentications (presented credentials that were refused), by reason",
            ["reason"],
            registry=self.registry,
        )
        self.auth_lockouts = Counter(
            "chipwarden_auth_lockouts",
            "Client addresses locked out after too many failed authentications",
            registry=self.registry,
        )
        self.auth_rate_limited = Counter(
            "chipwarden_auth_rate_limited",
            "Requests refused with 429 because their client address is locked out",
            registry=self.registry,
        )
        self.auth_tracked_clients = Gauge(
            "chipwarden_auth_limiter_tracked_clients",
            "Client addresses the auth-failure limiter currently tracks (bounded)",
            registry=self.registry,
        )
        self.auth_limiter_evictions = Counter(
            "chipwarden_auth_limiter_evictions",
            "Clients with recent failures forgotten because the limiter table was full",
            registry=self.registry,
        )
        self.latency = Histogram(
            "chipwarden_http_request_duration_seconds",
            "Request latency by route template",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StoreCollector(state))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
