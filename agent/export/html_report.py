"""Self-contained HTML report for one audit: summary, world map, timeline, findings table.

One file, inline CSS and SVG, no script and no external resource, so it can be mailed,
archived or opened offline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from importlib import resources

from agent.errors import UsageError
from agent.export.worldmap import SEVERITY_COLOURS, render_timeline, render_world_map
from agent.models import AuditRun, Finding

__all__ = ["country_summary", "daily_counts", "render_report"]


@cache
def _environment():  # type: ignore[no-untyped-def]
    try:
        import jinja2
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise UsageError(
            "the HTML report needs Jinja2", hint="pip install 'chipwarden[server]'"
        ) from exc
    folder = resources.files("agent.export") / "templates"
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def country_summary(findings: Sequence[Finding]) -> tuple[dict[str, int], dict[str, str]]:
    """Flagged sessions per source country and the worst severity seen for each."""
    sessions: dict[str, set[str]] = {}
    worst: dict[str, Finding] = {}
    for f in findings:
        code = f.ip.country or "??"
        sessions.setdefault(code, set()).add(f.session.session_id)
        if code not in worst or f.severity > worst[code].severity:
            worst[code] = f
    counts = {code: len(ids) for code, ids in sessions.items()}
    return counts, {code: f.severity.value for code, f in worst.items()}


def daily_counts(findings: Sequence[Finding]) -> dict[str, dict[str, int]]:
    """``{day: {severity: findings}}`` by session start (UTC)."""
    days: dict[str, Counter[str]] = {}
    for f in findings:
        day = f.session.started_at.date().isoformat()
        days.setdefault(day, Counter())[f.severity.value] += 1
    return {d: dict(c) for d, c in sorted(days.items())}


def render_report(
    findings: Sequence[Finding], *, run: AuditRun | None, generated_at: datetime
) -> str:
    """The report as one HTML string."""
    counts, worst = country_summary(findings)
    ordered = sorted(findings, key=lambda f: (-f.severity.rank, f.session.started_at))
    template = _environment().get_template("report.html")
    html: str = template.render(
        run=run,
        findings=ordered,
        generated_at=generated_at,
        severity_counts=Counter(f.severity.value for f in findings),
        status_counts=Counter(f.status.value for f in findings),
        country_counts=sorted(counts.items(), key=lambda kv: -kv[1]),
        world_map=render_world_map(counts, worst=worst),
        timeline=render_timeline(daily_counts(findings)),
        colours=SEVERITY_COLOURS,
    )
    return html
