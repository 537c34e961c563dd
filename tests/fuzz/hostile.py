"""Hostile-input strategies and the one property every parser must keep.

The property (``check``): a parser returns a result or raises ``RecordError`` /
``ChipwardenError`` (or its documented whole-file error); any other exception is a bug. Every
Session it returns must be usable downstream: its id hashes, it serialises to JSON.

Bugs already reported are listed in ``KNOWN_BUGS`` (target, exception type, message regex):
the fuzzers count them instead of failing, so they keep exploring; each has a deterministic
``xfail(strict=True)`` reproduction in test_fuzz_known_bugs.py that flips when it is fixed.
"""

from __future__ import annotations

import copy
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from agent.errors import ChipwardenError
from agent.models import Session

EXAMPLES = int(os.environ.get("CW_FUZZ_EXAMPLES", "60"))
"""Examples per property (the report script raises it)."""

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("CW_FUZZ_RANDOM") != "1",
)
"""Derandomized by default (same examples every run: no flaky CI); CW_FUZZ_RANDOM=1 explores."""

TALLY: Counter[tuple[str, str]] = Counter()
"""(target, outcome) -> inputs; written to $CW_FUZZ_TALLY by conftest at session end."""


@dataclass(frozen=True)
class KnownBug:
    targets: str  # regex matched against the target name
    error: type[BaseException]
    message: str  # regex searched in str(exception)
    test: str  # the xfail reproduction in test_fuzz_known_bugs.py


_DIGITS = r"Exceeds the limit .* integer string conversion"
KNOWN_BUGS: tuple[KnownBug, ...] = ()  # all reported bugs are fixed; see test_fuzz_known_bugs


def _known(target: str, exc: BaseException) -> KnownBug | None:
    for bug in KNOWN_BUGS:
        if (
            re.match(bug.targets, target)
            and isinstance(exc, bug.error)
            and re.search(bug.message, str(exc))
        ):
            return bug
    return None


def usable(session: Session) -> None:
    """What the pipeline does with every session: hash its id, serialise it."""
    assert isinstance(session, Session)
    assert len(session.session_id) == 32
    session.model_dump_json()


def sessions_in(result: Any) -> Iterable[Session]:
    """Sessions anywhere in a parser's result (a Session, a list, a tuple, an object)."""
    if isinstance(result, Session):
        yield result
    elif isinstance(result, list | tuple):
        for item in result:
            yield from sessions_in(item)
    elif hasattr(result, "sessions") and isinstance(result.sessions, list | tuple):
        yield from sessions_in(result.sessions)
    elif hasattr(result, "session") and isinstance(result.session, Session):
        yield result.session


def check(
    target: str,
    call: Callable[[], Any],
    *,
    allowed: tuple[type[BaseException], ...] = (),
) -> Any:
    """Run ``call`` under the property; returns its result (None when it was rejected)."""
    try:
        result = call()
        for session in sessions_in(result):
            usable(session)
    except (ChipwardenError, *allowed):
        TALLY[(target, "rejected")] += 1
        return None
    except Exception as exc:  # the property: nothing else may escape
        if _known(target, exc):
            TALLY[(target, "known-bug")] += 1
            return None
        raise AssertionError(f"{target}: {type(exc).__name__} escaped: {exc}") from exc
    TALLY[(target, "accepted")] += 1
    return result


# -- strategies ---------------------------------------------------------------------------

NASTY_STRINGS = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ufeff",
    "\u202etxt.exe",
    "\ud800",
    "\udfff",
    "💥" * 50,
    "null",
    "None",
    "NaN",
    "-1",
    "1e309",
    "9" * 5000,
    "A" * 100_000,
    "123.456.789.012",
    "256.1.1.1",
    "1.2.3",
    "1.2.3.4.5",
    "01.02.03.04",
    "0x7f.1",
    "fe80::1%eth0",
    "fe80::1%25eth0",
    "fe80::1%",
    "[::1]:22",
    "[2001:db8::1]:99999",
    "::ffff:175.45.176.1",
    "::ffff:10.0.0.1",
    "64:ff9b::175.45.176.1",
    "2002:af2d:b001::1",
    "1.2.3.4:22",
    "1.2.3.4:",
    "AWS Internal",
    "ssm.amazonaws.com",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "'; DROP TABLE findings; --",
    "${jndi:ldap://x/a}",
    "%s%s%s%n",
    "2026-02-30T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2026-11-25T10:00:00.1234567890123Z",
)

texts = st.one_of(st.sampled_from(NASTY_STRINGS), st.text(max_size=60))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
)


def deep(depth: int, leaf: Any = None) -> Any:
    """``depth`` levels of nested lists and objects around ``leaf``."""
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=12,
)
hostile_values = st.one_of(json_values, st.integers(1, 300).map(deep), st.just([[]] * 50))
NASTY_JSON = (
    b"9" * 5000,  # an integer past Python's 4300-digit conversion limit
    b"-" + b"1" * 4400,
    b"1e999999",
    b"[" * 100_000 + b"]" * 100_000,  # nesting past the recursion limit
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'"\\ud800"',  # a lone surrogate escape
    b'"\\u0000"',
    b"NaN",
    b"\xef\xbb\xbf{}",
    b"\xff\xfe\x00{",
)
"""JSON documents (or JSON lines) that stress the decoder itself."""


def mutated(template: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``template`` with some keys (nested ones too) deleted, or replaced by hostile values."""
    paths = list(_paths(template))

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        record = copy.deepcopy(template)
        for path in draw(st.lists(st.sampled_from(paths), max_size=4, unique=True)):
            parent = record
            for key in path[:-1]:
                parent = parent.get(key) if isinstance(parent, dict) else None
            if not isinstance(parent, dict) or path[-1] not in parent:
                continue
            if draw(st.booleans()):
                del parent[path[-1]]
            else:
                parent[path[-1]] = draw(hostile_values)
        return record

    return build()


def _paths(obj: Any, prefix: tuple[str, ...] = ()) -> Iterable[tuple[str, ...]]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
