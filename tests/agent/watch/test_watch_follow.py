"""agent.follow: tail -F for one file, across rotation, copytruncate and restarts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from agent.follow import Chunk, FileFollower, FilePosition


def append(path: Path, *lines: str, newline: bool = True) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + ("\n" if newline else ""))


def drain(follower: FileFollower) -> list[str]:
    out: list[str] = []
    while (chunk := follower.read()) is not None:
        out.extend(chunk.lines)
    return out


def numbered(follower: FileFollower) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    while (chunk := follower.read()) is not None:
        out.extend(enumerate(chunk.lines, start=chunk.first_line))
    return out


@pytest.fixture()
def log(tmp_path: Path) -> Path:
    return tmp_path / "auth.log"


def test_a_missing_file_reads_nothing_until_it_appears(log: Path) -> None:
    follower = FileFollower(log)
    assert follower.read() is None
    append(log, "a", "b")
    assert drain(follower) == ["a", "b"]


def test_lines_are_numbered_and_only_new_lines_are_returned(log: Path) -> None:
    append(log, "a", "b")
    follower = FileFollower(log)
    assert numbered(follower) == [(1, "a"), (2, "b")]
    append(log, "c")
    assert numbered(follower) == [(3, "c")]
    assert follower.read() is None


def test_a_partial_line_waits_for_its_newline(log: Path) -> None:
    append(log, "a", "par", newline=False)
    follower = FileFollower(log)
    assert drain(follower) == ["a"]
    append(log, "tial")
    assert drain(follower) == ["partial"]


def test_crlf_and_invalid_utf8_are_tolerated(log: Path) -> None:
    log.write_bytes(b"one\r\ntw\xffo\n")
    assert drain(FileFollower(log)) == ["one", "tw\ufffdo"]


def test_a_line_longer_than_a_chunk_is_cut_instead_of_stalling(log: Path) -> None:
    append(log, "x" * 50, "y")
    follower = FileFollower(log, max_bytes=16)
    lines = drain(follower)
    assert "".join(lines[:-1]) == "x" * 50 and lines[-1] == "y"


def test_chunks_never_exceed_max_bytes(log: Path) -> None:
    append(log, *[f"line {i}" for i in range(1000)])
    follower = FileFollower(log, max_bytes=100)
    chunks: list[Chunk] = []
    while (chunk := follower.read()) is not None:
        chunks.append(chunk)
    assert all(c.nbytes <= 100 for c in chunks)
    assert sum(len(c.lines) for c in chunks) == 1000
    assert chunks[-1].position.offset == log.stat().st_size


def test_rename_rotation_finishes_the_old_file_then_reads_the_new_one(log: Path) -> None:
    append(log, "a")
    follower = FileFollower(log)
    assert drain(follower) == ["a"]
    append(log, "b")  # written just before the rotation
    log.rename(log.with_name("auth.log.1"))
    append(log.with_name("auth.log.1"), "c")  # a writer that has not reopened yet
    assert drain(follower) == ["b", "c"]  # the new file does not exist yet
    append(log, "d")
    append(log.with_name("auth.log.1"), "e")  # still written after the new file appeared
    assert drain(follower) == ["e", "d"]
    assert follower.rotations == 1


def test_rotation_keeps_the_old_files_last_line_without_newline(log: Path) -> None:
    append(log, "a", "tail", newline=False)
    follower = FileFollower(log)
    assert drain(follower) == ["a"]
    log.rename(log.with_name("auth.log.1"))
    append(log, "new")
    assert drain(follower) == ["tail", "new"]


def test_new_file_lines_are_numbered_from_one(log: Path) -> None:
    append(log, "a", "b")
    follower = FileFollower(log)
    drain(follower)
    log.rename(log.with_name("auth.log.1"))
    append(log, "c")
    assert numbered(follower) == [(1, "c")]


def test_copytruncate_reads_the_copy_tail_then_the_file_from_its_start(log: Path) -> None:
    append(log, *[f"old {i}" for i in range(100)])
    follower = FileFollower(log)
    drain(follower)
    append(log, "late 1", "late 2")  # written after our last read, before the copy
    shutil.copyfile(log, log.with_name("auth.log.1"))
    with log.open("r+") as fh:
        fh.truncate(0)
    append(log, "fresh")
    assert drain(follower) == ["late 1", "late 2", "fresh"]
    assert follower.truncations == 1


def test_truncation_without_a_copy_starts_over(log: Path) -> None:
    append(log, *[f"old {i}" for i in range(10)])
    follower = FileFollower(log)
    drain(follower)
    with log.open("r+") as fh:
        fh.truncate(0)
    append(log, "fresh")
    assert numbered(follower) == [(1, "fresh")]


def test_a_file_rewritten_past_the_offset_is_detected_by_its_head(log: Path) -> None:
    append(log, "first generation")
    follower = FileFollower(log)
    drain(follower)
    with log.open("r+") as fh:  # truncate and refill before the next look: same size or more
        fh.truncate(0)
    append(log, "second generation is longer", "and has more lines")
    assert drain(follower) == ["second generation is longer", "and has more lines"]


def test_restart_resumes_exactly_after_the_saved_position(log: Path) -> None:
    append(log, "a", "b", "c")
    first = FileFollower(log, max_bytes=4)
    chunk = first.read()
    assert chunk is not None and chunk.lines == ["a", "b"]
    saved = FilePosition.from_json(chunk.position.to_json())
    first.close()
    append(log, "d")
    assert numbered(FileFollower(log, position=saved)) == [(3, "c"), (4, "d")]


def test_restart_after_a_rotation_while_stopped_finishes_the_rotated_file(log: Path) -> None:
    append(log, "a")
    first = FileFollower(log)
    drain(first)
    saved = first.position
    first.close()
    append(log, "b")
    log.rename(log.with_name("auth.log-20261128"))
    append(log, "c")
    resumed = FileFollower(log, position=saved)
    assert drain(resumed) == ["b", "c"]


def test_restart_after_the_rotated_file_was_compressed_reads_the_new_file_whole(
    log: Path,
) -> None:
    append(log, "a")
    first = FileFollower(log)
    drain(first)
    saved = first.position
    first.close()
    log.rename(log.with_name("auth.log.1.gz"))  # compressed files are not looked into
    append(log, "c")
    assert drain(FileFollower(log, position=saved)) == ["c"]


def test_restart_after_copytruncate_while_stopped_reads_the_copy_tail(log: Path) -> None:
    append(log, *[f"old {i}" for i in range(50)])
    first = FileFollower(log)
    drain(first)
    saved = first.position
    first.close()
    append(log, "late")
    shutil.copyfile(log, log.with_name("auth.log.1"))
    with log.open("r+") as fh:
        fh.truncate(0)
    append(log, "fresh")
    assert drain(FileFollower(log, position=saved)) == ["late", "fresh"]


def test_from_end_skips_existing_lines_but_keeps_their_numbers(log: Path) -> None:
    append(log, "a", "b", "partial", newline=False)
    follower = FileFollower(log, from_end=True)
    assert follower.read() is None
    append(log, "", "c")
    assert numbered(follower) == [(3, "partial"), (4, "c")]


def test_from_end_applies_only_to_the_first_file(log: Path) -> None:
    append(log, "a")
    follower = FileFollower(log, from_end=True)
    assert drain(follower) == []
    log.rename(log.with_name("auth.log.1"))
    append(log, "b", "c")
    assert drain(follower) == ["b", "c"]


def test_a_deleted_and_recreated_file_is_read_from_its_start(log: Path) -> None:
    append(log, "a")
    follower = FileFollower(log)
    drain(follower)
    os.unlink(log)
    assert follower.read() is None
    append(log, "b")
    assert drain(follower) == ["b"]


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"dev": 1, "inode": 2, "offset": 5, "line": 0, "head": "x", "head_len": 1},
        {"dev": 1, "inode": 2, "offset": 5, "line": 1, "head": "x", "head_len": 9},
        {"dev": "a", "inode": 2, "offset": 5, "line": 1, "head": "x", "head_len": 1},
    ],
)
def test_a_bad_saved_position_is_rejected(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="bad saved file position"):
        FilePosition.from_json(data)
