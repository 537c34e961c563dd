"""``HistoryContext``: feeds principal-history signals into ``EvaluationInput.context``.

Per batch it reads the principals' remembered visits once, judges each session against the
visits that started before it (remembered ones and the batch's successful sessions), and
records the successful sessions (unless ``record=False``, as in ``chipwarden replay``). A
session history already remembers is judged by the visits recorded up to it (``seq``), so a
rerun gives the facts of the first run; a later session recorded before an earlier successful
one (read from another source first) is that earlier one's travel neighbour. Memory is
bounded by the batch plus ``keep`` visits per principal.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import structlog

from agent.history.geo import Centroids, load_centroids, load_working_hours
from agent.history.signals import HistorySettings, Visit, evaluate_visit
from agent.history.store import HistoryStore
from agent.models import EvaluationInput, IpKind, Outcome

__all__ = ["HistoryContext"]

log = structlog.get_logger(__name__)


def _visit(item: EvaluationInput) -> Visit | None:
    session, intel = item.session, item.intel
    if not session.principal or intel.kind is not IpKind.PUBLIC or not intel.country:
        return None
    return Visit(
        principal=session.principal,
        session_id=session.session_id,
        started_at=session.started_at,
        provider=session.provider,
        source_ip=intel.normalized or intel.ip,
        country=intel.country,
        asn=intel.asn,
    )


def _known_by(first: Visit, prior: list[Visit]) -> list[Visit]:
    """What history held when ``first`` was recorded: a rerun (crash recovery, an
    overlapping window) judges the session by the same visits as the first run, not by
    visits another source added since."""
    if first.seq is None:
        return prior
    return [v for v in prior if v.seq is not None and v.seq <= first.seq]


def _recorded_before(first: Visit | None, remembered: Iterable[Visit]) -> frozenset[str]:
    """Session ids history held before ``first`` was recorded (all of them for a new one)."""
    if first is None:
        return frozenset(v.session_id for v in remembered)
    mark = first.seq or 0
    return frozenset(
        v.session_id for v in remembered if v.session_id != first.session_id and (v.seq or 0) < mark
    )


class HistoryContext:
    """Context provider for the pipeline (``contexts(items) -> list[dict]``)."""

    name = "history"

    def __init__(
        self,
        *,
        store: HistoryStore,
        settings: HistorySettings | None = None,
        centroids: Centroids | None = None,
        record: bool = True,
    ) -> None:
        self._store = store
        self._settings = settings or HistorySettings(keep=store.keep, zones=load_working_hours())
        self._centroids = centroids or load_centroids()
        self._record = record

    def contexts(self, items: Sequence[EvaluationInput]) -> list[dict[str, str]]:
        """History facts per item (``{}`` when the session has no principal or location)."""
        visits = [_visit(item) for item in items]
        by_principal: dict[str, list[int]] = defaultdict(list)
        for i, visit in enumerate(visits):
            if visit is not None:
                by_principal[visit.principal].append(i)
        out: list[dict[str, str]] = [{} for _ in items]
        if not by_principal:
            return out
        known = self._store.recent(list(by_principal))
        to_record: list[Visit] = []
        for principal, indexes in by_principal.items():
            remembered = {v.session_id: v for v in known.get(principal, ())}
            pool = dict(remembered)
            for i in indexes:
                visit = visits[i]
                if visit is not None and items[i].session.outcome is Outcome.SUCCESS:
                    pool.setdefault(visit.session_id, visit)
                    to_record.append(visit)
            prior = sorted(pool.values(), key=lambda v: v.started_at)
            for i in indexes:
                visit = visits[i]
                assert visit is not None  # noqa: S101 - type narrowing for mypy; not a runtime check
                first = remembered.get(visit.session_id)
                out[i] = evaluate_visit(
                    visit,
                    prior if first is None else _known_by(first, prior),
                    centroids=self._centroids,
                    settings=self._settings,
                    # failed attempts are not remembered, so a rerun could not tell what
                    # history held when one was first judged: earlier neighbours only
                    recorded_before=_recorded_before(first, remembered.values())
                    if items[i].session.outcome is Outcome.SUCCESS
                    else frozenset(),
                )
        if self._record:
            self._store.record(to_record)
        fired = sum(1 for facts in out if "history.reasons" in facts)
        log.debug("history_signals", sessions=len(items), principals=len(by_principal), fired=fired)
        return out
