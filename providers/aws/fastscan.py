"""Decompression-bound CloudTrail reading: parse only the records that can be sessions.

An S3 delivery object is ``{"Records":[{"eventVersion":...},...]}``. Inside JSON text a quote
is always escaped, so the bytes ``{"eventVersion":`` only occur where a record object starts,
and ``"eventName":"<name>"`` only where a record names its event. ``scan_document`` therefore
decompresses (ISA-L or zlib-ng when installed), finds the session event names with one
regular-expression pass, and parses (orjson) only the records around those hits. Records that
cannot hold a session event are counted, never parsed or validated. Any other layout, a span
that does not parse, bad UTF-8 or bad gzip falls back to the exact full parser.

Also here: the processed-files checkpoint (path + size + mtime) for incremental audits and the
work-unit key (source x account x region x day) used by ``--shard``.
"""

from __future__ import annotations

import errno
import os
import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import structlog

from providers.aws import bounded
from providers.aws.bounded import DECOMPRESSOR, GZIP_MAGIC, InflateLimitError

__all__ = [
    "CANDIDATE_EVENT_NAMES",
    "DECOMPRESSOR",
    "GZIP_MAGIC",
    "MAX_DECOMPRESSED_BYTES",
    "MAX_FILE_BYTES",
    "Entry",
    "InflateLimitError",
    "Scan",
    "checkpoint_scope",
    "file_fingerprint",
    "gunzip",
    "read_ahead",
    "scan_document",
    "unit_key",
    "unwrap_record",
]

log = structlog.get_logger(__name__)

Entry = tuple[str, Any, str | None]
"""(position, record, reason): the shape ``files.parse_document`` returns."""

CANDIDATE_EVENT_NAMES: Final[tuple[str, ...]] = (
    "StartSession",
    "ResumeSession",
    "TerminateSession",  # not a session, but it carries the end time of one
    "SendSSHPublicKey",
    "SendSerialConsoleSSHPublicKey",
    "OpenTunnel",
    "ConsoleLogin",
)
"""Every eventName ``normalize`` turns into a session or joins onto one (a spec test keeps
this in step with ``normalize._SESSION_RULES``)."""

_BOM: Final = b"\xef\xbb\xbf"
RECORD_START: Final = b'{"eventVersion":'
_NAMES = b"|".join(re.escape(n.encode()) for n in CANDIDATE_EVENT_NAMES)
# Whitespace tolerated around ':' and inside the quotes (normalize strips the name).
_CANDIDATE: Final = re.compile(rb'"eventName"\s*:\s*"\s*(?:' + _NAMES + rb')\s*"')
_AWS_LAYOUT: Final = re.compile(rb'\s*\{\s*"Records"\s*:\s*\[\s*(?=\{"eventVersion":)')
_AWS_PATH: Final = re.compile(
    r"AWSLogs/(?:o-[a-z0-9]+/)?(?P<account>\d{12})/CloudTrail/(?P<region>[a-z0-9-]+)/"
    r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
)
_AWS_NAME: Final = re.compile(
    r"(?P<account>\d{12})_CloudTrail_(?P<region>[a-z0-9-]+)_(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})T"
)


def gunzip(data: bytes, *, limit: int | None = None) -> bytes:
    """Decompress every gzip member of ``data`` (``gzip.decompress`` semantics: zero padding
    allowed); ``InflateLimitError`` past ``limit`` (default ``MAX_DECOMPRESSED_BYTES``),
    ``EOFError`` when truncated, the decoder's error when corrupt."""
    return bounded.gunzip(data, limit=MAX_DECOMPRESSED_BYTES if limit is None else limit)


def _loads() -> Callable[[bytes], Any]:
    try:
        import orjson

        return orjson.loads
    except ImportError:  # pragma: no cover - orjson ships with chipwarden[fast]
        import json

        return json.loads


_json_loads = _loads()


def unwrap_record(record: Any) -> Any:
    """CloudWatch Events / EventBridge envelopes carry the CloudTrail record in ``detail``."""
    if isinstance(record, dict) and "eventName" not in record:
        detail = record.get("detail")
        if isinstance(detail, dict):
            return detail
    return record


@dataclass
class Scan:
    """Records of one document that need the full path, and how many were skipped unparsed.

    ``mode``: ``spans`` (only candidate records parsed) or ``full`` (the exact parser ran).
    """

    entries: list[Entry] = field(default_factory=list)
    skipped: int = 0
    mode: str = "full"


def scan_document(data: bytes, *, fallback: Callable[[bytes], list[Entry]]) -> Scan:
    """Candidate records of one CloudTrail file (gzip detected by magic bytes).

    ``fallback`` is the exact parser (``files.parse_document``): it runs, and raises its own
    ``Unreadable``, whenever the fast path cannot vouch for the result.
    """
    body = data
    if body[:2] == GZIP_MAGIC:
        try:
            body = gunzip(body)
        except InflateLimitError:
            raise  # a bomb: never decompressed a second time by the fallback
        except Exception:  # corrupt: let the exact parser raise its precise error
            return Scan(entries=fallback(data))
    if body.startswith(_BOM):
        body = body[len(_BOM) :]
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return Scan(entries=fallback(data))
    spans = _scan_spans(body)
    return spans if spans is not None else Scan(entries=fallback(body))


def _scan_spans(body: bytes) -> Scan | None:
    """The span scan of an S3 delivery object, or ``None`` when the layout is another one."""
    head = _AWS_LAYOUT.match(body)
    if head is None:
        return None
    tail = body.rstrip()
    if not tail.endswith(b"]}"):
        return None
    end = len(tail) - 2  # the closing "]"
    entries: list[Entry] = []
    begin = head.end()
    prev_start, prev_index, last = begin, 0, -1
    for hit in _CANDIDATE.finditer(body, begin, end):
        start = body.rfind(RECORD_START, begin, hit.start() + 1)
        if start == last:
            continue  # a second name in the same record
        index = prev_index + body.count(RECORD_START, prev_start, start)
        prev_start, prev_index, last = start, index, start
        stop = body.find(RECORD_START, hit.end(), end)
        span = body[start : end if stop < 0 else stop].rstrip().rstrip(b",")
        try:
            record = _json_loads(span)
        except ValueError:
            log.debug("cloudtrail_span_unparsable", position=index)
            return None
        if not isinstance(record, dict):
            return None
        entries.append((f"record {index}", unwrap_record(record), None))
    total = prev_index + body.count(RECORD_START, prev_start, end)
    return Scan(entries=entries, skipped=total - len(entries), mode="spans")


MAX_FILE_BYTES = 128 * 1024 * 1024
"""CloudTrail delivers a file every ~5 minutes per account and region, a few MB at most; a
file over this is refused (a ScopeError naming it) instead of being read into memory."""

MAX_DECOMPRESSED_BYTES = 1024 * 1024 * 1024
"""Largest decompressed CloudTrail file: real objects are tens of MB once inflated. A gzip bomb
(a small file that inflates to terabytes) is refused at this size, never allocated whole."""


def read_bounded(path: Path) -> bytes:
    """``path``'s bytes; ``OSError(EFBIG)`` when the file is over ``MAX_FILE_BYTES``."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise OSError(
            errno.EFBIG,
            f"file is {size} bytes, over the {MAX_FILE_BYTES}-byte limit for one CloudTrail file",
        )
    return path.read_bytes()


def _load(path: Path) -> bytes:
    """A file's bytes, decompressed when gzip (left compressed if that fails, so the exact
    parser reports the precise error)."""
    data = read_bounded(path)
    if data[:2] == GZIP_MAGIC:
        try:
            return gunzip(data)
        except InflateLimitError:
            raise  # an OSError: reported as "too_large" by the reader
        except Exception:  # scan_document re-raises it as Unreadable
            return data
    return data


def read_ahead(paths: Sequence[Path], *, depth: int = 2) -> Iterator[tuple[Path, bytes | OSError]]:
    """``(path, bytes or the OSError reading it)`` in order, the next ``depth`` files read and
    decompressed by one background thread (the decoders release the GIL) while the caller
    scans the current one: two cores for one audit, at most ``depth + 1`` files in memory."""
    if len(paths) < 2:
        for path in paths:
            yield path, _safe_load(path)
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chipwarden-read")
    pending: deque[tuple[Path, Future[bytes | OSError]]] = deque()
    try:
        for path in paths:
            pending.append((path, pool.submit(_safe_load, path)))
            if len(pending) > depth:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _safe_load(path: Path) -> bytes | OSError:
    try:
        return _load(path)
    except OSError as exc:
        return exc


# --------------------------------------------------------------------------- incremental


def file_fingerprint(stat: os.stat_result) -> str:
    """What makes a file "unchanged": its size and modification time (ns)."""
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def checkpoint_scope(source: str, path: Path | str) -> str:
    """Checkpoint scope of one processed file; ``<source>|`` is a common prefix, so the
    pipeline can read every file checkpoint of a source in one query."""
    return f"{source}|file|{path}"


# --------------------------------------------------------------------------- sharding


def unit_key(source: str, path: Path | str) -> str:
    """The work unit of a file: ``source|account|region|YYYY-MM-DD`` from the S3 key layout
    or the CloudTrail file name, else the path itself (one unit per file)."""
    text = str(path).replace(os.sep, "/")
    match = _AWS_PATH.search(text) or _AWS_NAME.search(text.rsplit("/", 1)[-1])
    if match is None:
        return f"{source}|{text}"
    return f"{source}|{match['account']}|{match['region']}|{match['y']}-{match['m']}-{match['d']}"
