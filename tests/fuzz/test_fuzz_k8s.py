"""Kubernetes audit events under hostile input: wrappers, events, webhook bodies, files."""

from __future__ import annotations

import gzip
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agent.contracts import AuditWindow, CollectContext, SourceEnv
from agent.models import EvidenceRef
from providers.kubernetes.audit import KubernetesAuditFilesSource, parse_event_list
from providers.kubernetes.events import access_from, to_session
from providers.kubernetes.wrappers import RawEvent, unwrap
from tests.fuzz.hostile import FUZZ, NASTY_JSON, check, hostile_values, mutated
from tests.fuzz.seeds import json_records

SEEDS = json_records("k8s/audit/*.jsonl", "k8s/audit/*.json", "k8s/webhook/*.json")
records = st.one_of(st.sampled_from(SEEDS).flatmap(mutated), hostile_values)
EVIDENCE = EvidenceRef(kind="file", locator="audit.log", position="line 1")


def _events(record: Any) -> list[Any]:
    out = []
    for _suffix, raw in unwrap(record):
        if isinstance(raw, RawEvent):
            access = access_from(raw)
            if access is not None:
                out.append(
                    to_session(access, cluster="gpu", source="k8s", node=None, evidence=EVIDENCE)
                )
    return out


@FUZZ
@given(records)
def test_a_hostile_audit_record_unwraps_to_sessions_or_record_errors(record: Any) -> None:
    check("k8s.events", lambda: _events(record))


bodies = st.one_of(
    st.lists(records, max_size=5).map(
        lambda items: json.dumps(
            {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}
        ).encode()
    ),
    st.binary(max_size=200),
    records.map(lambda r: json.dumps(r).encode()),
    st.sampled_from(NASTY_JSON).map(
        lambda x: b'{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [' + x + b"]}"
    ),
)


@FUZZ
@given(bodies)
def test_a_hostile_webhook_body_is_sessions_with_item_errors_or_a_record_error(body: bytes) -> None:
    check("k8s.webhook", lambda: parse_event_list(body, cluster="gpu"))


def _file(lines: list[Any], gz: bool, junk: bytes, nasty: bytes) -> bytes:
    body = b"\n".join([*(json.dumps(line).encode() for line in lines), nasty]) + junk
    return gzip.compress(body) if gz else body


def _collect(folder: Path) -> tuple[CollectContext, int]:
    ctx = CollectContext(
        window=AuditWindow(since=None, until=None), clock=lambda: datetime.now(UTC)
    )
    env = SourceEnv(name="kubernetes-audit[0]", base_dir=folder, clock=ctx.clock)
    source = KubernetesAuditFilesSource.from_config(
        {"type": "kubernetes-audit", "cluster": "gpu", "paths": [str(folder / "*")]}, env=env
    )
    return ctx, sum(len(b.sessions) for b in source.sessions(ctx))


@FUZZ
@given(
    st.lists(
        st.builds(
            _file,
            st.lists(records, max_size=5),
            st.booleans(),
            st.binary(max_size=6),
            st.one_of(st.just(b""), st.sampled_from(NASTY_JSON)),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_the_audit_files_source_counts_every_event_read_as_a_session_ignored_or_quarantined(
    files: list[bytes],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for i, data in enumerate(files):
            (Path(tmp) / f"{i}.log").write_bytes(data)
        result = check("k8s.files", lambda: _collect(Path(tmp)))
        if result is None:
            return
        ctx, sessions = result
        assert ctx.read == sessions + ctx.ignored + ctx.quarantined_total
        for q in ctx.quarantined:
            assert q.locator.startswith(tmp) and q.position and q.reason
