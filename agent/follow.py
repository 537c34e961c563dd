"""Follow one growing text file like ``tail -F``, resumable from a saved position.

A :class:`FilePosition` names the file by device + inode and by a SHA-256 of its first bytes
(up to :data:`HEAD_BYTES`), plus the byte offset and line number read up to. From it,
:class:`FileFollower` survives:

- rename rotation (``auth.log`` -> ``auth.log.1``, new ``auth.log``): the open descriptor is
  read to its end, then the new file from its start;
- copytruncate (the file shrinks, or its first bytes change): the copy is looked for next to
  the file by its head hash and read from the saved offset, then the file from its start;
- restarts: the saved file is found again by inode (under its own name or, if it was rotated
  meanwhile, any name in the same folder) and read from the saved offset.

Only complete lines are returned; a trailing partial line waits for its newline (or for the
file to be rotated away). Nothing here knows about sessions or the store.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import structlog

__all__ = ["HEAD_BYTES", "MAX_CHUNK_BYTES", "Chunk", "FileFollower", "FilePosition"]

log = structlog.get_logger(__name__)

HEAD_BYTES = 1024
"""How many leading bytes identify a file's content (with its inode)."""
MAX_CHUNK_BYTES = 1 << 20
"""Most bytes returned by one read; a longer line is cut there."""
_COMPRESSED = (".gz", ".xz", ".bz2", ".zst", ".lz4", ".z")
_EMPTY_HASH = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class FilePosition:
    """Where reading of one file stopped: its identity, byte offset and next line number."""

    dev: int
    inode: int
    offset: int
    line: int
    head: str
    head_len: int

    def to_json(self) -> dict[str, Any]:
        """The JSON object saved in the watch checkpoint."""
        return {
            "dev": self.dev,
            "inode": self.inode,
            "offset": self.offset,
            "line": self.line,
            "head": self.head,
            "head_len": self.head_len,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FilePosition:
        """Inverse of :meth:`to_json`; ValueError when a field is missing or wrong."""
        try:
            pos = cls(
                dev=int(data["dev"]),
                inode=int(data["inode"]),
                offset=int(data["offset"]),
                line=int(data["line"]),
                head=str(data["head"]),
                head_len=int(data["head_len"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"bad saved file position: {exc}") from exc
        if pos.offset < 0 or pos.line < 1 or not 0 <= pos.head_len <= pos.offset:
            raise ValueError(f"bad saved file position: {data!r}")
        return pos

    @property
    def identity(self) -> tuple[int, int]:
        return (self.dev, self.inode)


@dataclass(frozen=True)
class Chunk:
    """Complete lines read from the followed file and the position just after them."""

    lines: list[str]
    first_line: int
    position: FilePosition
    nbytes: int


class FileFollower:
    """``tail -F`` for one path; call :meth:`read` until it returns None, then wait.

    ``position`` (a saved one) is where to resume; without it the file is read from its start,
    or from its end with ``from_end``. ``rotations`` and ``truncations`` count what was seen.
    """

    def __init__(
        self,
        path: Path,
        *,
        position: FilePosition | None = None,
        from_end: bool = False,
        max_bytes: int = MAX_CHUNK_BYTES,
        head_bytes: int = HEAD_BYTES,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.head_bytes = head_bytes
        self.rotations = 0
        self.truncations = 0
        self._saved = position
        self._from_end = from_end
        self._fd: int | None = None
        self._pos: FilePosition | None = None

    @property
    def position(self) -> FilePosition | None:
        """Position of the open file (None before the file was first opened)."""
        return self._pos if self._pos is not None else self._saved

    def read(self) -> Chunk | None:
        """The next complete lines, or None when there is nothing new yet."""
        if self._fd is None and not self._open():
            return None
        chunk = self._read(final=False)
        if chunk is not None or not self._moved_on():
            return chunk
        chunk = self._read(final=False)  # written to the old file since the first look
        if chunk is not None:
            return chunk
        last = self._read(final=True)  # a rotated file's last line may lack its newline
        self._switch()
        if last is not None or self._fd is None:
            return last
        return self._read(final=False)

    def close(self) -> None:
        """Close the open file (the position is kept)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- opening ----------------------------------------------------------------------

    def _open(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        st = os.fstat(fd)
        saved, self._saved = self._saved, None
        self._fd = fd
        if saved is None:
            self._pos = self._start_position(fd, st)
            self._from_end = False  # only the very first file may start at its end
            log.info("follow_started", path=str(self.path), offset=self._pos.offset)
        elif (st.st_dev, st.st_ino) == saved.identity:
            if st.st_size >= saved.offset and _head_matches(fd, saved):
                self._pos = saved
                log.info("follow_resumed", path=str(self.path), offset=saved.offset)
            else:
                self._truncated(saved)
        else:
            self._rotated_while_away(saved)
        return True

    def _start_position(self, fd: int, st: os.stat_result) -> FilePosition:
        if not self._from_end or st.st_size == 0:
            return _fresh(st)
        offset, line = _last_line_end(fd, st.st_size)
        head_len = min(self.head_bytes, offset)
        head = hashlib.sha256(os.pread(fd, head_len, 0)).hexdigest()
        return FilePosition(st.st_dev, st.st_ino, offset, line, head, head_len)

    def _rotated_while_away(self, saved: FilePosition) -> None:
        """The path is another file now: finish the saved one if it is still next to it."""
        assert self._fd is not None  # noqa: S101 - type narrowing for mypy; not a runtime check
        old = _find_by_inode(self.path, saved)
        if old is not None:
            os.close(self._fd)
            self._fd, self._pos = old, saved
            self.rotations += 1
            log.info("follow_rotated_while_stopped", path=str(self.path), offset=saved.offset)
            return
        log.warning(
            "follow_rotated_file_lost",
            path=str(self.path),
            inode=saved.inode,
            offset=saved.offset,
            hint="the file read before the stop was rotated away (compressed or moved); "
            "lines written to it after the stop were not read",
        )
        self._pos = _fresh(os.fstat(self._fd))

    def _truncated(self, saved: FilePosition) -> None:
        """The file shrank or its head changed (copytruncate): read the copy's tail first."""
        assert self._fd is not None  # noqa: S101 - type narrowing for mypy; not a runtime check
        self.truncations += 1
        copy = _find_copy(self.path, saved)
        if copy is not None:
            os.close(self._fd)
            st = os.fstat(copy)
            self._fd, self._pos = copy, replace(saved, dev=st.st_dev, inode=st.st_ino)
            log.info("follow_truncated", path=str(self.path), offset=saved.offset, copy=True)
            return
        log.info("follow_truncated", path=str(self.path), offset=saved.offset, copy=False)
        self._pos = _fresh(os.fstat(self._fd))

    # -- reading ----------------------------------------------------------------------

    def _read(self, *, final: bool) -> Chunk | None:
        fd, pos = self._fd, self._pos
        assert fd is not None and pos is not None  # noqa: S101 - type narrowing for mypy; not a runtime check
        size = os.fstat(fd).st_size
        if size < pos.offset or not _head_matches(fd, pos):
            self._truncated(pos)
            fd, pos = self._fd, self._pos
            assert fd is not None and pos is not None  # noqa: S101 - type narrowing for mypy; not a runtime check
            size = os.fstat(fd).st_size
        if size <= pos.offset:
            return None
        data = os.pread(fd, min(self.max_bytes, size - pos.offset), pos.offset)
        end = data.rfind(b"\n") + 1
        if end == 0 and not final and len(data) < self.max_bytes:
            return None  # a partial line: wait for its newline
        taken = data if end == 0 or final else data[:end]
        lines = [
            raw.rstrip(b"\r").decode("utf-8", errors="replace")
            for raw in (taken[:-1] if taken.endswith(b"\n") else taken).split(b"\n")
        ]
        offset = pos.offset + len(taken)
        head, head_len = pos.head, pos.head_len
        if head_len < self.head_bytes:
            head_len = min(self.head_bytes, offset)
            head = hashlib.sha256(os.pread(fd, head_len, 0)).hexdigest()
        new = replace(pos, offset=offset, line=pos.line + len(lines), head=head, head_len=head_len)
        self._pos = new
        return Chunk(lines=lines, first_line=pos.line, position=new, nbytes=len(taken))

    def _moved_on(self) -> bool:
        """True when the path names another file than the open one (rotation)."""
        assert self._pos is not None  # noqa: S101 - type narrowing for mypy; not a runtime check
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False  # rotated, new file not created yet: keep the old one open
        return (st.st_dev, st.st_ino) != self._pos.identity

    def _switch(self) -> None:
        self.close()
        self.rotations += 1
        log.info("follow_rotated", path=str(self.path))
        self._pos = None
        self._open()


def _fresh(st: os.stat_result) -> FilePosition:
    return FilePosition(st.st_dev, st.st_ino, 0, 1, _EMPTY_HASH, 0)


def _head_matches(fd: int, pos: FilePosition) -> bool:
    if pos.head_len == 0:
        return True
    data = os.pread(fd, pos.head_len, 0)
    return len(data) == pos.head_len and hashlib.sha256(data).hexdigest() == pos.head


def _last_line_end(fd: int, size: int) -> tuple[int, int]:
    """``(offset after the last newline, number of the line there)`` for a from-end start."""
    newlines, last, offset = 0, 0, 0
    while offset < size:
        block = os.pread(fd, min(MAX_CHUNK_BYTES, size - offset), offset)
        if not block:
            break
        newlines += block.count(b"\n")
        at = block.rfind(b"\n")
        if at >= 0:
            last = offset + at + 1
        offset += len(block)
    return last, newlines + 1


def _siblings(path: Path) -> Iterator[Path]:
    """Files in the same folder that may be a rotated copy (not compressed, not the path)."""
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return
    for entry in sorted(entries):
        if entry.name != path.name and not entry.name.lower().endswith(_COMPRESSED):
            yield entry


def _find_by_inode(path: Path, saved: FilePosition) -> int | None:
    """An open descriptor of the saved file under another name in the folder, if any."""
    for entry in _siblings(path):
        try:
            st = entry.stat()
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == saved.identity and st.st_size >= saved.offset:
            fd = _open_matching(entry, saved)
            if fd is not None:
                return fd
    return None


def _find_copy(path: Path, saved: FilePosition) -> int | None:
    """An open descriptor of a copy of the saved file (same head, at least as long)."""
    if saved.head_len == 0:
        return None
    prefix = path.name
    for entry in _siblings(path):
        if not entry.name.startswith(prefix):
            continue
        try:
            if not entry.is_file() or entry.stat().st_size < saved.offset:
                continue
        except OSError:
            continue
        fd = _open_matching(entry, saved)
        if fd is not None:
            return fd
    return None


def _open_matching(entry: Path, saved: FilePosition) -> int | None:
    try:
        fd = os.open(entry, os.O_RDONLY)
    except OSError:
        return None
    if _head_matches(fd, saved):
        return fd
    os.close(fd)
    return None
