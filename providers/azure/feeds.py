"""Session feeds: Activity Log, Log Analytics (Bastion, sign-ins) and storage blobs (Bastion,
NSG / VNet flow logs). Each feed reads one checkpoint scope ``azure:{kind}:{id}`` and yields a
SessionBatch whose checkpoint is the ISO time of the newest record processed.

Log Analytics, Activity Log and Bastion blobs re-read ``overlap_minutes`` before their
checkpoint (late ingestion; their session keys are stable, so re-reads upsert). Flow logs read
strictly after the checkpoint: a re-read could split a flow session and change its key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from agent.contracts import CollectContext, SessionBatch
from agent.errors import RecordError, SourceError
from agent.models import ScopeError, Session
from providers.azure.activity import ACTIVITY_PROVIDERS, activity_sessions
from providers.azure.client import AzureClient, BlobRef, LogsResult
from providers.azure.config import AzureConfig, BlobLocation
from providers.azure.flows import FlowHit, aggregate_flows, iter_records, parse_tuple, record_tuples
from providers.azure.inventory import InventoryIndex, scope_error_from
from providers.azure.logs import (
    BASTION_TABLE,
    bastion_from_record,
    bastion_from_row,
    signin_from_row,
)
from providers.azure.normalize import parse_time
from providers.azure.queries import bastion_query, signin_query
from providers.azure.window import Window, merge_sessions, next_checkpoint, read_window

__all__ = ["Feeds"]

log = structlog.get_logger(__name__)

MAX_BLOB_BYTES = 256 * 1024 * 1024
"""One diagnostic-settings blob (an hour of Bastion logs or flow tuples); larger ones are not
downloaded: they are reported as a ``too_large`` scope error naming the blob."""


class BlobTooLarge(SourceError):
    """A listed blob over ``MAX_BLOB_BYTES``."""

    code = "too_large"


_HOUR_PATH = re.compile(r"y=(\d{4})/m=(\d{2})/d=(\d{2})/h=(\d{2})")


def _event_in(window: Window, event: dict[str, Any]) -> bool:
    """Activity events outside the window are dropped; unreadable times go on to quarantine."""
    try:
        return window.contains(parse_time(event.get("eventTimestamp"), field="eventTimestamp"))
    except RecordError:
        return True


def _blob_hour(name: str) -> datetime | None:
    found = _HOUR_PATH.search(name)
    if not found:
        return None
    year, month, day, hour = (int(x) for x in found.groups())
    return datetime(year, month, day, hour, tzinfo=UTC)


class Feeds:
    """Reads every configured access stream for one source."""

    def __init__(
        self,
        *,
        client: AzureClient,
        config: AzureConfig,
        source: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.client = client
        self.config = config
        self.source = source
        self.clock = clock
        self.overlap = timedelta(minutes=config.overlap_minutes)

    def _scope_error(self, ctx: CollectContext, exc: SourceError, *, scope: str) -> None:
        log.warning("azure_scope_failed", scope=scope, code=exc.code, error=exc.message)
        ctx.scope_error(scope_error_from(exc, source=self.source, scope=scope))

    def _window(self, ctx: CollectContext, scope: str, *, overlap: bool = True) -> Window:
        return read_window(
            ctx, scope, now=self.clock(), overlap=self.overlap if overlap else timedelta(0)
        )

    def _emit(
        self,
        ctx: CollectContext,
        unit: str,
        sessions: list[Session],
        *,
        scope: str,
        checkpoint: str | None,
    ) -> SessionBatch:
        ctx.on_progress(unit, len(sessions))
        log.info("azure_batch", unit=unit, sessions=len(sessions), checkpoint=checkpoint)
        return SessionBatch(
            unit=unit, sessions=tuple(sessions), checkpoint_scope=scope, checkpoint=checkpoint
        )

    # -- Activity Log ------------------------------------------------------------------------
    def activity(self, ctx: CollectContext, subscriptions: list[str]) -> Iterator[SessionBatch]:
        for sub in subscriptions:
            scope = f"azure:activity:{sub}"
            window = self._window(ctx, scope)
            events: list[tuple[str, dict[str, Any]]] = []
            failed = False
            for provider in ACTIVITY_PROVIDERS:
                try:
                    for i, event in enumerate(
                        self.client.activity_events(
                            sub, start=window.start, end=window.end, provider=provider
                        )
                    ):
                        events.append((f"{provider} event {i}", event))
                except SourceError as exc:
                    self._scope_error(ctx, exc, scope=f"subscriptions/{sub}")
                    failed = True
                    break
            if failed and not events:
                continue
            ctx.count_read(len(events))
            kept = [(p, e) for p, e in events if _event_in(window, e)]
            ctx.count_ignored(len(events) - len(kept))
            result = activity_sessions(kept, source=self.source, subscription_id=sub)
            ctx.count_ignored(result.ignored)
            for position, reason in result.quarantined:
                ctx.quarantine(
                    source=self.source,
                    locator=f"activitylog:subscriptions/{sub}",
                    position=position,
                    reason=reason,
                )
            checkpoint = None if failed else next_checkpoint(window.previous, result.newest)
            yield self._emit(
                ctx,
                f"subscriptions/{sub}/activity-log",
                result.sessions,
                scope=scope,
                checkpoint=checkpoint,
            )

    # -- Log Analytics -----------------------------------------------------------------------
    def _query(
        self,
        ctx: CollectContext,
        *,
        kind: str,
        query: str,
        table: str,
        to_session: Callable[[dict[str, Any]], Session | None],
    ) -> Iterator[SessionBatch]:
        workspace = self.config.workspace_id
        assert workspace is not None  # noqa: S101 - type narrowing; the caller checked it
        scope = f"azure:{kind}:{workspace}"
        window = self._window(ctx, scope)
        try:
            result: LogsResult = self.client.query_logs(
                workspace, query, start=window.start, end=window.end
            )
        except SourceError as exc:
            self._scope_error(ctx, exc, scope=f"workspaces/{workspace}")
            return
        sessions: list[Session] = []
        newest: datetime | None = None
        ctx.count_read(len(result.rows))
        for i, row in enumerate(result.rows):
            try:
                logged = parse_time(row.get("TimeGenerated"), field="TimeGenerated")
                if not window.contains(logged):
                    ctx.count_ignored()
                    continue
                newest = logged if newest is None else max(newest, logged)
                session = to_session(row)
            except RecordError as exc:
                ctx.quarantine(
                    source=self.source,
                    locator=f"loganalytics:workspaces/{workspace}/{table}",
                    position=f"row {i}",
                    reason=exc.message,
                )
                continue
            if session is None:
                ctx.count_ignored()
            else:
                sessions.append(session)
        sessions, merged = merge_sessions(sessions)
        ctx.count_ignored(merged)
        checkpoint = next_checkpoint(window.previous, newest)
        if result.partial_error is not None:
            checkpoint = None
            ctx.scope_error(
                ScopeError(
                    source=self.source,
                    scope=f"workspaces/{workspace}",
                    code="partial_result",
                    message=f"{table}: Log Analytics returned a partial result "
                    f"({result.partial_error}); kept {len(result.rows)} rows, checkpoint not moved",
                    remediation="narrow the audit window or retry; partial results usually mean "
                    "a query limit or timeout was hit",
                )
            )
        yield self._emit(
            ctx, f"workspaces/{workspace}/{kind}", sessions, scope=scope, checkpoint=checkpoint
        )

    def bastion_workspace(self, ctx: CollectContext) -> Iterator[SessionBatch]:
        workspace = str(self.config.workspace_id)
        yield from self._query(
            ctx,
            kind="bastion",
            query=bastion_query(),
            table=BASTION_TABLE,
            to_session=lambda row: bastion_from_row(
                row, source=self.source, workspace_id=workspace
            ),
        )

    def signins(self, ctx: CollectContext) -> Iterator[SessionBatch]:
        workspace = str(self.config.workspace_id)
        yield from self._query(
            ctx,
            kind="signin",
            query=signin_query(),
            table="SigninLogs",
            to_session=lambda row: signin_from_row(row, source=self.source, workspace_id=workspace),
        )

    # -- Storage blobs -----------------------------------------------------------------------
    def _blobs(
        self, ctx: CollectContext, where: BlobLocation, window: Window
    ) -> Iterator[tuple[BlobRef, bytes]] | None:
        lower = window.start
        try:
            blobs = sorted(
                self.client.list_blobs(where.account_url, where.container, where.prefix),
                key=lambda b: b.name,
            )
        except SourceError as exc:
            self._scope_error(ctx, exc, scope=f"{where.account_url}/{where.container}")
            return None
        wanted = []
        for blob in blobs:
            hour = _blob_hour(blob.name)
            if hour is not None and (hour + timedelta(hours=1) < lower or hour > window.end):
                continue
            wanted.append(blob)
        return self._read_each(ctx, where, wanted)

    def _read_each(
        self, ctx: CollectContext, where: BlobLocation, blobs: list[BlobRef]
    ) -> Iterator[tuple[BlobRef, bytes]]:
        for blob in blobs:
            if blob.size is not None and blob.size > MAX_BLOB_BYTES:
                self._scope_error(
                    ctx,
                    BlobTooLarge(
                        f"{blob.name}: {blob.size} bytes, over the {MAX_BLOB_BYTES}-byte limit "
                        "of one diagnostic-settings blob",
                        hint="not downloaded; check what writes to this container",
                    ),
                    scope=f"{where.account_url}/{where.container}/{blob.name}",
                )
                continue
            try:
                data = self.client.read_blob(where.account_url, where.container, blob.name)
            except SourceError as exc:
                self._scope_error(
                    ctx, exc, scope=f"{where.account_url}/{where.container}/{blob.name}"
                )
                continue
            yield blob, data

    def bastion_blobs(self, ctx: CollectContext) -> Iterator[SessionBatch]:
        where = self.config.bastion_blobs
        assert where is not None  # noqa: S101 - type narrowing; the caller checked it
        scope = f"azure:bastion-blobs:{where.account_url}/{where.container}/{where.prefix}"
        window = self._window(ctx, scope)
        errors_before = len(ctx.scope_errors)
        blobs = self._blobs(ctx, where, window)
        if blobs is None:
            return
        sessions: list[Session] = []
        newest: datetime | None = None
        for blob, data in blobs:
            locator = f"{where.account_url}/{where.container}/{blob.name}"
            for position, record in iter_records(data):
                ctx.count_read()
                try:
                    if isinstance(record, RecordError):
                        raise record
                    session = bastion_from_record(
                        record, source=self.source, locator=locator, position=position
                    )
                    logged = parse_time(record.get("time"), field="time")
                except RecordError as exc:
                    ctx.quarantine(
                        source=self.source, locator=locator, position=position, reason=exc.message
                    )
                    continue
                if not window.contains(logged):
                    ctx.count_ignored()
                    continue
                newest = logged if newest is None else max(newest, logged)
                sessions.append(session)
        sessions, merged = merge_sessions(sessions)
        ctx.count_ignored(merged)
        clean = len(ctx.scope_errors) == errors_before
        checkpoint = next_checkpoint(window.previous, newest) if clean else None
        yield self._emit(
            ctx,
            f"{where.account_url}/{where.container}",
            sessions,
            scope=scope,
            checkpoint=checkpoint,
        )

    def flow_logs(
        self, ctx: CollectContext, index: InventoryIndex, where: BlobLocation
    ) -> Iterator[SessionBatch]:
        scope = f"azure:flow-logs:{where.account_url}/{where.container}/{where.prefix}"
        window = self._window(ctx, scope, overlap=False)
        errors_before = len(ctx.scope_errors)
        blobs = self._blobs(ctx, where, window)
        if blobs is None:
            return
        ports = set(self.config.admin_ports)
        hits: list[FlowHit] = []
        newest: datetime | None = None
        for blob, data in blobs:
            locator = f"{where.account_url}/{where.container}/{blob.name}"
            for position, record in iter_records(data):
                try:
                    if isinstance(record, RecordError):
                        raise record
                    raw_tuples = list(record_tuples(record, position=position))
                except RecordError as exc:
                    ctx.count_read()
                    ctx.quarantine(
                        source=self.source, locator=locator, position=position, reason=exc.message
                    )
                    continue
                ctx.count_read(len(raw_tuples))
                for raw in raw_tuples:
                    try:
                        flow = parse_tuple(raw.text, layout=raw.layout)
                    except RecordError as exc:
                        ctx.quarantine(
                            source=self.source,
                            locator=locator,
                            position=raw.position,
                            reason=exc.message,
                        )
                        continue
                    in_window = window.contains(flow.time)
                    if in_window:
                        newest = flow.time if newest is None else max(newest, flow.time)
                    vm_id, how = None, ""
                    if in_window and flow.inbound and flow.accepted and flow.dst_port in ports:
                        vm_id, how = self._target(index, raw.mac, flow.dst_ip)
                    if vm_id is None:
                        ctx.count_ignored()
                        continue
                    hits.append(FlowHit(flow, vm_id, how, raw.rule, locator, raw.position))
        gap = timedelta(minutes=self.config.flow_gap_minutes)
        sessions, merged = aggregate_flows(hits, gap=gap, source=self.source)
        ctx.count_ignored(merged)
        # Tuples of VMs whose subscription could not be listed were dropped unattributed: the
        # checkpoint stays, so the next run attributes them once the inventory is whole.
        clean = len(ctx.scope_errors) == errors_before and not index.incomplete
        checkpoint = next_checkpoint(window.previous, newest) if clean else None
        if index.incomplete:
            log.warning(
                "azure_flow_checkpoint_held",
                container=where.container,
                incomplete=sorted(index.incomplete),
            )
        yield self._emit(
            ctx,
            f"{where.account_url}/{where.container}",
            sessions,
            scope=scope,
            checkpoint=checkpoint,
        )

    @staticmethod
    def _target(index: InventoryIndex, mac: str | None, dst_ip: str) -> tuple[str | None, str]:
        """GPU VM a tuple belongs to: by NIC MAC when the record has one, else by a private IP
        that exactly one GPU VM holds (private ranges repeat across VNets)."""
        if mac:
            return index.by_mac.get(mac), "mac"
        owners = index.by_ip.get(dst_ip) or set()
        return (next(iter(owners)), "private-ip") if len(owners) == 1 else (None, "")
