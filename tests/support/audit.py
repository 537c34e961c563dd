"""One scheduled audit of a config file through the pipeline, with the clock fixed at ``now``
(what ``chipwarden audit -c FILE`` does, minus the CLI)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from agent.assembly import build_classifier, build_engine, build_plugins
from agent.config import load_config
from agent.contracts import AuditWindow
from agent.enrich import GeoEnricher
from agent.pipeline import AuditResult, run_audit
from agent.store import open_store

__all__ = ["scheduled_audit"]


def scheduled_audit(config: Path, *, now: datetime, lookback_hours: int = 24) -> AuditResult:
    """Run the sources of ``config`` from their checkpoints (or ``lookback_hours`` back)."""
    cfg, doc = load_config(config)
    clock = lambda: now  # noqa: E731
    window = AuditWindow(
        since=None, until=None, explicit=False, default_lookback_hours=lookback_hours
    )
    with (
        GeoEnricher.from_config(cfg.geo, base_dir=cfg.base_dir) as enricher,
        open_store(cfg.store) as store,
    ):
        return run_audit(
            plugins=build_plugins(cfg, doc=doc, clock=clock),
            store=store,
            engine=build_engine(cfg, clock=clock),
            enricher=enricher,
            classifier=build_classifier(cfg),
            window=window,
            clock=clock,
        )
