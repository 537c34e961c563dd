"""API tokens: shown once, stored as a keyed hash, verified in constant time, revocable."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from agent.errors import UsageError
from agent.review.models import Role
from agent.review.service import ReviewService
from agent.review.tokens import TOKEN_PATTERN, TokenService, hash_token
from agent.store import SqlStore
from agent.store.review_store import ReviewStore
from tests.agent.review.reviewkit import PEPPER, FakeClock


def test_a_created_token_verifies_and_carries_its_role(service: ReviewService) -> None:
    token, record = service.tokens.create(name="gateway", role=Role.REVIEWER, created_by="cli")

    assert TOKEN_PATTERN.match(token)
    verified = service.tokens.verify(token)
    assert verified is not None and verified.id == record.id and verified.role is Role.REVIEWER


def test_only_a_keyed_hash_is_stored_never_the_token(
    service: ReviewService, store: SqlStore
) -> None:
    token, _ = service.tokens.create(name="ci", role=Role.VIEWER, created_by="cli")

    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM api_tokens")).mappings().all()

    assert len(rows) == 1
    assert token not in str(dict(rows[0]))
    assert token.split("_", 2)[2] not in str(dict(rows[0]))
    assert rows[0]["token_hash"] == hash_token(token, pepper=PEPPER)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t: "cw_000000000000_" + t.split("_", 2)[2],
        lambda t: t.upper(),
        lambda t: "",
        lambda t: "Bearer " + t,
    ],
)
def test_anything_but_the_exact_token_is_rejected(service: ReviewService, mangle) -> None:  # type: ignore[no-untyped-def]
    token, _ = service.tokens.create(name="x", role=Role.ADMIN, created_by="cli")

    assert service.tokens.verify(mangle(token)) is None


def test_a_different_pepper_rejects_every_token(store: SqlStore, clock: FakeClock) -> None:
    token, _ = TokenService(ReviewStore(store), pepper=PEPPER, clock=clock).create(
        name="x", role=Role.ADMIN, created_by="cli"
    )
    other = TokenService(ReviewStore(store), pepper="another-pepper-0123456789", clock=clock)

    assert other.verify(token) is None


def test_revoked_tokens_stop_verifying_at_once_in_this_process(service: ReviewService) -> None:
    token, record = service.tokens.create(name="x", role=Role.ADMIN, created_by="cli")
    assert service.tokens.verify(token) is not None  # now cached

    assert service.tokens.revoke(record.id)

    assert service.tokens.verify(token) is None
    assert not service.tokens.revoke(record.id)
    assert service.tokens.list()[0].revoked_at is not None


def test_a_short_or_missing_pepper_is_a_usage_error_with_a_hint(
    store: SqlStore, clock: FakeClock
) -> None:
    with pytest.raises(UsageError, match="at least 16"):
        TokenService(ReviewStore(store), pepper="short", clock=clock)
    with pytest.raises(UsageError) as caught:
        _ = ReviewService(store, clock=clock, pepper=None).tokens
    assert "CHIPWARDEN_TOKEN_PEPPER" in (caught.value.hint or "")
