"""``parse_event_list``: the audit webhook backend's EventList body -> sessions + item errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.errors import RecordError
from agent.models import AccessMethod
from providers.kubernetes.audit import parse_event_list


@pytest.fixture
def body(data_dir: Path) -> bytes:
    return (data_dir / "webhook" / "eventlist.json").read_bytes()


def test_event_list_becomes_sessions_with_stages_collapsed(body: bytes) -> None:
    sessions, errors = parse_event_list(body, cluster="gpu-lab")
    by_principal = {s.principal: s for s in sessions}
    assert set(by_principal) == {"liam@example.com", "mia@example.com"}
    liam = by_principal["liam@example.com"]
    assert liam.method is AccessMethod.KUBERNETES_EXEC
    assert liam.account == "gpu-lab"
    assert liam.ended_at is not None  # ResponseComplete (items[2]) won over ResponseStarted
    assert liam.evidence[0].kind == "webhook"
    assert liam.evidence[0].position == "items[2]"
    assert by_principal["mia@example.com"].method is AccessMethod.KUBERNETES_ATTACH
    assert errors == ["items[4]: sourceIPs is not a list of strings"]


def test_static_node_map_resolves_pods_to_nodes(body: bytes) -> None:
    sessions, _ = parse_event_list(
        body, cluster="gpu-lab", nodes={"ml-team/trainer-0": "ip-10-0-1-23.ec2.internal"}
    )
    nodes = {s.principal: s.instance_id for s in sessions}
    assert nodes == {"liam@example.com": "ip-10-0-1-23.ec2.internal", "mia@example.com": None}


def test_empty_event_list_is_fine() -> None:
    body = json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": []})
    assert parse_event_list(body.encode(), cluster="c") == ([], [])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "JSON list, not an EventList"),
        (b'{"kind": "Event", "apiVersion": "audit.k8s.io/v1"}', "kind is 'Event'"),
        (b'{"kind": "EventList", "apiVersion": "v1", "items": []}', "apiVersion is 'v1'"),
        (
            b'{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": {}}',
            "items is not a list",
        ),
    ],
)
def test_malformed_bodies_raise_record_error(body: bytes, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        parse_event_list(body, cluster="c")
