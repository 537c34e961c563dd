"""The review trail's hash chain: seal a draft onto the previous entry, verify the chain.

Each entry's ``hash`` is SHA-256 over a canonical JSON of every other field, including
``prev_hash`` (the previous entry's hash, or 64 zeros for the first). Editing, removing or
re-ordering any stored entry breaks the chain from that point; dropping entries at the end is
caught by the separately stored head (last seq + hash).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from typing import Any

from agent.review.models import GENESIS_HASH, TrailDraft, TrailEntry, TrailReport

__all__ = ["entry_hash", "seal", "verify_chain"]


def _canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(
    *,
    seq: int,
    entry_id: str,
    prev_hash: str,
    draft: TrailDraft,
) -> str:
    """The hash that seals ``draft`` as entry ``seq`` after ``prev_hash``."""
    fields = {
        "seq": seq,
        "id": entry_id,
        "prev_hash": prev_hash,
        "finding_id": draft.finding_id,
        "at": draft.at.isoformat(timespec="microseconds"),
        "actor": draft.actor,
        "action": draft.action.value,
        "from_status": draft.from_status,
        "to_status": draft.to_status,
        "note": draft.note,
        "details": dict(sorted(draft.details.items())),
    }
    return hashlib.sha256(_canonical(fields)).hexdigest()


def seal(draft: TrailDraft, *, seq: int, prev_hash: str, entry_id: str | None = None) -> TrailEntry:
    """Turn ``draft`` into entry ``seq`` chained after ``prev_hash``."""
    entry_id = entry_id or uuid.uuid4().hex
    digest = entry_hash(seq=seq, entry_id=entry_id, prev_hash=prev_hash, draft=draft)
    return TrailEntry(**draft.model_dump(), seq=seq, id=entry_id, prev_hash=prev_hash, hash=digest)


def verify_chain(entries: Iterable[TrailEntry], *, head: tuple[int, str] | None) -> TrailReport:
    """Check seq continuity, links and hashes of ``entries`` (in seq order) against ``head``."""
    expected_prev = GENESIS_HASH
    expected_seq = 1
    count = 0
    for entry in entries:
        count += 1
        problem = None
        if entry.seq != expected_seq:
            problem = f"entry {expected_seq} is missing (next stored entry is {entry.seq})"
        elif entry.prev_hash != expected_prev:
            problem = f"entry {entry.seq} does not link to the entry before it"
        elif (
            entry_hash(seq=entry.seq, entry_id=entry.id, prev_hash=entry.prev_hash, draft=entry)
            != entry.hash
        ):
            problem = f"entry {entry.seq} was changed after it was written (hash mismatch)"
        if problem:
            return TrailReport(
                ok=False,
                entries=count,
                head_seq=head[0] if head else 0,
                first_bad_seq=min(entry.seq, expected_seq),
                problem=problem,
            )
        expected_prev = entry.hash
        expected_seq += 1
    last_seq = expected_seq - 1
    head_seq, head_hash = head if head else (0, GENESIS_HASH)
    if (head_seq, head_hash) != (last_seq, expected_prev):
        return TrailReport(
            ok=False,
            entries=count,
            head_seq=head_seq,
            first_bad_seq=min(head_seq, last_seq) + 1,
            problem=(
                f"the chain head says entry {head_seq} is the last one, but the stored entries "
                f"end at {last_seq} (entries removed or the head edited)"
            ),
        )
    return TrailReport(ok=True, entries=count, head_seq=head_seq)
