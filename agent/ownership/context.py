"""``OwnershipContext``: account ownership (and optional CSL screening) as evaluation context.

Keys: ``owner``, ``ultimate_parent``, ``parent_hq_country``, ``ownership`` (a plain sentence
with the file and line), and with screening ``csl_match`` (``true``/``false``), ``csl_score``
(0-100), ``csl_entry`` and ``csl.reason``.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.models import EvaluationInput
from agent.ownership.owners import OwnershipIndex
from agent.ownership.screening import Screener

__all__ = ["OwnershipContext"]


class OwnershipContext:
    """Context provider for the pipeline (``contexts(items) -> list[dict]``)."""

    name = "ownership"

    def __init__(self, *, index: OwnershipIndex, screener: Screener | None = None) -> None:
        self._index = index
        self._screener = screener

    def facts(self, provider: str, account: str | None) -> dict[str, str]:
        """Ownership facts of one account (``{}`` when it is not in the ownership files)."""
        rec = self._index.get(provider, account)
        if rec is None:
            return {}
        facts = {
            "owner": rec.owner,
            "ultimate_parent": rec.ultimate_parent,
            "ownership": rec.describe(),
        }
        if rec.parent_hq_country:
            facts["parent_hq_country"] = rec.parent_hq_country
        if self._screener is not None:
            hits = [
                self._screener.screen(n) for n in dict.fromkeys((rec.owner, rec.ultimate_parent))
            ]
            found = [h for h in hits if h is not None]
            facts["csl_match"] = "true" if found else "false"
            if found:
                best = max(found, key=lambda h: h.score)
                facts["csl_score"] = f"{best.score:.0f}"
                facts["csl_entry"] = best.entry.name
                facts["csl.reason"] = f"{rec.describe()}; {best.describe()}"
        return facts

    def contexts(self, items: Sequence[EvaluationInput]) -> list[dict[str, str]]:
        """Facts for each item's target account (the session's, else the instance's)."""
        out = []
        for item in items:
            session = item.session
            account = session.account or (item.instance.account if item.instance else None)
            out.append(self.facts(session.provider, account))
        return out
