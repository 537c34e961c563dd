"""providers.kubernetes.follow: a followed audit log gives the sessions of a whole-file read,
emitted as events arrive and completed when their later stage record comes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.contracts import AuditWindow, CollectContext, FollowableSource, SourceEnv
from agent.models import Session
from providers.kubernetes.audit import KubernetesAuditFilesConfig, KubernetesAuditFilesSource
from providers.kubernetes.follow import AuditLineParser

DATA = Path(__file__).resolve().parents[2] / "data" / "k8s" / "audit" / "gpu-lab"
NODES = {"ml-team/trainer-0": "ip-10-0-1-23.ec2.internal"}
STREAM_ID = "0b6c8e5a-1f0e-4a51-9d6f-5a7a11e10001"  # ResponseStarted, then ResponseComplete


def _source(patterns: list[str]) -> KubernetesAuditFilesSource:
    config = KubernetesAuditFilesConfig.model_validate(
        {"cluster": "gpu-lab", "paths": patterns, "nodes": NODES}, context={"base_dir": DATA}
    )
    env = SourceEnv(name="k8s-audit", base_dir=DATA, clock=lambda: datetime.now(UTC))
    return KubernetesAuditFilesSource.from_config(config, env=env)


def _ctx() -> CollectContext:
    return CollectContext(
        window=AuditWindow(since=None, until=None), clock=lambda: datetime.now(UTC)
    )


def test_the_audit_source_follows_plain_files_and_leaves_gzip_archives(tmp_path: Path) -> None:
    for name in ("audit.log", "audit-1.log", "audit-0.log.gz"):
        (tmp_path / name).write_text("")
    source = _source([str(tmp_path / "audit*")])
    assert isinstance(source, FollowableSource)
    assert [p.name for p in source.follow_paths()] == ["audit-1.log", "audit.log"]


@pytest.mark.parametrize("size", [1, 3, 100])
@pytest.mark.parametrize("restart", [False, True])
def test_any_chunking_gives_the_sessions_of_a_whole_file_read(size: int, restart: bool) -> None:
    path = DATA / "audit.log"
    source = _source([str(path)])
    whole = {s.key: s for b in source.sessions(_ctx()) for s in b.sessions}
    lines = path.read_text().splitlines()
    parser = source.line_parser(path, state=None)
    last: dict[str, Session] = {}
    for start in range(0, len(lines), size):
        for session in parser.feed(lines[start : start + size], first_line=start + 1, ctx=_ctx()):
            last[session.key] = session
        if restart:
            parser = source.line_parser(path, state=json.loads(json.dumps(parser.state())))
    assert last == whole


def test_an_exec_stream_is_emitted_when_it_opens_and_again_when_it_closes() -> None:
    path = DATA / "audit.log"
    lines = [line for line in path.read_text().splitlines() if STREAM_ID in line]
    parser = _source([str(path)]).line_parser(path, state=None)
    (opened,) = parser.feed(lines[:1], first_line=1, ctx=_ctx())
    assert opened.ended_at is None and opened.attributes["stage"] == "ResponseStarted"
    assert [o["access"]["key"] for o in parser.state()["open"]] == [opened.key]
    (closed,) = parser.feed(lines[1:], first_line=2, ctx=_ctx())
    assert closed.key == opened.key and closed.ended_at is not None
    assert parser.state()["open"] == []


def test_non_json_lines_are_quarantined_and_unrelated_events_skipped() -> None:
    parser = AuditLineParser(
        source="k8s", cluster="c", locator="audit.log", resolve=lambda _n, _p: None
    )
    ctx = _ctx()
    noise = '{"kind":"Event","verb":"list","objectRef":{"resource":"nodes"}}'
    assert parser.feed(["{not json", noise, ""], first_line=7, ctx=ctx) == ()
    assert [q.position for q in ctx.quarantined] == ["line 7"]
    assert (ctx.read, ctx.ignored) == (2, 1)


def test_a_damaged_state_starts_without_open_streams() -> None:
    parser = AuditLineParser(
        source="k8s",
        cluster="c",
        locator="audit.log",
        resolve=lambda _n, _p: None,
        state={"open": [{"access": {"key": 1}}]},
    )
    assert parser.state() == {"open": []}
