"""Bounded reading of untrusted log files: gzip inflation with output limits, capped lines.

A gzip bomb (a 1 MB file that inflates to terabytes) or a file with one 2 GB line must not
exhaust memory. ``inflate`` hands out decompressed pieces of at most ``piece_bytes`` and stops
with :class:`InflateLimitError` as soon as more than ``limit`` bytes came out, so a whole-file
reader never allocates more than its limit. ``text_lines`` cuts lines at a maximum length.
The gzip decoder is the fastest installed one (ISA-L, zlib-ng, then zlib).
"""

from __future__ import annotations

import errno
import gzip
import io
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO, Final

__all__ = [
    "DECOMPRESSOR",
    "GZIP_MAGIC",
    "CorruptGzipError",
    "InflateLimitError",
    "gunzip",
    "gunzip_stream",
    "inflate",
    "new_decoder",
    "over_long_line",
    "read_limited",
    "text_lines",
]

GZIP_MAGIC: Final = b"\x1f\x8b"
READ_BYTES: Final = 1 << 20
"""Compressed bytes read from a stream at a time."""


def _decompressor() -> tuple[str, Callable[..., Any]]:
    """The fastest installed raw zlib ``decompressobj`` (ISA-L, zlib-ng, then zlib)."""
    try:
        from isal import isal_zlib

        return "isal", isal_zlib.decompressobj
    except ImportError:
        pass
    try:
        from zlib_ng import zlib_ng

        return "zlib-ng", zlib_ng.decompressobj
    except ImportError:
        return "zlib", zlib.decompressobj


DECOMPRESSOR, _decompressobj = _decompressor()
"""Name of the gzip decoder in use: ``isal``, ``zlib-ng`` or ``zlib`` (``chipwarden[fast]``)."""


def new_decoder() -> Any:
    """A decoder for one gzip member (header and trailer checked)."""
    return _decompressobj(31)  # 16 + MAX_WBITS


class InflateLimitError(OSError):
    """Decompressed data went past its limit: a gzip bomb, or not the kind of file expected."""

    def __init__(self, limit: int) -> None:
        super().__init__(errno.EFBIG, f"decompresses to more than the {limit}-byte limit")
        self.limit = limit


class CorruptGzipError(OSError):
    """The gzip data is damaged (the decoder's error, whichever library raised it)."""


_FIRST_SLICE: Final = 1 << 10
_MAX_SLICE: Final = 1 << 20
_NOT_ZERO: Final = re.compile(rb"[^\0]")


def inflate(
    pieces: Iterable[bytes], *, limit: int | None = None, piece_bytes: int | None = None
) -> Iterator[bytes]:
    """Decompressed pieces of the gzip data in ``pieces``, every member (``gzip.decompress``
    semantics: zero padding between and after members allowed).

    Each piece is at most ``piece_bytes`` long; past ``limit`` bytes in total
    :class:`InflateLimitError` is raised before more is allocated. ``EOFError`` when the data
    is truncated; :class:`CorruptGzipError` when it is corrupt. Input goes to the decoder in
    slices that start small with each member and double, so a file of millions of tiny
    members costs time in proportion to its size (the decoder copies what follows a member).
    """
    state = _Inflater(limit=limit, piece_bytes=piece_bytes)
    for data in pieces:
        view, pos = memoryview(data), 0
        while pos < len(view):
            if state.decoder is None:
                found = _NOT_ZERO.search(data, pos)
                if found is None:
                    break
                pos = found.start()
                state.start_member()
            chunk = view[pos : pos + state.slice]
            yield from state.feed(chunk)
            pos += len(chunk) - state.left_over
    if state.decoder is not None:
        raise EOFError("compressed file ended before the end-of-stream marker was reached")


class _Inflater:
    """One decoder at a time, the output budget, and the input slice size."""

    def __init__(self, *, limit: int | None, piece_bytes: int | None) -> None:
        self.limit, self.piece_bytes = limit, piece_bytes
        self.produced = 0
        self.decoder: Any = None
        self.slice = _FIRST_SLICE
        self.left_over = 0  # bytes of the last chunk after the member that ended in it

    def start_member(self) -> None:
        self.decoder, self.slice = new_decoder(), _FIRST_SLICE

    def feed(self, chunk: memoryview) -> Iterator[bytes]:
        """Output of ``chunk``; sets ``left_over`` and ends the member at its end."""
        decoder, data = self.decoder, chunk
        while True:
            cap = self.piece_bytes or 0
            if self.limit is not None:
                left = self.limit - self.produced + 1  # one byte more tells "over the limit"
                cap = min(cap, left) if cap else left
            try:
                out = decoder.decompress(data, cap)
            except Exception as exc:  # zlib.error, IsalError, ...: one type for callers
                raise CorruptGzipError(f"corrupt gzip data: {exc}") from exc
            self.produced += len(out)
            if self.limit is not None and self.produced > self.limit:
                raise InflateLimitError(self.limit)
            if out:
                yield out
            data = decoder.unconsumed_tail
            if decoder.eof or (not data and (not cap or len(out) < cap)):
                break  # else output is still pending inside the decoder
        self.left_over = len(decoder.unused_data) if decoder.eof else 0
        if decoder.eof:
            self.decoder = None
        else:
            self.slice = min(self.slice * 2, _MAX_SLICE)


def gunzip(data: bytes, *, limit: int | None = None) -> bytes:
    """All members of the gzip ``data``, decompressed; see :func:`inflate` for the errors."""
    parts = list(inflate((data,), limit=limit))
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _reads(stream: BinaryIO, size: int, total: int | None) -> Iterator[bytes]:
    """``stream`` read ``size`` bytes at a time; ``OSError(EFBIG)`` past ``total`` bytes."""
    seen = 0
    while chunk := stream.read(size):
        seen += len(chunk)
        if total is not None and seen > total:
            raise OSError(errno.EFBIG, f"the object is over the {total}-byte limit")
        yield chunk


def gunzip_stream(stream: BinaryIO, *, limit: int, compressed_limit: int | None = None) -> bytes:
    """A whole gzip stream (an S3 body) decompressed; at most ``limit`` bytes come out and at
    most ``compressed_limit`` go in (``OSError(EFBIG)``), read a piece at a time."""
    parts = list(inflate(_reads(stream, READ_BYTES, compressed_limit), limit=limit))
    return parts[0] if len(parts) == 1 else b"".join(parts)


def read_limited(stream: BinaryIO, *, limit: int) -> bytes:
    """A whole plain stream, ``OSError(EFBIG)`` when it holds more than ``limit`` bytes."""
    parts = list(_reads(stream, READ_BYTES, limit))
    return parts[0] if len(parts) == 1 else b"".join(parts)


def over_long_line(size: int) -> str:
    """The stand-in for a line too long to hold: one field, so every parser quarantines it."""
    return f"[over-long-line-not-read:{size}]\n"


def text_lines(stream: BinaryIO, *, max_line: int) -> Iterator[str]:
    """Lines of a plain or gzip stream (gzip detected by magic bytes), decoded leniently with
    universal newlines. A line longer than ``max_line`` characters is never held whole: it is
    replaced by :func:`over_long_line`. gzip is inflated a bounded piece at a time."""
    raw: Any = stream
    head = stream.peek(2)[:2] if isinstance(stream, io.BufferedReader) else b""
    if head == GZIP_MAGIC:
        raw = gzip.GzipFile(fileobj=stream, mode="rb")
    text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=None)
    while line := text.readline(max_line):
        if len(line) < max_line or line.endswith("\n"):
            yield line
            continue
        size = len(line)
        while rest := text.readline(max_line):
            size += len(rest)
            if rest.endswith("\n"):
                break
        yield over_long_line(size)
