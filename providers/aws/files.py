"""CloudTrail log files on disk: S3 delivery objects, JSON lists, single records, JSON Lines.

One ``SessionBatch`` per file (sorted paths). A file that cannot be read (I/O error, corrupt
gzip, invalid JSON) and a glob that matches nothing become ``ScopeError`` s; a bad record is
quarantined with its file and position while the rest of the file is processed.
"""

from __future__ import annotations

import errno
import glob
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Literal, Self

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.config import ResolvedGlob, format_validation_error
from agent.contracts import CollectContext, SessionBatch, SourceEnv
from agent.errors import ConfigError
from agent.models import ScopeError
from providers.aws import fastscan
from providers.aws.bounded import (
    GZIP_MAGIC,
    CorruptGzipError,
    InflateLimitError,
    gunzip_stream,
    read_limited,
)
from providers.aws.collect import RecordCollector
from providers.aws.fastscan import (
    checkpoint_scope,
    file_fingerprint,
    gunzip,
    read_ahead,
    read_bounded,
    scan_document,
    unit_key,
)
from providers.aws.flowsessions import TargetIndex
from providers.aws.joins import resolve_tunnel_targets

__all__ = [
    "CloudTrailFilesConfig",
    "CloudTrailFilesSource",
    "Unreadable",
    "parse_document",
    "parse_stream",
]

log = structlog.get_logger(__name__)

DIGEST_MARKER = "CloudTrail-Digest"
_DIR_SUFFIXES = (".json", ".json.gz", ".jsonl", ".ndjson", ".gz")


class CloudTrailFilesConfig(BaseModel):
    """``type: cloudtrail-files``: glob patterns (``**`` recursive) or folders to read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["cloudtrail-files"]
    paths: list[ResolvedGlob] = Field(min_length=1)
    incremental: bool = False
    """Skip files already read (same path, size and mtime) unless --since is given."""


class Unreadable(Exception):
    """A whole file cannot be parsed; becomes a ScopeError with ``code`` and a hint."""

    def __init__(self, code: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint


# (position, record, reason): reason is set when the entry is not valid JSON.
Entry = tuple[str, Any, str | None]


def _unwrap(record: Any) -> Any:
    """CloudWatch Events / EventBridge envelopes carry the CloudTrail record in ``detail``."""
    if isinstance(record, dict) and "eventName" not in record:
        detail = record.get("detail")
        if isinstance(detail, dict):
            return detail
    return record


_TOO_LARGE_HINT = (
    "CloudTrail files are a few MB (tens of MB decompressed): this one is corrupt, hostile (a "
    "gzip bomb) or not a CloudTrail log; check where it came from"
)


def _too_large(exc: OSError) -> Unreadable:
    """The ``Unreadable`` of a file or object over a size limit (``EFBIG``)."""
    return Unreadable("too_large", exc.strerror or str(exc), _TOO_LARGE_HINT)


def _corrupt_gzip(exc: BaseException) -> Unreadable:
    message = str(exc) if isinstance(exc, CorruptGzipError) else f"corrupt gzip data: {exc}"
    return Unreadable("corrupt_gzip", message, "re-download the object from the trail's S3 bucket")


def _decode(data: bytes) -> str:
    if data[:2] == GZIP_MAGIC:
        try:
            data = gunzip(data)
        except InflateLimitError as exc:
            raise _too_large(exc) from exc
        except (OSError, EOFError) as exc:
            raise _corrupt_gzip(exc) from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unreadable(
            "bad_encoding",
            f"not UTF-8 text: {exc}",
            "CloudTrail files are UTF-8 JSON; check the file is a CloudTrail log",
        ) from exc


def _json_lines(text: str, error: json.JSONDecodeError) -> list[Entry]:
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    try:
        if not isinstance(json.loads(first), dict):
            raise ValueError("first line is not a JSON object")
    except (ValueError, RecursionError) as exc:
        raise Unreadable(
            "invalid_json",
            f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}",
            "expected a CloudTrail JSON document, a JSON list of records or JSON Lines",
        ) from exc
    entries: list[Entry] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entries.append((f"line {number}", _unwrap(json.loads(line)), None))
        except json.JSONDecodeError as exc:
            entries.append(
                (f"line {number}", None, f"invalid JSON: {exc.msg} (column {exc.colno})")
            )
        except (ValueError, RecursionError) as exc:
            entries.append((f"line {number}", None, f"unparseable JSON: {type(exc).__name__}"))
    return entries


def parse_stream(stream: BinaryIO) -> list[Entry]:
    """Like ``parse_document`` for a binary stream (an S3 body): gzip is decompressed while
    reading, so only the one document is ever in memory. Over ``MAX_FILE_BYTES`` read or
    ``MAX_DECOMPRESSED_BYTES`` inflated, the object is refused (``too_large``) unread."""
    head = stream.peek(2)[:2] if isinstance(stream, io.BufferedReader) else b""
    gzipped = head == GZIP_MAGIC
    on_disk, inflated = fastscan.MAX_FILE_BYTES, fastscan.MAX_DECOMPRESSED_BYTES
    try:
        if gzipped:
            data = gunzip_stream(stream, limit=inflated, compressed_limit=on_disk)
        else:
            data = read_limited(stream, limit=on_disk)
    except OSError as exc:
        if exc.errno == errno.EFBIG:
            raise _too_large(exc) from exc
        if gzipped:
            raise _corrupt_gzip(exc) from exc
        raise
    except EOFError as exc:
        raise _corrupt_gzip(exc) from exc
    return parse_document(data)


def parse_document(data: bytes) -> list[Entry]:
    """Records of one file (gzip detected by magic bytes): ``{"Records": [...]}``, a list, a
    single record or JSON Lines; ``Unreadable`` when the file as a whole is not usable."""
    text = _decode(data)
    if not text.strip():
        return []
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        return _json_lines(text, exc)
    except (ValueError, RecursionError) as exc:  # 4300+ digit integers, nesting past the limit
        raise Unreadable(
            "invalid_json",
            f"unparseable JSON: {type(exc).__name__}: {str(exc)[:200]}",
            "expected a CloudTrail JSON document, a JSON list of records or JSON Lines",
        ) from exc
    if isinstance(doc, dict) and "Records" in doc:
        doc = doc["Records"]
        if not isinstance(doc, list):
            raise Unreadable(
                "unsupported_shape",
                "Records is not a list",
                'expected the S3 delivery shape {"Records": [...]}',
            )
    elif isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        raise Unreadable(
            "unsupported_shape",
            f"top-level JSON is a {type(doc).__name__}",
            "expected a CloudTrail JSON document, a JSON list or JSON Lines",
        )
    return [(f"record {i}", _unwrap(record), None) for i, record in enumerate(doc)]


def _expand(pattern: str) -> list[Path]:
    if os.path.isdir(pattern):  # os.walk: directory entries know their type, no stat per file
        return [
            Path(folder, name)
            for folder, _dirs, names in os.walk(pattern)
            for name in names
            if name.endswith(_DIR_SUFFIXES) and os.path.isfile(os.path.join(folder, name))
        ]
    return [Path(p) for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)]


class CloudTrailFilesSource:
    """CloudTrail logs from local files (an S3 sync, a Stratus capture, an export)."""

    Config: ClassVar[type[BaseModel]] = CloudTrailFilesConfig

    def __init__(self, *, name: str, config: CloudTrailFilesConfig) -> None:
        self.name = name
        self.config = config
        self._owns: Callable[[str], bool] | None = None
        self._index: tuple[object, TargetIndex] | None = None

    def _tunnel_index(self, ctx: CollectContext) -> TargetIndex:
        """The run's instances by private IP, built once per inventory (not once per file)."""
        if self._index is None or self._index[0] is not ctx.inventory:
            self._index = (ctx.inventory, TargetIndex(ctx.inventory, gpu_only=False))
        return self._index[1]

    def select_units(self, owns: Callable[[str], bool]) -> None:
        """Read only the files whose unit (account x region x day) ``owns`` accepts."""
        self._owns = owns

    @classmethod
    def from_config(cls, config: Any, *, env: SourceEnv) -> Self:
        """Build from a validated config or a raw mapping (relative globs use ``base_dir``)."""
        if not isinstance(config, CloudTrailFilesConfig):
            try:
                config = CloudTrailFilesConfig.model_validate(
                    config, context={"base_dir": env.base_dir}
                )
            except ValidationError as exc:
                problems = format_validation_error(exc, name=f"source {env.name}", lines=None)
                raise ConfigError(
                    "\n".join(problems), hint="cloudtrail-files needs paths: [glob, ...]"
                ) from exc
        return cls(name=env.name, config=config)

    def files(self, ctx: CollectContext) -> list[Path]:
        """Sorted, de-duplicated files; a pattern matching nothing is a ScopeError."""
        found: set[Path] = set()
        for pattern in self.config.paths:
            matched = _expand(pattern)
            if not matched:
                ctx.scope_error(
                    ScopeError(
                        source=self.name,
                        scope=pattern,
                        code="no_files",
                        message="no file matches this pattern (an audit of nothing is not clean)",
                        remediation="check the path; relative paths resolve against the config "
                        "file's folder, and ** needs to be spelled out for sub-folders",
                    )
                )
            found.update(matched)
        if self._owns is not None:
            owns = self._owns
            found = {p for p in found if owns(unit_key(self.name, p))}
        return sorted(found, key=lambda p: p.parts)  # Path order, without Path comparisons

    def sessions(self, ctx: CollectContext) -> Iterator[SessionBatch]:
        """One batch per file; digest files and (``incremental``) unchanged files are skipped.
        The next files are read and decompressed in the background while one is scanned."""
        todo: list[Path] = []
        states: dict[Path, tuple[str, str] | None] = {}
        for path in self.files(ctx):
            if DIGEST_MARKER in str(path):
                log.debug("cloudtrail_digest_skipped", path=str(path))
                continue
            state = states[path] = self._state(ctx, path)
            if state is not None and ctx.checkpoint(state[0]) == state[1]:
                log.debug("cloudtrail_file_unchanged", source=self.name, path=str(path))
                continue
            todo.append(path)
        for path, data in read_ahead(todo):
            batch = self._read(ctx, path, data)
            state = states[path]
            if batch is not None:
                if state is not None:
                    batch = replace(batch, checkpoint_scope=state[0], checkpoint=state[1])
                yield batch

    def _state(self, ctx: CollectContext, path: Path) -> tuple[str, str] | None:
        """(scope, fingerprint) of an incremental read; files are read whole with --since."""
        if not self.config.incremental or ctx.window.explicit:
            return None
        try:
            return checkpoint_scope(self.name, path), file_fingerprint(path.stat())
        except OSError:
            return None  # _read reports it

    def list_files(self, ctx: CollectContext) -> list[Path]:
        """The files ``chipwarden watch`` reads once each (digest files left out)."""
        return [p for p in self.files(ctx) if DIGEST_MARKER not in str(p)]

    def read_file(self, path: Path, ctx: CollectContext) -> SessionBatch | None:
        """One file's batch (None when it could not be read: a ScopeError says why)."""
        return self._read(ctx, path)

    def _read(
        self, ctx: CollectContext, path: Path, data: bytes | OSError | None = None
    ) -> SessionBatch | None:
        locator = str(path)
        try:
            if isinstance(data, OSError):
                raise data
            raw = read_bounded(path) if data is None else data
            scan = scan_document(raw, fallback=parse_document)
        except OSError as exc:
            problem = (
                _too_large(exc)
                if exc.errno == errno.EFBIG
                else Unreadable(
                    "unreadable",
                    f"cannot read: {exc.strerror or exc}",
                    "check the file exists and is readable by this user",
                )
            )
            self._unreadable(ctx, locator, problem)
            return None
        except Unreadable as exc:
            self._unreadable(ctx, locator, exc)
            return None
        collector = RecordCollector(
            ctx=ctx, source=self.name, locator=locator, kind="file", filter_window=True
        )
        for position, record, reason in scan.entries:
            if reason is not None:
                collector.add_unparsable(position=position, reason=reason)
            else:
                collector.add(record, position=position)
        if scan.skipped:  # records that cannot be session events, never parsed
            ctx.count_read(scan.skipped)
            ctx.count_ignored(scan.skipped)
            collector.read += scan.skipped
            collector.ignored += scan.skipped
        tagged = collector.tagged()
        if ctx.inventory:
            tagged = resolve_tunnel_targets(tagged, self._tunnel_index(ctx))
        sessions = tuple(s for _, s in tagged)
        ctx.on_progress(locator, collector.read)
        log.info(
            "cloudtrail_file_read",
            source=self.name,
            path=locator,
            read=collector.read,
            sessions=len(sessions),
            ignored=collector.ignored,
            quarantined=collector.quarantined,
        )
        return SessionBatch(unit=locator, sessions=sessions)

    def _unreadable(self, ctx: CollectContext, locator: str, exc: Unreadable) -> None:
        ctx.scope_error(
            ScopeError(
                source=self.name,
                scope=locator,
                code=exc.code,
                message=exc.message,
                remediation=exc.hint,
            )
        )
        ctx.on_progress(locator, 0)
        log.warning("cloudtrail_file_unreadable", source=self.name, path=locator, code=exc.code)
