"""Gzip bombs: a small .gz that inflates far past what its reader allows is refused or cut,
naming the file, within bounded memory, and the other files of the run are still read.

Every bomb here is a VALID gzip of content the reader would otherwise accept (a CloudTrail
session inside ``{"Records": [...]}`` padding, a Kubernetes exec event inside a JSON list, a
flow-log line with no end), so without the limits each test would see it read. Limits are
lowered (``monkeypatch`` in process, ``bomb_probe`` in a fresh process) so bombs stay small.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.contracts import AuditWindow, CollectContext, SourceEnv
from providers.aws import bounded, fastscan
from providers.aws.files import CloudTrailFilesSource, Unreadable, parse_document, parse_stream
from tests.reliability.bomb_probe import GPU
from tests.reliability.launchers import run_probe

NOW = datetime(2026, 11, 25, tzinfo=UTC)
MiB = 1 << 20
LIMIT = 4 * MiB
"""Lowered decompressed-size limit (and flow-log chunk/line size) of these tests."""
BOMB_MIB = 256
"""How far each bomb inflates: 64 times the lowered limit, from a file of a few hundred KB."""
GROWTH_BOUND_KIB = 64 * 1024
"""Peak-RSS growth allowed while a bomb is read: a few limits, never the 256 MiB inside."""


def _deflate(data: bytes, mode: int) -> bytes:
    """Raw deflate of ``data`` on its own (a full flush resets history, so pieces concatenate)."""
    encoder = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return encoder.compress(data) + encoder.flush(mode)


def gzip_bomb(head: bytes, filler: bytes, copies: int, tail: bytes, *, members: bool) -> bytes:
    """A valid gzip of ``head + filler * copies + tail``: one member (header, one deflate
    stream, CRC and size trailer) or, with ``members``, one member per filler copy."""
    if members:
        return gzip.compress(head) + gzip.compress(filler) * copies + gzip.compress(tail)
    crc = zlib.crc32(head)
    for _ in range(copies):
        crc = zlib.crc32(filler, crc)
    crc = zlib.crc32(tail, crc)
    size = len(head) + len(filler) * copies + len(tail)
    body = (
        _deflate(head, zlib.Z_FULL_FLUSH)
        + _deflate(filler, zlib.Z_FULL_FLUSH) * copies
        + _deflate(tail, zlib.Z_FINISH)
    )
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + body + struct.pack("<II", crc, size & 0xFFFFFFFF)


def make_ctx() -> CollectContext:
    ctx = CollectContext(window=AuditWindow(since=None, until=None), clock=lambda: NOW)
    ctx.inventory = (GPU,)
    return ctx


# ----------------------------------------------------------------------------- CloudTrail


def start_session(i: int) -> bytes:
    return json.dumps(
        {
            "eventVersion": "1.09",
            "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::111122223333:user/u{i}"},
            "eventTime": f"2026-11-24T10:{i:02d}:00Z",
            "eventSource": "ssm.amazonaws.com",
            "eventName": "StartSession",
            "awsRegion": "us-east-1",
            "sourceIPAddress": "1.2.4.8",
            "requestParameters": {"target": "i-0a1b2c3d4e5f60001"},
            "responseElements": {"sessionId": f"s-{i}"},
            "eventID": f"evt-{i}",
            "recipientAccountId": "111122223333",
        },
        separators=(",", ":"),
    ).encode()


def trail_bomb(*, inflated_mib: int = BOMB_MIB, members: bool = False) -> bytes:
    """An S3-delivery-shaped document with one session, padded to ``inflated_mib`` MiB."""
    head = b'{"Records":[' + start_session(1)
    return gzip_bomb(head, b" " * MiB, inflated_mib, b"]}", members=members)


def trail_source(paths: list[Path]) -> CloudTrailFilesSource:
    env = SourceEnv(name="trail", base_dir=paths[0].parent, clock=lambda: NOW)
    return CloudTrailFilesSource.from_config(
        {"type": "cloudtrail-files", "paths": [str(p) for p in paths]}, env=env
    )


@pytest.mark.parametrize("members", [False, True], ids=["one-member", "many-members"])
def test_a_cloudtrail_gz_inflating_past_the_limit_is_refused_by_name_and_the_rest_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, members: bool
) -> None:
    monkeypatch.setattr(fastscan, "MAX_DECOMPRESSED_BYTES", LIMIT)
    bomb = tmp_path / "a-bomb.json.gz"
    bomb.write_bytes(trail_bomb(members=members))
    good = tmp_path / "b-good.json.gz"
    good.write_bytes(gzip.compress(b'{"Records":[' + start_session(2) + b"]}"))
    ctx = make_ctx()

    batches = list(trail_source([bomb, good]).sessions(ctx))

    assert bomb.stat().st_size < MiB  # small on disk: the on-disk limit does not apply
    assert [(e.scope, e.code) for e in ctx.scope_errors] == [(str(bomb), "too_large")]
    assert f"{LIMIT}-byte limit" in ctx.scope_errors[0].message
    assert ctx.scope_errors[0].remediation and "gzip bomb" in ctx.scope_errors[0].remediation
    assert [(b.unit, len(b.sessions)) for b in batches] == [(str(good), 1)]


def test_a_cloudtrail_gz_inflating_to_exactly_the_limit_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = b'{"Records":[' + start_session(1) + b"]}"
    padded = body[:-2] + b" " * (LIMIT - len(body)) + b"]}"
    monkeypatch.setattr(fastscan, "MAX_DECOMPRESSED_BYTES", len(padded))
    path = tmp_path / "full.json.gz"
    path.write_bytes(gzip.compress(padded))
    ctx = make_ctx()

    (batch,) = trail_source([path]).sessions(ctx)

    assert ctx.scope_errors == [] and len(batch.sessions) == 1
    monkeypatch.setattr(fastscan, "MAX_DECOMPRESSED_BYTES", len(padded) - 1)
    with pytest.raises(Unreadable) as refused:
        parse_document(path.read_bytes())
    assert refused.value.code == "too_large"


def test_an_s3_body_is_inflated_and_read_only_up_to_the_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fastscan, "MAX_DECOMPRESSED_BYTES", LIMIT)
    body = io.BufferedReader(io.BytesIO(trail_bomb()), buffer_size=1 << 16)  # as open_object
    with pytest.raises(Unreadable) as bomb:
        parse_stream(body)
    assert bomb.value.code == "too_large"
    assert body.tell() < 64 * 1024 + bounded.READ_BYTES  # stopped early, not read to the end

    monkeypatch.setattr(fastscan, "MAX_FILE_BYTES", 1024)
    plain = io.BufferedReader(io.BytesIO(b'{"Records":[]}' + b" " * 4096))
    with pytest.raises(Unreadable) as big:
        parse_stream(plain)
    assert big.value.code == "too_large" and "1024-byte limit" in big.value.message


def test_a_truncated_or_corrupt_bomb_is_still_reported_as_corrupt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fastscan, "MAX_DECOMPRESSED_BYTES", 64 * MiB)
    data = trail_bomb(inflated_mib=8)
    for broken in (data[:-8], data[:200] + b"\xff" * 64 + data[264:]):
        with pytest.raises(Unreadable) as caught:
            parse_document(broken)
        assert caught.value.code == "corrupt_gzip"


# ----------------------------------------------------------------------------- kubernetes


EXEC_EVENT = (
    b'{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata",'
    b'"auditID":"0b6c8e5a-1f0e-4a51-9d6f-5a7a11e10001","stage":"ResponseComplete",'
    b'"requestURI":"/api/v1/namespaces/ml-team/pods/trainer-0/exec?command=bash","verb":"create",'
    b'"user":{"username":"alice@example.com"},"sourceIPs":["203.0.113.10"],'
    b'"objectRef":{"resource":"pods","namespace":"ml-team","name":"trainer-0",'
    b'"apiVersion":"v1","subresource":"exec"},'
    b'"requestReceivedTimestamp":"2026-11-27T10:00:00.120533Z",'
    b'"stageTimestamp":"2026-11-27T10:00:00.180221Z","responseStatus":{"code":101}}'
)


def k8s_bomb() -> bytes:
    """A pretty-printed JSON list holding one exec event behind lines of blanks."""
    return gzip_bomb(
        b"[\n", (b" " * 1023 + b"\n") * 1024, BOMB_MIB, EXEC_EVENT + b"\n]\n", members=False
    )


def test_a_kubernetes_gz_document_inflating_past_the_limit_is_read_line_by_line_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from providers.kubernetes import auditfiles
    from providers.kubernetes.audit import KubernetesAuditFilesSource

    monkeypatch.setattr(auditfiles, "MAX_DOCUMENT_BYTES", LIMIT)
    bomb = tmp_path / "audit-bomb.log.gz"
    bomb.write_bytes(k8s_bomb())
    (tmp_path / "audit.log").write_bytes(EXEC_EVENT.replace(b"e10001", b"e10002") + b"\n")
    env = SourceEnv(name="k8s", base_dir=tmp_path, clock=lambda: NOW)
    source = KubernetesAuditFilesSource.from_config(
        {"type": "kubernetes-audit", "cluster": "c", "paths": [str(tmp_path / "audit*")]}, env=env
    )
    ctx = make_ctx()

    batches = {b.unit: len(b.sessions) for b in source.sessions(ctx)}

    assert batches == {str(bomb): 1, str(tmp_path / "audit.log"): 1}  # the event's own line
    assert [(q.locator, q.position) for q in ctx.quarantined] == [
        (str(bomb), "line 1"),  # "[": not a JSON line, and the document is not tried whole
        (str(bomb), f"line {BOMB_MIB * 1024 + 3}"),  # "]"
    ]
    assert ctx.read == ctx.ignored + ctx.quarantined_total + 2


# ----------------------------------------------------------------------------- flow logs


HEADER = (
    b"version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes "
    b"start end action log-status\n"
)


def flow_line(src: str, start: int = 1795500000) -> bytes:
    return (
        f"2 111122223333 eni-0a1b2c3d4e5f6a001 {src} 10.0.1.10 50000 22 6 10 840 "
        f"{start} {start + 30} ACCEPT OK\n"
    ).encode()


def flow_bomb(*, lead: bytes = b"") -> bytes:
    """Header, one hit, a line of ``BOMB_MIB`` MiB with no end, another hit; one member."""
    head = lead + HEADER + flow_line("1.2.4.8")
    return gzip_bomb(head, b"x" * MiB, BOMB_MIB, b"\n" + flow_line("5.6.7.8"), members=False)


@pytest.mark.parametrize(
    ("lead", "path"), [(b"", "fast"), (b"\n", "exact")], ids=["vectorised", "line-by-line"]
)
def test_a_flow_log_gz_with_an_endless_line_quarantines_that_line_and_reads_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lead: bytes, path: str
) -> None:
    from providers.aws import flowfast
    from providers.aws.flowlogs import VpcFlowFilesSource

    monkeypatch.setattr(flowfast, "CHUNK_BYTES", LIMIT)
    (tmp_path / "bomb.log.gz").write_bytes(flow_bomb(lead=lead))
    env = SourceEnv(name="flows", base_dir=tmp_path, clock=lambda: NOW)
    source = VpcFlowFilesSource.from_config(
        {"type": "vpc-flow-files", "paths": [str(tmp_path / "*.gz")]}, env=env
    )
    ctx = make_ctx()

    (batch,) = source.sessions(ctx)

    line = 3 + len(lead)  # the header and the first hit come first
    assert sorted(str(s.source_ip) for s in batch.sessions) == ["1.2.4.8", "5.6.7.8"]
    assert [q.position for q in ctx.quarantined] == [f"line {line}"]
    assert ctx.scope_errors == []


@settings(max_examples=60, deadline=None)
@given(
    members=st.lists(st.binary(max_size=3000), min_size=1, max_size=6),
    padding=st.integers(0, 40),
    cut=st.integers(1, 5000),
    piece=st.sampled_from([None, 1, 64, 4096]),
)
def test_inflating_in_any_pieces_gives_what_gzip_gives(
    members: list[bytes], padding: int, cut: int, piece: int | None
) -> None:
    data = b"".join(gzip.compress(m, mtime=0) for m in members) + b"\0" * padding
    pieces = [data[i : i + cut] for i in range(0, len(data), cut)]
    out = list(bounded.inflate(pieces, piece_bytes=piece))
    assert b"".join(out) == gzip.decompress(data)
    assert piece is None or all(len(p) <= piece for p in out)


def test_many_empty_members_and_then_data_still_decode() -> None:
    data = gzip.compress(b"", mtime=0) * 100_000 + gzip.compress(b"abc") + b"\0" * 5
    assert bounded.gunzip(data, limit=10) == b"abc"  # linear: each member costs its own size


def test_inflated_pieces_never_exceed_the_piece_size_whatever_the_ratio() -> None:
    data = gzip_bomb(b"", b"\0" * MiB, 64, b"", members=False)
    sizes = [len(p) for p in bounded.inflate([data], piece_bytes=MiB // 4)]
    assert sum(sizes) == 64 * MiB and max(sizes) <= MiB // 4
    with pytest.raises(bounded.InflateLimitError):
        for _ in bounded.inflate([data], limit=8 * MiB, piece_bytes=MiB):
            pass


# ----------------------------------------------------------------------------- memory


def _probe(kind: str, paths: list[Path]) -> dict[str, object]:
    return run_probe("bomb_probe", kind, str(LIMIT), *map(str, paths))


@pytest.mark.parametrize("kind", ["cloudtrail-files", "kubernetes-audit", "vpc-flow-files"])
def test_reading_a_bomb_stays_within_bounded_memory(
    kind: str, tmp_path: Path, report: Callable[[str, dict[str, Any]], None]
) -> None:
    bomb, good = tmp_path / "a-bomb.log.gz", tmp_path / "b-good.log"
    if kind == "cloudtrail-files":
        bomb.write_bytes(trail_bomb())
        good.write_bytes(b'{"Records":[' + start_session(2) + b"]}")
    elif kind == "kubernetes-audit":
        bomb.write_bytes(k8s_bomb())
        good.write_bytes(EXEC_EVENT.replace(b"e10001", b"e10002") + b"\n")
    else:
        bomb.write_bytes(flow_bomb())
        good.write_bytes(HEADER + flow_line("9.9.9.9"))

    result = _probe(kind, [bomb, good] if kind != "kubernetes-audit" else [tmp_path / "*"])

    growth = int(result["after_kib"]) - int(result["before_kib"])  # type: ignore[call-overload]
    print(f"{kind}: peak RSS grew {growth // 1024} MiB for a {BOMB_MIB} MiB bomb: {result}")
    problems = [*result["scope_errors"], *result["quarantined"]]  # type: ignore[misc]
    report(
        f"bomb-{kind}",
        {
            "source": kind,
            "bomb_mib": BOMB_MIB,
            "compressed_kib": bomb.stat().st_size // 1024,
            "limit_mib": LIMIT // (1024 * 1024),
            "growth_mib": growth // 1024,
            "named": any(str(bomb) in p for p in problems),
            "good_sessions": result["sessions"],
        },
    )
    assert result["error"] is None, "the source must not raise"
    assert growth < GROWTH_BOUND_KIB, f"{kind} held the bomb: +{growth // 1024} MiB"
    assert int(result["sessions"]) >= 1  # type: ignore[call-overload]  # the good file
    assert any(str(bomb) in p for p in problems), "the bomb is named"
