"""API tokens: ``cw_<id>_<secret>``, stored as HMAC-SHA256 under a server-side pepper.

The id part is public (it names the row, shows in ``token list`` and in logs); the secret
part never leaves the ``token create`` output. Verification looks the row up by id and
compares keyed hashes in constant time. Successful lookups are cached briefly so the
``/v1/evaluate`` login path does not hit the database on every call.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime

import structlog

from agent.errors import UsageError
from agent.review.models import ApiToken, Role
from agent.store.review_store import ReviewStore

__all__ = ["TOKEN_PATTERN", "TokenService", "hash_token"]

log = structlog.get_logger(__name__)

TOKEN_PATTERN = re.compile(r"^cw_([a-z0-9]{12})_([A-Za-z0-9_-]{32,64})$")
MIN_PEPPER = 16


def hash_token(token: str, *, pepper: str) -> str:
    """Keyed hash of the whole token (hex)."""
    return hmac.new(pepper.encode(), token.encode(), hashlib.sha256).hexdigest()


class TokenService:
    """Create, verify, list and revoke API tokens."""

    def __init__(
        self,
        store: ReviewStore,
        *,
        pepper: str,
        clock: Callable[[], datetime],
        cache_seconds: float = 5.0,
    ) -> None:
        if len(pepper) < MIN_PEPPER:
            raise UsageError(
                f"the token pepper must be at least {MIN_PEPPER} characters",
                hint="set CHIPWARDEN_TOKEN_PEPPER to a long random value (same for every "
                "server replica and for `chipwarden token create`)",
            )
        self._store = store
        self._pepper = pepper
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ApiToken]] = {}
        self._lock = threading.Lock()

    def create(self, *, name: str, role: Role, created_by: str) -> tuple[str, ApiToken]:
        """A new token; the returned secret string is shown once and never stored."""
        if not name.strip():
            raise UsageError("a token needs a name (who or what uses it)")
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        token = f"cw_{token_id}_{secret}"
        record = ApiToken(
            id=token_id,
            name=name.strip(),
            role=role,
            created_at=self._clock(),
            created_by=created_by,
        )
        self._store.add_token(record, token_hash=hash_token(token, pepper=self._pepper))
        log.info("token_created", token_id=token_id, name=record.name, role=role.value)
        return token, record

    def verify(self, token: str) -> ApiToken | None:
        """The active token ``token`` names, or ``None`` (malformed, unknown, wrong, revoked)."""
        match = TOKEN_PATTERN.match(token)
        if not match:
            return None
        digest = hash_token(token, pepper=self._pepper)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = self._store.get_token(match.group(1))
        if found is None:
            return None
        record, stored = found
        if not hmac.compare_digest(stored, digest) or not record.active:
            return None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self._cache_seconds, record)
        return record

    def revoke(self, token_id: str) -> bool:
        """Revoke by id; takes effect here at once and elsewhere within the cache time."""
        done = self._store.revoke_token(token_id, at=self._clock())
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items() if v[1].id != token_id}
        if done:
            log.info("token_revoked", token_id=token_id)
        return done

    def list(self) -> list[ApiToken]:
        """Every token's metadata."""
        return self._store.list_tokens()
