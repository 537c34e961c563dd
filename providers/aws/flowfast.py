"""Vectorised VPC flow-log reading: filter by target and admin port BEFORE parsing records.

A flow-log file is decompressed in chunks of about ``CHUNK_BYTES`` (bounded memory). Each
chunk is tokenised by Apache Arrow's CSV reader (C++, space-delimited, only the columns the
filter needs, as strings), and one vectorised mask keeps the rows that can be hits:
``action == ACCEPT``, ``dstport`` an admin port, and the interface, instance or destination
address (or any IPv6 destination) belonging to a GPU instance. Only those lines, about 1%,
go through the exact per-record path (``FlowReader.block``: parse, select, quarantine), so
the sessions are the same as the normal path's. Every other row is counted read and
ignored without being validated. A chunk Arrow cannot vouch for (a blank or comment line,
tabs, CR, a wrong field count) is read by the exact path whole.

Needs ``pyarrow`` (``chipwarden[fast]``); without it ``available()`` is False and callers
keep the normal path.
"""

from __future__ import annotations

import io
import itertools
import os
import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

import structlog

from agent.contracts import CollectContext
from providers.aws.bounded import GZIP_MAGIC, inflate, over_long_line
from providers.aws.flowparse import FlowLayout, header_fields
from providers.aws.flows import FlowReader
from providers.aws.flowsessions import FlowHit

__all__ = [
    "CHUNK_BYTES",
    "FlowFastStats",
    "available",
    "flow_unit_key",
    "read_flow_stream",
]

log = structlog.get_logger(__name__)

CHUNK_BYTES: Final = 8 << 20
"""Raw text per vectorised chunk (the chunk, its lines and Arrow columns stay < ~40 MB), and
the longest line read: flow-log lines are < 1 KB, so a line this long (corrupt, hostile, a
gzip bomb without line ends) is quarantined without being held."""
_READ_BYTES: Final = 1 << 20

try:  # pragma: no cover - exercised when the fast extra is (not) installed
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv
except ImportError:  # pragma: no cover
    pa = pc = pcsv = None


def available() -> bool:
    """True when pyarrow is installed (``pip install chipwarden[fast]``)."""
    return pa is not None


@dataclass
class FlowFastStats:
    """What the fast path did with one stream (for logs and tests)."""

    rows: int = 0
    candidates: int = 0
    exact_chunks: int = 0
    fast_chunks: int = 0


def _raw_pieces(stream: BinaryIO) -> Iterator[bytes]:
    """Decompressed pieces of a plain or gzip stream (every gzip member), each at most
    ``_READ_BYTES`` long however well the data compresses (a gzip bomb stays bounded)."""
    first = stream.read(_READ_BYTES)
    reads = itertools.chain((first,), iter(lambda: stream.read(_READ_BYTES), b""))
    if first[:2] != GZIP_MAGIC:
        yield from (piece for piece in reads if piece)
        return
    yield from inflate(reads, piece_bytes=_READ_BYTES)


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    """Raw text in chunks of about ``CHUNK_BYTES``, each ending at a line end except possibly
    the last. A line of ``CHUNK_BYTES`` or more is never held: ``over_long_line`` stands in for
    it (one field, so the exact path quarantines it) and its bytes are dropped as they come."""
    pending: list[bytes] = []
    size = 0
    skipped = 0  # bytes of an over-long line dropped so far (0: not inside one)
    for piece in _raw_pieces(stream):
        if skipped:
            end = piece.find(b"\n")
            if end < 0:
                skipped += len(piece)
                continue
            yield over_long_line(skipped + end).encode()
            piece, skipped = piece[end + 1 :], 0
        pending.append(piece)
        size += len(piece)
        if size < CHUNK_BYTES:
            continue
        buffer, start = b"".join(pending), 0
        while len(buffer) - start >= CHUNK_BYTES:
            cut = buffer.rfind(b"\n", start, start + CHUNK_BYTES) + 1
            if cut > start:
                yield buffer[start:cut]
                start = cut
                continue
            end = buffer.find(b"\n", start + CHUNK_BYTES)  # no line end: an over-long line
            if end < 0:
                skipped, start = len(buffer) - start, len(buffer)
                break
            yield over_long_line(end - start).encode()
            start = end + 1
        rest = buffer[start:]
        pending, size = ([rest], len(rest)) if rest else ([], 0)
    if skipped:
        yield over_long_line(skipped).encode()
    elif pending:
        yield b"".join(pending)


_DONE: Final = object()


def _in_background(items: Iterator[bytes], *, depth: int = 2) -> Iterator[bytes]:
    """``items`` produced by a helper thread (decompression releases the GIL, so it runs on the
    other core while this one filters); at most ``depth`` chunks wait in between."""
    out: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    worker = threading.Thread(target=produce, name="chipwarden-flow-read", daemon=True)
    worker.start()
    try:
        while (item := out.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()


def _selectors(index: Any) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(ENI ids, instance ids, addresses) that ``TargetIndex.match`` can match."""
    return index.selectors()  # type: ignore[no-any-return]


class _Filter:
    """The vectorised candidate mask for one layout and one target index."""

    def __init__(self, layout: FlowLayout, reader: FlowReader) -> None:
        enis, instance_ids, addresses = _selectors(reader.index)
        self.layout = layout
        self.ports = pa.array(sorted({str(p) for p in reader.ports}), pa.string())
        self.targets: list[tuple[str, Any]] = [
            (name, pa.array(sorted(values), pa.string()))
            for name, values in (
                ("interface-id", enis),
                ("instance-id", instance_ids),
                ("dstaddr", addresses),
                ("pkt-dstaddr", addresses),
            )
            if name in layout.index
        ]
        self.columns = ["action", "dstport", *(name for name, _ in self.targets)]
        self.rows = 0
        self.usable = all(c in layout.index for c in ("action", "dstport")) and bool(self.targets)
        self.read_options = dict(column_names=list(layout.fields), use_threads=False)
        # A comment, a tab or a doubled space changes the field count: Arrow then raises
        # and the chunk takes the exact path (blank lines are looked for before).
        self.parse_options = pcsv.ParseOptions(
            delimiter=" ", quote_char=False, ignore_empty_lines=False
        )
        self.convert_options = pcsv.ConvertOptions(
            include_columns=self.columns,
            column_types={c: pa.string() for c in self.columns},
            strings_can_be_null=False,
        )

    def candidates(self, chunk: bytes) -> list[int] | None:
        """Row indexes that may be hits, or ``None`` when Arrow cannot vouch for the chunk."""
        try:
            table = pcsv.read_csv(
                pa.py_buffer(chunk),
                read_options=pcsv.ReadOptions(block_size=len(chunk) + 1, **self.read_options),
                parse_options=self.parse_options,
                convert_options=self.convert_options,
            )
        except (pa.ArrowInvalid, pa.ArrowException):
            return None
        port = pc.utf8_ltrim(table["dstport"], characters="0")
        keep = pc.and_(pc.equal(table["action"], "ACCEPT"), pc.is_in(port, value_set=self.ports))
        target = None
        for name, values in self.targets:
            column = table[name]
            match = pc.is_in(column, value_set=values)
            if name.endswith("dstaddr"):  # IPv6 text has several spellings: exact path
                match = pc.or_(match, pc.match_substring(column, ":"))
            target = match if target is None else pc.or_(target, match)
        mask = pc.and_(keep, target)
        self.rows = int(table.num_rows)
        rows: list[int] = pc.indices_nonzero(mask).to_pylist()
        return rows


def read_flow_stream(
    ctx: CollectContext,
    reader: FlowReader,
    stream: BinaryIO,
    *,
    locator: str,
    account: str | None,
    tag: str | None = None,
) -> tuple[list[FlowHit], FlowFastStats] | None:
    """Hits of one flow-log file or object; ``None`` (nothing read, nothing counted) when
    the fast path does not apply and the caller must use ``FlowReader.lines``."""
    if not available():
        return None
    stats = FlowFastStats()
    hits: list[FlowHit] = []
    layout: FlowLayout | None = None
    flt: _Filter | None = None
    next_line = 1
    for chunk in _in_background(_chunks(stream)):
        if layout is None:
            if chunk[:1].isspace():
                return None  # leading blank lines: let the exact reader number them
            end = chunk.find(b"\n")
            first = chunk[: end if end >= 0 else len(chunk)].decode("utf-8", "replace")
            header = header_fields(first)
            layout = FlowLayout(header) if header is not None else reader.layout
            if header is not None:
                if layout.missing:
                    return None  # the exact reader reports the unusable format
                chunk = chunk[end + 1 :] if end >= 0 else b""
                next_line = 2
            flt = _Filter(layout, reader)
            if not flt.usable:
                return None
        assert flt is not None  # noqa: S101 - type narrowing for mypy; not a runtime check
        if not chunk:
            continue
        crlf = b"\r" in chunk  # Arrow also ends a line at a lone CR: count to be sure
        blank = b"\n\n" in chunk or (crlf and b"\n\r\n" in chunk)  # Arrow would keep a row
        rows = None if blank else flt.candidates(chunk)
        lines_in_chunk = flt.rows
        if rows is not None and crlf:
            lines_in_chunk = chunk.count(b"\n") + (not chunk.endswith(b"\n"))
        if rows is None or flt.rows != lines_in_chunk:
            stats.exact_chunks += 1
            text = list(io.TextIOWrapper(io.BytesIO(chunk), "utf-8", "replace", newline=None))
            lines_in_chunk = len(text)
            hits += reader.block(
                ctx, text, first_line=next_line, layout=layout, locator=locator,
                account=account, tag=tag,
            )  # fmt: skip
        else:
            stats.fast_chunks += 1
            stats.rows += flt.rows
            stats.candidates += len(rows)
            skipped = flt.rows - len(rows)
            ctx.count_read(skipped)
            ctx.count_ignored(skipped)
            if rows:
                lines = chunk.split(b"\n")
                for row in rows:
                    hits += reader.block(
                        ctx, [lines[row].decode("utf-8", "replace")], first_line=next_line + row,
                        layout=layout, locator=locator, account=account, tag=tag,
                    )  # fmt: skip
        next_line += lines_in_chunk
    log.debug(
        "flow_fast_read",
        locator=locator,
        rows=stats.rows,
        candidates=stats.candidates,
        fast_chunks=stats.fast_chunks,
        exact_chunks=stats.exact_chunks,
    )
    return hits, stats


_FLOW_PATH: Final = re.compile(
    r"AWSLogs/(?:o-[a-z0-9]+/)?(?P<account>\d{12})/vpcflowlogs/(?P<region>[a-z0-9-]+)/"
)
_FLOW_NAME: Final = re.compile(r"(?P<account>\d{12})_vpcflowlogs_(?P<region>[a-z0-9-]+)_")


def flow_unit_key(source: str, path: Path | str) -> str:
    """Work unit of a flow-log file: ``source|account|region`` from the S3 layout or the file
    name. Days stay together because sessions fold across midnight; files whose path names
    no account and region form one unit (``source|*``), so folding never differs by shard."""
    text = str(path).replace(os.sep, "/")
    match = _FLOW_PATH.search(text) or _FLOW_NAME.search(text.rsplit("/", 1)[-1])
    return f"{source}|{match['account']}|{match['region']}" if match else f"{source}|*"
