"""The vectorised flow-log reader finds the same hits, positions and counts as the per-line
reader (``FlowReader.lines``) and hands every chunk it cannot vouch for to that reader."""

from __future__ import annotations

import gzip
import io
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.contracts import AuditWindow, CollectContext
from agent.models import Accelerator, GpuInstance
from bench import gen_flowlogs
from providers.aws import flowfast
from providers.aws.bounded import text_lines
from providers.aws.flowfast import read_flow_stream
from providers.aws.flows import MAX_LINE_CHARS, FlowReader
from providers.aws.flowsessions import FlowHit, TargetIndex
from providers.aws.settings import FlowOptions

NOW = datetime(2026, 11, 25, tzinfo=UTC)
HEADER = " ".join(gen_flowlogs.V2_FIELDS)
GPU = GpuInstance(
    provider="aws",
    account="111122223333",
    region="us-east-1",
    instance_id="i-0a1b2c3d4e5f60001",
    instance_type="p5.48xlarge",
    accelerators=(Accelerator(model="nvidia-h100", count=8),),
    private_ips=("10.0.1.10",),
    network_interfaces=("eni-0a1b2c3d4e5f6a001",),
)


def make_ctx() -> CollectContext:
    return CollectContext(window=AuditWindow(since=None, until=None), clock=lambda: NOW)


def inventory_from_csv(path: Path) -> list[GpuInstance]:
    rows = path.read_text().splitlines()[1:]
    out = []
    for row in rows:
        _, account, region, iid, itype, ip, eni, _name = row.split(",")
        accs = () if itype.startswith("t3") else (Accelerator(model="nvidia-h100", count=8),)
        out.append(
            GpuInstance(
                provider="aws",
                account=account,
                region=region,
                instance_id=iid,
                instance_type=itype,
                accelerators=accs,
                private_ips=(ip,),
                network_interfaces=(eni,),
            )
        )
    return out


def exact(reader: FlowReader, data: bytes) -> tuple[list[FlowHit], tuple[int, int, int]]:
    ctx = make_ctx()
    hits = reader.lines(
        ctx,
        text_lines(io.BufferedReader(io.BytesIO(data)), max_line=MAX_LINE_CHARS),
        locator="f",
        account=None,
    )
    return hits, (ctx.read, ctx.ignored, ctx.quarantined_total)


def fast(reader: FlowReader, data: bytes) -> tuple[list[FlowHit], tuple[int, int, int], object]:
    ctx = make_ctx()
    result = read_flow_stream(ctx, reader, io.BytesIO(data), locator="f", account=None)
    assert result is not None
    return result[0], (ctx.read, ctx.ignored, ctx.quarantined_total), result[1]


@pytest.fixture
def reader() -> FlowReader:
    return FlowReader(options=FlowOptions(), index=TargetIndex([GPU]), source="flows")


def line(
    src: str = "1.2.4.8",
    dst: str = "10.0.1.10",
    port: int = 22,
    action: str = "ACCEPT",
    eni: str = "eni-0a1b2c3d4e5f6a001",
    start: int = 1795500000,
) -> str:
    end = start + 30
    return f"2 111122223333 {eni} {src} {dst} 50000 {port} 6 10 840 {start} {end} {action} OK"


def test_generated_v2_and_v5_logs_give_the_same_hits_and_counts(tmp_path: Path) -> None:
    gen_flowlogs.generate(tmp_path, size=1_500_000, files=4, fmt="mixed", hit_share=0.02)
    index = TargetIndex(inventory_from_csv(tmp_path / "inventory.csv"))
    reader = FlowReader(options=FlowOptions(), index=index, source="flows")
    total = 0
    for path in sorted((tmp_path / "flows").rglob("*.log.gz")):
        data = path.read_bytes()
        want_hits, want_counts = exact(reader, data)
        got_hits, got_counts, stats = fast(reader, data)
        assert got_hits == want_hits
        assert got_counts == want_counts
        assert stats.exact_chunks == 0 and stats.candidates < stats.rows / 10
        total += len(got_hits)
    assert total > 50


def test_line_numbers_hold_across_many_small_chunks(
    reader: FlowReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flowfast, "CHUNK_BYTES", 300)
    lines = [HEADER] + [
        line(port=22 if i % 7 == 0 else 443, start=1795500000 + 4000 * i) for i in range(60)
    ]
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    got_hits, got_counts, stats = fast(reader, data)
    assert (got_hits, got_counts) == exact(reader, data)
    assert stats.fast_chunks > 5
    assert [h.record.line for h in got_hits] == [2 + i for i in range(0, 60, 7)]


@pytest.mark.parametrize(
    "odd",
    [
        "",  # a blank line
        line() + " # a comment from the docs",
        line().replace(" ", "\t"),
        line().replace(" ", "  ", 1),
        "2 111122223333 eni-0a1b2c3d4e5f6a001 not-an-ip 10.0.1.10 1 22",  # short
    ],
    ids=["blank", "comment", "tabs", "double-space", "short"],
)
def test_a_chunk_arrow_cannot_vouch_for_takes_the_exact_path(reader: FlowReader, odd: str) -> None:
    text = "\n".join([HEADER, line(), odd, line(src="5.6.7.8", port=3389)]) + "\n"
    data = text.encode()
    got_hits, got_counts, stats = fast(reader, data)
    assert (got_hits, got_counts) == exact(reader, data)
    assert stats.exact_chunks == 1 and stats.fast_chunks == 0


def test_crlf_line_ends_stay_on_the_fast_path(reader: FlowReader) -> None:
    data = ("\r\n".join([HEADER, line(), line(port=443), line(src="5.6.7.8")]) + "\r\n").encode()
    got_hits, got_counts, stats = fast(reader, data)
    assert (got_hits, got_counts) == exact(reader, data)
    assert stats.fast_chunks == 1 and len(got_hits) == 2


def test_without_a_header_the_configured_layout_is_used(reader: FlowReader) -> None:
    data = (
        "\n".join([line(), line(action="REJECT"), line(eni="eni-other", dst="10.9.9.9")]) + "\n"
    ).encode()
    got_hits, got_counts, _ = fast(reader, data)
    assert (got_hits, got_counts) == exact(reader, data)
    assert got_counts == (3, 2, 0) and len(got_hits) == 1


def test_an_ipv6_destination_is_checked_by_the_exact_path(reader: FlowReader) -> None:
    v6 = GPU.model_copy(update={"private_ips": ("2001:db8::a",), "network_interfaces": ()})
    reader = FlowReader(options=FlowOptions(), index=TargetIndex([v6]), source="flows")
    text = "\n".join([HEADER, line(dst="2001:DB8:0::A", eni="eni-x"), line(dst="10.0.1.10")])
    got_hits, got_counts, stats = fast(reader, (text + "\n").encode())
    assert (got_hits, got_counts) == exact(reader, (text + "\n").encode())
    assert len(got_hits) == 1 and stats.candidates == 1


def test_a_header_without_the_needed_fields_is_left_to_the_exact_reader(
    reader: FlowReader,
) -> None:
    data = b"version account-id interface-id srcaddr\n2 1 eni-1 1.2.3.4\n"
    assert read_flow_stream(make_ctx(), reader, io.BytesIO(data), locator="f", account=None) is None


def test_a_corrupt_gzip_stream_raises_an_os_error(reader: FlowReader) -> None:
    data = gzip.compress((HEADER + "\n" + line() + "\n").encode() * 50)
    with pytest.raises((OSError, EOFError)):
        fast(reader, data[:40] + b"\x00" * 20 + data[60:])


def test_a_stream_left_early_stops_its_reader_thread(
    reader: FlowReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flowfast, "CHUNK_BYTES", 200)
    body = "\n".join([HEADER] + [line(start=1795500000 + i) for i in range(200)]) + "\n"
    chunks = flowfast._in_background(flowfast._chunks(io.BytesIO(gzip.compress(body.encode()))))
    assert next(chunks).startswith(b"version")
    chunks.close()  # returns: the producer saw the stop and ended
    assert not [t for t in threading.enumerate() if t.name == "chipwarden-flow-read"]
