"""VPC flow-log normalisation: admin-port flows to GPU VMs, IAP range never geolocated."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agent.errors import RecordError
from agent.models import Accelerator, AccessMethod, GpuInstance
from providers.gcp.countries import to_alpha2
from providers.gcp.flows import session_from_flow_entry
from providers.gcp.normalize import InventoryIndex

from .samples import own_entry

PORTS = (22, 3389, 5900, 8888)


def _index() -> InventoryIndex:
    t4 = (Accelerator(model="nvidia-t4", count=1),)
    h100 = (Accelerator(model="nvidia-h100", count=8),)
    return InventoryIndex.build(
        [
            GpuInstance(
                provider="gcp",
                account="gpu-prod",
                region="europe-west4-a",
                instance_id="notebook-t4",
                accelerators=t4,
                private_ips=("10.164.0.5",),
            ),
            GpuInstance(
                provider="gcp",
                account="gpu-prod",
                region="us-central1-a",
                instance_id="trainer-a3",
                accelerators=h100,
                private_ips=("10.128.0.10",),
            ),
            GpuInstance(
                provider="gcp",
                account="gpu-prod",
                region="europe-west4-a",
                instance_id="web-1",
                private_ips=("10.164.0.6",),
            ),
        ]
    )


def _flow(insert_id: str) -> dict[str, Any]:
    return copy.deepcopy(own_entry(insert_id))


def test_inbound_ssh_flow_to_a_gpu_vm_is_a_network_flow_session_with_google_country() -> None:
    result = session_from_flow_entry(
        _flow("flow-0001"), project="gpu-prod", index=_index(), admin_ports=PORTS
    )
    s = result.session
    assert s is not None and result.ignored is None
    assert s.method is AccessMethod.NETWORK_FLOW
    assert (s.account, s.instance_id, s.region) == ("gpu-prod", "notebook-t4", "europe-west4-a")
    assert s.source_ip == "198.51.100.23"
    assert s.attributes["provider_country"] == "RU"
    assert s.attributes["provider_country_raw"] == "rus"
    assert s.attributes["provider_asn"] == "12389"
    assert s.attributes["dest_port"] == "22"
    assert s.source == "gcp-vpc-flows"


def test_later_flow_records_of_the_same_connection_share_the_session_key() -> None:
    first = session_from_flow_entry(
        _flow("flow-0001"), project="gpu-prod", index=_index(), admin_ports=PORTS
    ).session
    again = session_from_flow_entry(
        _flow("flow-0002"), project="gpu-prod", index=_index(), admin_ports=PORTS
    ).session
    assert first is not None and again is not None and first.key == again.key


def test_flows_from_the_iap_range_are_ignored_not_geolocated() -> None:
    result = session_from_flow_entry(
        _flow("flow-0003"), project="gpu-prod", index=_index(), admin_ports=PORTS
    )
    assert result.session is None and result.ignored == "iap-range"
    assert result.target is not None and result.target.instance_id == "trainer-a3"


def test_flows_to_vms_without_accelerators_are_ignored() -> None:
    result = session_from_flow_entry(
        _flow("flow-0004"), project="gpu-prod", index=_index(), admin_ports=PORTS
    )
    assert result.session is None and result.ignored == "not-gpu-target"


def test_a_flow_without_dest_instance_resolves_by_destination_ip() -> None:
    result = session_from_flow_entry(
        _flow("flow-0005"), project="gpu-prod", index=_index(), admin_ports=PORTS
    )
    s = result.session
    assert s is not None and s.instance_id == "trainer-a3"
    assert s.source_ip == "2001:db8::1" and "provider_country" not in s.attributes


def test_non_admin_ports_and_unknown_targets_are_ignored() -> None:
    result = session_from_flow_entry(
        _flow("flow-0001"), project="gpu-prod", index=_index(), admin_ports=(3389,)
    )
    assert result.ignored == "not-admin-port"
    result = session_from_flow_entry(
        _flow("flow-0001"), project="gpu-prod", index=InventoryIndex(), admin_ports=PORTS
    )
    assert result.ignored == "unknown-target"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.pop("connection"), "connection"),
        (lambda p: p["connection"].update(src_ip="999.1.1.1"), "not an IP"),
        (lambda p: p["connection"].update(dest_port="ssh"), "dest_port"),
        (lambda p: p["connection"].pop("dest_ip"), "dest_ip"),
    ],
)
def test_malformed_flow_entries_raise_record_error(mutate: Any, message: str) -> None:
    entry = _flow("flow-0001")
    mutate(entry["jsonPayload"])
    with pytest.raises(RecordError, match=message):
        session_from_flow_entry(entry, project="gpu-prod", index=_index(), admin_ports=PORTS)


@pytest.mark.parametrize(
    ("raw", "alpha2"),
    [
        ("rus", "RU"),
        ("USA", "US"),
        ("chn", "CN"),
        ("hkg", "HK"),
        ("mac", "MO"),
        ("irn", "IR"),
        ("prk", "KP"),
        ("ru", "RU"),
        ("", None),
        ("xyz", None),
        (None, None),
    ],
)
def test_country_codes_are_normalised_to_alpha2(raw: str | None, alpha2: str | None) -> None:
    assert to_alpha2(raw) == alpha2
