"""CloudTrail readers for one unit: the org trail's S3 objects of an account/region, a
CloudWatch Logs group, or LookupEvents (the fallback). Records go through the shared
``RecordCollector``; each reader returns the checkpoints to commit with the sessions.

S3: days are listed by prefix with ``StartAfter`` = the day's checkpoint (the last key read;
keys sort by delivery time within a day), one object at a time, streamed through gzip.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime

import structlog

from agent.contracts import CollectContext
from agent.errors import SourceError
from agent.models import ScopeError, ensure_utc
from providers.aws.client import AwsClient, ObjectTooLarge
from providers.aws.collect import RecordCollector
from providers.aws.fastscan import MAX_FILE_BYTES
from providers.aws.files import DIGEST_MARKER, Unreadable, parse_stream
from providers.aws.normalize import SESSION_EVENT_SOURCES
from providers.aws.scope import scope_error
from providers.aws.settings import CloudTrailSpec
from providers.aws.windows import (
    CHECKPOINT_OVERLAP,
    LogCursor,
    day_prefix,
    delivered_in,
    time_range,
)

__all__ = [
    "LOG_FILTER_PATTERN",
    "TrailOutput",
    "bucket_scopes",
    "read_log_group",
    "read_lookup_events",
    "read_trail_bucket",
]

log = structlog.get_logger(__name__)

Checkpoint = tuple[str | None, str, str]

LOG_FILTER_PATTERN = (
    "{ " + " || ".join(f'($.eventSource = "{source}")' for source in SESSION_EVENT_SOURCES) + " }"
)
"""FilterLogEvents pattern: only the event sources that can carry a session."""


@dataclass
class TrailOutput:
    """What one CloudTrail unit read: its records (in a collector) and checkpoints."""

    collector: RecordCollector
    checkpoints: list[Checkpoint] = field(default_factory=list)
    objects: int = 0
    failed: bool = False


def bucket_scopes(spec: CloudTrailSpec, account: str, region: str) -> str:
    """Checkpoint scope prefix of one account/region in the trail bucket (+ ``:<day>``)."""
    return f"aws:cloudtrail-s3:{spec.bucket}/{spec.prefix}:{account}:{region}"


def _read_object(
    ctx: CollectContext,
    collector: RecordCollector,
    *,
    client: AwsClient,
    spec: CloudTrailSpec,
    key: str,
    tag: str,
    source: str,
) -> None:
    assert spec.bucket is not None  # noqa: S101 - type narrowing; the caller checked the field
    locator = f"s3://{spec.bucket}/{key}"
    # A transport failure after fetch_object's retries (throttling, 5xx, a truncated body, a
    # listed key still missing) propagates: the unit fails and its checkpoint stays before
    # this key, so the next run reads it. Bad content is quarantined and skipped.
    try:
        with client.fetch_object(
            spec.bucket, key, region=spec.region, max_bytes=MAX_FILE_BYTES
        ) as stream:
            entries = parse_stream(stream)
    except (Unreadable, ObjectTooLarge) as exc:
        code = exc.code
        ctx.scope_error(
            ScopeError(
                source=source,
                scope=locator,
                code=code,
                message=exc.message,
                remediation=exc.hint,
            )
        )
        log.warning("aws_trail_object_unreadable", source=source, key=key, code=code)
        return
    for position, record, reason in entries:
        if reason is not None:
            collector.add_unparsable(position=position, reason=reason, locator=locator)
        else:
            collector.add(record, position=position, locator=locator, tag=tag)


def read_trail_bucket(
    ctx: CollectContext,
    *,
    client: AwsClient,
    spec: CloudTrailSpec,
    account: str,
    region: str,
    days: list[date],
    saved: dict[str, str],
    now: datetime,
    source: str,
) -> TrailOutput:
    """Objects of ``days`` for one account/region, skipping keys a checkpoint covers.

    Scheduled runs (no explicit window) checkpoint each day's last key and, as the last
    checkpoint, the last day listed (where the next run starts). An explicit window reads
    the objects delivered in it and leaves every checkpoint alone.
    """
    assert spec.bucket is not None  # noqa: S101 - type narrowing; the caller checked the field
    window = ctx.window
    base = bucket_scopes(spec, account, region)
    out = TrailOutput(
        RecordCollector(
            ctx=ctx, source=source, locator=f"s3://{spec.bucket}", kind="file", filter_window=False
        )
    )
    for day in days:
        tag, scope = day.isoformat(), f"{base}:{day.isoformat()}"
        prefix = day_prefix(
            prefix=spec.prefix,
            account=account,
            service="CloudTrail",
            region=region,
            day=day,
            organization_id=spec.organization_id,
        )
        last: str | None = None
        try:
            for key in client.list_keys(
                spec.bucket, prefix, start_after=saved.get(scope), region=spec.region
            ):
                if DIGEST_MARKER in key or not key.endswith((".json.gz", ".json")):
                    continue
                if window.explicit and not delivered_in(key, window, now):
                    continue
                _read_object(
                    ctx, out.collector, client=client, spec=spec, key=key, tag=tag, source=source
                )
                out.objects += 1
                last = key
        except SourceError as exc:
            out.failed = True
            ctx.scope_error(
                scope_error(
                    exc,
                    source=source,
                    scope=f"{account}/{region}",
                    what=f"reading the CloudTrail objects of {tag} (s3://{spec.bucket}/{prefix})",
                )
            )
        if last is not None and not window.explicit:
            out.checkpoints.append((tag, scope, last))
        if out.failed:
            break
    if days and not out.failed and not window.explicit:
        out.checkpoints.append((days[-1].isoformat(), base, days[-1].isoformat()))
    return out


def read_log_group(
    ctx: CollectContext,
    *,
    client: AwsClient,
    spec: CloudTrailSpec,
    saved: str | None,
    now: datetime,
    source: str,
    accounts: frozenset[str] | None,
    regions: frozenset[str] | None,
) -> TrailOutput:
    """CloudTrail events delivered to a CloudWatch Logs group (FilterLogEvents). Events of
    accounts or regions outside the scope are counted as ignored."""
    assert spec.log_group is not None  # noqa: S101 - type narrowing; the caller checked the field
    group = spec.log_group
    scope = f"aws:cloudtrail-logs:{group}"
    cursor = LogCursor.decode(saved)
    floor = datetime.fromtimestamp(cursor.timestamp / 1000, tz=now.tzinfo) if cursor else None
    span = time_range(window=ctx.window, now=now, saved=floor, overlap=CHECKPOINT_OVERLAP)
    out = TrailOutput(
        RecordCollector(
            ctx=ctx, source=source, locator=f"logs:{group}", kind="api", filter_window=False
        )
    )
    newest = cursor
    try:
        for event in client.filter_log_events(
            group,
            region=spec.region,
            start_ms=int(span.start.timestamp() * 1000),
            end_ms=int(span.end.timestamp() * 1000),
            pattern=LOG_FILTER_PATTERN,
        ):
            stamp = int(event.get("timestamp") or 0)
            key = f"{event.get('logStreamName')}/{event.get('eventId')}"
            if cursor is not None and stamp == cursor.timestamp and key in cursor.seen:
                continue
            newest = newest.advance(stamp, key) if newest else LogCursor(stamp, frozenset({key}))
            out.objects += 1
            _add_log_record(out.collector, event, key=key, accounts=accounts, regions=regions)
    except SourceError as exc:
        out.failed = True
        ctx.scope_error(
            scope_error(
                exc, source=source, scope=f"logs:{group}", what="CloudWatch Logs FilterLogEvents"
            )
        )
    if not out.failed and span.writes_checkpoint and newest is not None and newest != cursor:
        out.checkpoints.append((None, scope, newest.encode()))
    return out


def _add_log_record(
    collector: RecordCollector,
    event: dict[str, object],
    *,
    key: str,
    accounts: frozenset[str] | None,
    regions: frozenset[str] | None,
) -> None:
    message = event.get("message")
    try:
        record = json.loads(message) if isinstance(message, str) else message
    except ValueError as exc:
        collector.add_unparsable(position=key, reason=f"invalid JSON: {exc}")
        return
    if isinstance(record, dict) and (
        (accounts is not None and record.get("recipientAccountId") not in accounts)
        or (regions is not None and record.get("awsRegion") not in regions)
    ):
        collector.add_ignored()
        return
    collector.add(record, position=key)


def read_lookup_events(
    ctx: CollectContext,
    *,
    client: AwsClient,
    account: str,
    region: str,
    saved: str | None,
    now: datetime,
    source: str,
) -> TrailOutput:
    """LookupEvents of one account/region (per event source), checkpointed by event time."""
    scope = f"aws:{account}:{region}:lookup-events"
    floor: datetime | None = None
    if saved:
        try:
            floor = ensure_utc(datetime.fromisoformat(saved))
        except ValueError:
            log.warning("aws_checkpoint_invalid", scope=scope, value=saved)
    span = time_range(window=ctx.window, now=now, saved=floor, overlap=CHECKPOINT_OVERLAP)
    unit = f"{account}/{region}"
    out = TrailOutput(
        RecordCollector(
            ctx=ctx,
            source=source,
            locator="cloudtrail:LookupEvents",
            kind="api",
            filter_window=False,
        )
    )
    try:
        records = client.lookup_events(
            region, start=span.start, end=span.end, event_sources=SESSION_EVENT_SOURCES
        )
        for index, record in enumerate(records):
            out.collector.add(record, position=f"{unit} event {index}")
    except SourceError as exc:
        out.failed = True
        ctx.scope_error(scope_error(exc, source=source, scope=unit, what="CloudTrail LookupEvents"))
    newest = out.collector.newest
    if newest is not None and floor is not None:
        newest = max(newest, floor)  # the overlap never moves a checkpoint back
    # A failed region keeps its old checkpoint: what it missed is read again next run.
    if not out.failed and newest is not None and span.writes_checkpoint:
        out.checkpoints.append((None, scope, newest.isoformat()))
    return out
