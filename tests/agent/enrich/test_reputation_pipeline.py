"""The pipeline's Evaluator passes each session's time to the enricher and merges context."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from agent.enrich import GeoEnricher
from agent.enrich.reputation import BUNDLED_DATA_DIR, Reputation
from agent.inventory_index import InventoryIndex
from agent.models import Accelerator, AccessMethod, EvaluationInput, Session
from agent.pipeline import Evaluator
from policies.catalog import ChipCatalog
from policies.engine import YamlPolicyEngine

NOW = datetime(2026, 7, 1, tzinfo=UTC)
TOR_2024 = "101.99.92.179"  # in the bundled bulk list dated 2024-02-27


def session(key: str, when: datetime) -> Session:
    return Session(
        key=key,
        provider="aws",
        source="test",
        account="111122223333",
        instance_id="i-0abc",
        instance_type="p5.48xlarge",
        accelerators=(Accelerator(model="nvidia-h100", count=8),),
        principal="alice",
        source_ip=TOR_2024,
        method=AccessMethod.SSM_SESSION,
        started_at=when,
    )


class Marker:
    """A context provider that labels every item."""

    def contexts(self, items: Sequence[EvaluationInput]) -> list[dict[str, str]]:
        return [{"marker": item.session.key} for item in items]


def test_tor_tags_and_the_medium_floor_follow_the_session_time() -> None:
    engine = YamlPolicyEngine.from_refs(
        ["builtin:export-controls"], base_dir=Path.cwd(), clock=lambda: NOW
    )
    enricher = GeoEnricher(reputation=Reputation.load([BUNDLED_DATA_DIR]))
    evaluator = Evaluator(
        engine=engine,
        enricher=enricher,
        classifier=ChipCatalog(),
        inventory=InventoryIndex(),
        clock=lambda: NOW,
        context_providers=[Marker()],
    )

    then, later = evaluator.inputs(
        [session("then", datetime(2024, 2, 28, tzinfo=UTC)), session("later", NOW)]
    )

    assert then.intel.tags == ("tor-exit",) and later.intel.tags == ()
    assert (then.context["marker"], later.context["marker"]) == ("then", "later")
    [finding] = evaluator.findings(then, run_id="r")
    assert finding.policy_id == "ec-medium-evasion-network-to-controlled"
    assert evaluator.findings(later, run_id="r") == []
