"""VPC flow-log readers: text lines in blocks (files, S3 objects) or log events (CloudWatch
Logs) -> admin-port hits on GPU instances. Shared by the ``aws`` source and the
``vpc-flow-files`` source; parsing and selection are the pure ``flowparse`` / ``flowsessions``.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

import structlog

from agent.contracts import CollectContext
from agent.errors import SourceError
from agent.models import ScopeError
from providers.aws.bounded import text_lines
from providers.aws.client import AwsClient, AwsNotFound, ObjectTooLarge
from providers.aws.flowparse import FlowLayout, header_fields, parse_block
from providers.aws.flowsessions import FlowHit, TargetIndex, select_hits
from providers.aws.scope import scope_error
from providers.aws.settings import FlowLogsSpec, FlowOptions
from providers.aws.windows import (
    CHECKPOINT_OVERLAP,
    LogCursor,
    day_prefix,
    delivered_in,
    flow_log_id,
    time_range,
)

__all__ = [
    "BLOCK_LINES",
    "FlowOutput",
    "FlowReader",
    "flow_bucket_scope",
    "read_flow_bucket",
    "read_flow_log_group",
]

log = structlog.get_logger(__name__)

BLOCK_LINES = 4096
"""Lines parsed per ``parse_block`` call (bounds memory; the unit issue 8 vectorises)."""

GZIP_MAGIC = b"\x1f\x8b"
MAX_LINE_CHARS = 8 * 1024 * 1024  # as the files source (flowfast.CHUNK_BYTES)
MAX_OBJECT_BYTES = 512 * 1024 * 1024
"""One flow-log object (compressed); AWS rotates delivery files long before this size."""
Checkpoint = tuple[str | None, str, str]


@dataclass
class FlowOutput:
    """Hits one unit found, and its checkpoints."""

    hits: list[FlowHit] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    objects: int = 0
    failed: bool = False


class FlowReader:
    """Turns flow-log lines into hits for one run (one inventory, one set of options)."""

    def __init__(self, *, options: FlowOptions, index: TargetIndex, source: str) -> None:
        self.options = options
        self.index = index
        self.source = source
        self.ports = frozenset(options.admin_ports)
        self.layout = FlowLayout(options.layout_fields())

    def block(
        self,
        ctx: CollectContext,
        lines: list[str],
        *,
        first_line: int,
        layout: FlowLayout,
        locator: str,
        account: str | None,
        tag: str | None,
        position_of: Callable[[int], str] = lambda n: f"line {n}",
    ) -> list[FlowHit]:
        """Parse, count, quarantine and select one block of lines."""
        parsed = parse_block(lines, layout=layout, first_line=first_line)
        ctx.count_read(len(parsed.records) + parsed.skipped + len(parsed.errors))
        ctx.count_ignored(parsed.skipped)
        for number, reason in parsed.errors:
            ctx.quarantine(
                source=self.source, locator=locator, position=position_of(number), reason=reason
            )
        hits, ignored = select_hits(
            parsed.records,
            self.index,
            ports=self.ports,
            account=account,
            locator=locator,
            tag=tag,
            position_of=lambda r: position_of(r.line),
        )
        ctx.count_ignored(ignored)
        return hits

    def lines(
        self,
        ctx: CollectContext,
        lines: Iterable[str],
        *,
        locator: str,
        account: str | None,
        tag: str | None = None,
    ) -> list[FlowHit]:
        """Hits of a whole file or object; a header line (S3 delivery) sets the layout."""
        layout = self.layout
        hits: list[FlowHit] = []
        block: list[str] = []

        def flush(lines_: list[str], first_line: int, layout_: FlowLayout) -> list[FlowHit]:
            return self.block(
                ctx,
                lines_,
                first_line=first_line,
                layout=layout_,
                locator=locator,
                account=account,
                tag=tag,
            )

        first, started = 1, False
        for number, line in enumerate(lines, start=1):
            if not started:
                if not line.strip():
                    continue
                started = True
                header = header_fields(line)
                if header is not None:
                    layout = FlowLayout(header)
                    if not self._usable(ctx, layout, locator):
                        return []
                    continue
            if not block:
                first = number
            block.append(line)
            if len(block) >= BLOCK_LINES:
                hits += flush(block, first, layout)
                block = []
        if block:
            hits += flush(block, first, layout)
        return hits

    def _usable(self, ctx: CollectContext, layout: FlowLayout, locator: str) -> bool:
        if not layout.missing:
            return True
        ctx.scope_error(
            ScopeError(
                source=self.source,
                scope=locator,
                code="unusable_format",
                message=f"the flow-log format lacks {', '.join(layout.missing)}: no session "
                "can be built from it",
                remediation="add srcaddr/pkt-srcaddr, dstport, start and action to the flow "
                "log's format (the default format has them)",
            )
        )
        return False


def _object_hits(
    ctx: CollectContext,
    reader: FlowReader,
    *,
    client: AwsClient,
    spec: FlowLogsSpec,
    key: str,
    account: str,
    tag: str,
) -> list[FlowHit]:
    assert spec.bucket is not None  # noqa: S101 - type narrowing; the caller checked the field
    locator = f"s3://{spec.bucket}/{key}"
    # Transport failures after fetch_object's retries propagate and fail the unit (its
    # checkpoint stays before this key); a corrupt or oversized object is reported and skipped.
    try:
        with client.fetch_object(
            spec.bucket, key, region=spec.region, max_bytes=MAX_OBJECT_BYTES
        ) as stream:
            lines = text_lines(stream, max_line=MAX_LINE_CHARS)  # an over-long line is quarantined
            return reader.lines(ctx, lines, locator=locator, account=account, tag=tag)
    except (OSError, EOFError, zlib.error, ObjectTooLarge) as exc:
        code = exc.code if isinstance(exc, ObjectTooLarge) else "corrupt_gzip"
        ctx.scope_error(
            ScopeError(
                source=reader.source,
                scope=locator,
                code=code,
                message=f"cannot read the flow-log object: {exc}",
                remediation="check the object in the bucket; it is not read again",
            )
        )
        return []


def flow_bucket_scope(spec: FlowLogsSpec, account: str, region: str) -> str:
    """Checkpoint scope prefix of one account/region in the flow-log bucket (+ ``:<day>``)."""
    return f"aws:flowlogs-s3:{spec.bucket}/{spec.prefix}:{account}:{region}"


def read_flow_bucket(
    ctx: CollectContext,
    reader: FlowReader,
    *,
    client: AwsClient,
    spec: FlowLogsSpec,
    account: str,
    region: str,
    days: list[date],
    saved: dict[str, str],
    now: datetime,
) -> FlowOutput:
    """Flow-log objects of ``days`` for one account/region. Objects sort by flow-log id
    before time, so each day's checkpoint is ``{flow-log id: last key}`` (JSON); the last
    checkpoint is the last day listed (where the next scheduled run starts)."""
    assert spec.bucket is not None  # noqa: S101 - type narrowing; the caller checked the field
    base = flow_bucket_scope(spec, account, region)
    out = FlowOutput()
    for day in days:
        tag, scope = day.isoformat(), f"{base}:{day.isoformat()}"
        done: dict[str, str] = _json_map(saved.get(scope))
        seen = dict(done)
        prefix = day_prefix(
            prefix=spec.prefix, account=account, service="vpcflowlogs", region=region, day=day
        )
        try:
            for key in client.list_keys(spec.bucket, prefix, region=spec.region):
                group = flow_log_id(key)
                if not key.endswith((".log.gz", ".log")) or key <= done.get(group, ""):
                    continue
                if ctx.window.explicit and not delivered_in(key, ctx.window, now):
                    continue
                out.hits += _object_hits(
                    ctx, reader, client=client, spec=spec, key=key, account=account, tag=tag
                )
                out.objects += 1
                seen[group] = max(key, seen.get(group, ""))
        except SourceError as exc:
            out.failed = True
            ctx.scope_error(
                scope_error(
                    exc,
                    source=reader.source,
                    scope=f"{account}/{region}",
                    what=f"reading the flow-log objects of {tag} (s3://{spec.bucket}/{prefix})",
                )
            )
        if seen != done and not ctx.window.explicit:
            out.checkpoints.append((tag, scope, json.dumps(seen, sort_keys=True)))
        if out.failed:
            break
    if days and not out.failed and not ctx.window.explicit:
        out.checkpoints.append((days[-1].isoformat(), base, days[-1].isoformat()))
    return out


def _json_map(value: str | None) -> dict[str, str]:
    try:
        loaded = json.loads(value) if value else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


def read_flow_log_group(
    ctx: CollectContext,
    reader: FlowReader,
    *,
    client: AwsClient,
    spec: FlowLogsSpec,
    account: str,
    region: str,
    saved: str | None,
    now: datetime,
    has_gpus: bool,
) -> FlowOutput:
    """Flow records in the log group of one account/region (one record per log event; the
    configured ``fields`` / ``format`` give the layout). A missing group is an error only
    where GPU instances run."""
    assert spec.log_group is not None  # noqa: S101 - type narrowing; the caller checked the field
    group, out = spec.log_group, FlowOutput()
    scope = f"aws:flowlogs-logs:{account}:{region}:{group}"
    locator = f"logs:{group}"
    cursor = LogCursor.decode(saved)
    floor = datetime.fromtimestamp(cursor.timestamp / 1000, tz=now.tzinfo) if cursor else None
    span = time_range(window=ctx.window, now=now, saved=floor, overlap=CHECKPOINT_OVERLAP)
    newest = cursor
    keys: list[str] = []
    block: list[str] = []

    def flush() -> None:
        out.hits.extend(
            reader.block(
                ctx,
                block,
                first_line=0,
                layout=reader.layout,
                locator=locator,
                account=account,
                tag=None,
                position_of=lambda n: f"{region} {keys[n]}",
            )
        )
        keys.clear()
        block.clear()

    try:
        for event in client.filter_log_events(
            group,
            region=region,
            start_ms=int(span.start.timestamp() * 1000),
            end_ms=int(span.end.timestamp() * 1000),
        ):
            stamp = int(event.get("timestamp") or 0)
            key = f"{event.get('logStreamName')}/{event.get('eventId')}"
            if cursor is not None and stamp == cursor.timestamp and key in cursor.seen:
                continue
            newest = newest.advance(stamp, key) if newest else LogCursor(stamp, frozenset({key}))
            keys.append(key)
            block.append(str(event.get("message") or ""))
            if len(block) >= BLOCK_LINES:
                flush()
        if block:
            flush()
    except AwsNotFound as exc:
        if has_gpus:
            out.failed = True
            ctx.scope_error(
                scope_error(
                    exc,
                    source=reader.source,
                    scope=f"{account}/{region}",
                    what=f"reading flow-log group {group}",
                )
            )
        else:
            log.info("aws_flow_log_group_missing", account=account, region=region, group=group)
        return out
    except SourceError as exc:
        out.failed = True
        ctx.scope_error(
            scope_error(
                exc,
                source=reader.source,
                scope=f"{account}/{region}",
                what=f"reading flow-log group {group}",
            )
        )
        return out
    if span.writes_checkpoint and newest is not None and newest != cursor:
        out.checkpoints.append((None, scope, newest.encode()))
    return out
