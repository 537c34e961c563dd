"""What ``chipwarden watch`` reads incrementally: followed files and listed whole files.

A :class:`FollowStream` is one followed file of one source: a :class:`FileFollower` plus the
source's :class:`LineParser`. Its checkpoint (scope ``watch:<source>:<path>``) holds the file
position and the parser state as JSON and is committed with the batch's findings; after a
failed commit the stream goes back to the last committed checkpoint, so no line is read twice
or skipped. A :class:`ListedFiles` remembers which whole files (CloudTrail deliveries) were
read, by size and mtime, in one checkpoint per file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from agent.contracts import CollectContext, FollowableSource, LineParser, ListedFilesSource
from agent.errors import StoreError
from agent.follow import MAX_CHUNK_BYTES, FileFollower, FilePosition
from agent.models import ScopeError, Session

__all__ = [
    "CHECKPOINT_VERSION",
    "FollowSet",
    "FollowStream",
    "ListedFiles",
    "PendingBatch",
    "watch_scope",
]

log = structlog.get_logger(__name__)

CHECKPOINT_VERSION = 1
CheckpointReader = Callable[[str], str | None]
ErrorReporter = Callable[[str, Path, BaseException], ScopeError]


def watch_scope(source: str, path: Path | str) -> str:
    """Checkpoint scope of one watched file: ``watch:<source>:<path>``."""
    return f"watch:{source}:{path}"


@dataclass(frozen=True)
class PendingBatch:
    """Sessions read from one stream and the checkpoint that covers them."""

    unit: str
    sessions: tuple[Session, ...]
    scope: str
    checkpoint: str
    lines: int
    position: dict[str, Any]


class FollowStream:
    """One followed file of one source, resumable from its committed checkpoint."""

    def __init__(
        self,
        *,
        source: FollowableSource,
        path: Path,
        saved: str | None,
        from_end: bool = False,
        max_bytes: int = MAX_CHUNK_BYTES,
    ) -> None:
        self.source = source
        self.path = path
        self.scope = watch_scope(source.name, path)
        self.from_end = from_end
        self.max_bytes = max_bytes
        self.committed: str | None = saved
        self.retry_at = 0.0
        self._committed_position: dict[str, Any] | None = None
        self.follower, self.parser = self._resume(saved)

    def next_batch(self, ctx: CollectContext) -> PendingBatch | None:
        """Parse the next complete lines, or None when the file has nothing new.

        A position that moved without lines (a start at the end of the file, a switch to
        the new file after rotation) comes as a batch without sessions, so it is saved too.
        """
        chunk = self.follower.read()
        if chunk is not None:
            sessions = self.parser.feed(chunk.lines, first_line=chunk.first_line, ctx=ctx)
            return self._batch(sessions, chunk.position.to_json(), len(chunk.lines))
        position = self.follower.position
        if position is None or position.to_json() == self._committed_position:
            return None
        return self._batch((), position.to_json(), 0)

    def committed_to(self, batch: PendingBatch) -> None:
        """The batch's findings and checkpoint are stored."""
        self.committed = batch.checkpoint
        self._committed_position = batch.position

    def _batch(
        self, sessions: tuple[Session, ...], position: dict[str, Any], lines: int
    ) -> PendingBatch:
        value = {
            "v": CHECKPOINT_VERSION,
            "path": str(self.path),
            "position": position,
            "parser": self.parser.state(),
        }
        checkpoint = json.dumps(value, separators=(",", ":"), sort_keys=True)
        return PendingBatch(str(self.path), sessions, self.scope, checkpoint, lines, position)

    def rollback(self) -> None:
        """Forget what was read since the last committed checkpoint (its commit failed)."""
        self.follower.close()
        self.follower, self.parser = self._resume(self.committed)
        log.warning("watch_stream_rolled_back", source=self.source.name, path=str(self.path))

    def close(self) -> None:
        self.follower.close()

    def _resume(self, saved: str | None) -> tuple[FileFollower, LineParser]:
        position, state = _decode(saved, self.scope)
        self._committed_position = position.to_json() if position is not None else None
        follower = FileFollower(
            self.path,
            position=position,
            from_end=self.from_end and position is None,
            max_bytes=self.max_bytes,
        )
        return follower, self.source.line_parser(self.path, state=state)


def _decode(saved: str | None, scope: str) -> tuple[FilePosition | None, dict[str, Any] | None]:
    if saved is None:
        return None, None
    try:
        value = json.loads(saved)
        if not isinstance(value, dict) or value.get("v") != CHECKPOINT_VERSION:
            raise ValueError(f"unknown checkpoint format {str(saved)[:60]!r}")
        state = value.get("parser")
        return FilePosition.from_json(value["position"]), state if isinstance(state, dict) else None
    except (ValueError, KeyError, TypeError) as exc:
        log.warning(
            "watch_checkpoint_ignored",
            scope=scope,
            error=str(exc),
            hint="the file is read from its start again (findings are upserted, not doubled)",
        )
        return None, None


class FollowSet:
    """The followed files of one source; its file list is re-read every ``relist`` call."""

    def __init__(
        self,
        source: FollowableSource,
        *,
        checkpoints: CheckpointReader,
        from_end: bool = False,
        max_bytes: int = MAX_CHUNK_BYTES,
    ) -> None:
        self.source = source
        self.checkpoints = checkpoints
        self.from_end = from_end
        self.max_bytes = max_bytes
        self.streams: dict[Path, FollowStream] = {}

    def relist(self, ctx: CollectContext, *, on_error: ErrorReporter) -> None:
        """Start streams for files the source lists now (a glob may have gained some); a
        file whose parser cannot start is reported with ``on_error`` and tried next time."""
        for path in self.source.follow_paths():
            if path in self.streams:
                continue
            try:
                stream = FollowStream(
                    source=self.source,
                    path=path,
                    saved=self.checkpoints(watch_scope(self.source.name, path)),
                    from_end=self.from_end,
                    max_bytes=self.max_bytes,
                )
            except StoreError:
                raise
            except Exception as exc:  # e.g. the year of a syslog file cannot be read
                ctx.scope_error(on_error(self.source.name, path, exc))
                continue
            self.streams[path] = stream
            log.info("watch_following", source=self.source.name, path=str(path))

    def __iter__(self) -> Iterator[FollowStream]:
        return iter(list(self.streams.values()))

    def close(self) -> None:
        for stream in self.streams.values():
            stream.close()


@dataclass(frozen=True)
class _Stamp:
    size: int
    mtime_ns: int

    def encode(self) -> str:
        return json.dumps({"v": CHECKPOINT_VERSION, "size": self.size, "mtime_ns": self.mtime_ns})

    @classmethod
    def decode(cls, raw: str | None) -> _Stamp | None:
        try:
            data = json.loads(raw) if raw else None
            return cls(int(data["size"]), int(data["mtime_ns"])) if data else None
        except (ValueError, KeyError, TypeError):
            return None


class ListedFiles:
    """Whole files of one source: each new or changed (size, mtime) file is read once."""

    def __init__(self, source: ListedFilesSource, *, checkpoints: CheckpointReader) -> None:
        self.source = source
        self.checkpoints = checkpoints
        self._seen: dict[Path, _Stamp] = {}

    def new_files(self, ctx: CollectContext) -> Iterator[tuple[Path, str, str]]:
        """``(path, scope, checkpoint)`` of every file not read yet in its current form."""
        for path in self.source.list_files(ctx):
            try:
                st = os.stat(path)
            except OSError:
                continue
            stamp = _Stamp(st.st_size, st.st_mtime_ns)
            if self._seen.get(path) == stamp:
                continue
            scope = watch_scope(self.source.name, path)
            if path not in self._seen and _Stamp.decode(self.checkpoints(scope)) == stamp:
                self._seen[path] = stamp
                continue
            yield path, scope, stamp.encode()

    def done(self, path: Path, checkpoint: str) -> None:
        """``path`` was read and its checkpoint committed."""
        stamp = _Stamp.decode(checkpoint)
        if stamp is not None:
            self._seen[path] = stamp
