"""Google Cloud entries under hostile input: Cloud Audit Log entries, VPC flow entries,
timestamps and Compute instances."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agent.models import Accelerator, GpuInstance
from providers.gcp.audit import session_from_audit_entry
from providers.gcp.entries import parse_timestamp
from providers.gcp.flows import session_from_flow_entry
from providers.gcp.normalize import InventoryIndex, instance_from_compute
from tests.fuzz.hostile import FUZZ, check, hostile_values, mutated, texts
from tests.fuzz.seeds import json_records

ENTRIES = json_records("gcp/own__gpu-prod__log-entries.jsonl") + [
    r["log"] for r in json_records("gcp/iap-desktop__*.jsonl") if isinstance(r.get("log"), dict)
]
AUDIT = [e for e in ENTRIES if "protoPayload" in e]
FLOWS = [e for e in ENTRIES if "jsonPayload" in e]
INSTANCES = [
    inst
    for page in json_records("gcp/own__gpu-prod__aggregated-instances-page*.json")
    for scoped in (page.get("items") or {}).values()
    if isinstance(scoped, dict)
    for inst in scoped.get("instances") or ()
]
# Flow entries must reach a GPU target to get past the ignore rules: index the seeds' dests.
INDEX = InventoryIndex.build(
    GpuInstance(
        provider="gcp",
        account="gpu-prod",
        region="us-central1-a",
        instance_id=f"vm-{i}",
        accelerators=(Accelerator(model="nvidia-h100", count=8),),
        private_ips=(str(e["jsonPayload"]["connection"]["dest_ip"]),),
    )
    for i, e in enumerate(FLOWS)
)


@FUZZ
@given(st.one_of(st.sampled_from(AUDIT).flatmap(mutated), hostile_values))
def test_a_hostile_audit_entry_is_a_session_none_or_a_record_error(entry: Any) -> None:
    check("gcp.audit", lambda: session_from_audit_entry(entry, project="gpu-prod", index=INDEX))


@FUZZ
@given(st.one_of(st.sampled_from(FLOWS).flatmap(mutated), hostile_values))
def test_a_hostile_flow_entry_is_a_session_an_ignore_or_a_record_error(entry: Any) -> None:
    check(
        "gcp.flows",
        lambda: session_from_flow_entry(
            entry, project="gpu-prod", index=INDEX, admin_ports={22, 3389}
        ),
    )


@FUZZ
@given(st.one_of(texts, hostile_values))
def test_a_hostile_timestamp_parses_or_is_a_record_error(value: Any) -> None:
    check("gcp.timestamp", lambda: parse_timestamp(value))


@FUZZ
@given(st.one_of(st.sampled_from(INSTANCES).flatmap(mutated), hostile_values))
def test_a_hostile_compute_instance_is_an_instance_or_a_record_error(instance: Any) -> None:
    check(
        "gcp.instance",
        lambda: instance_from_compute(instance, project="gpu-prod", zone="z", accelerators=()),
    )
