"""GcpClient under faults made on the wire by the fake (a seeded ``FaultPlan`` per request):
each transient kind is retried, an expired token is refreshed, a permanent one is reported."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agent.contracts import CollectContext, SourceEnv
from agent.errors import ProviderUnavailable, SourceError
from providers.gcp.client import GcpClient
from providers.gcp.config import Endpoints, RetrySettings
from providers.gcp.provider import GcpSource
from tests.reliability.faultlab import FaultPlan

from .fakegcp import FakeGcp
from .faultworld import credentials_file

FLOWS = 'logName="projects/gpu-prod/logs/compute.googleapis.com%2Fvpc_flows"'
NO_WAIT = RetrySettings(initial=0.001, maximum=0.001, multiplier=1, deadline=30, attempts=5)


def _client(fake: FakeGcp, **kwargs: object) -> GcpClient:
    options: dict[str, object] = {
        "credentials": "anonymous",
        "endpoints": Endpoints(
            compute=fake.url, logging=fake.url, resourcemanager=fake.url, tpu=fake.url
        ),
        "retry": NO_WAIT,
        "timeout": 5,
        "page_size": 2,
    }
    options.update(kwargs)
    return GcpClient(**options)  # type: ignore[arg-type]


def _once(kind: str, where: str = "") -> FaultPlan:
    """Every matching request fails once with ``kind``, then goes through."""
    return FaultPlan(rate=1.0, kinds=(kind,), max_consecutive=1, matches=lambda i: where in i)


def _flow_ids(client: GcpClient) -> list[str]:
    return [e["insertId"] for page in client.list_entries("gpu-prod", filter_=FLOWS) for e in page]


ALL_FLOWS = ["flow-0001", "flow-0002", "flow-0003", "flow-0004", "flow-0005"]


def test_a_throttled_call_waits_the_servers_retry_after_then_succeeds(gpu_prod: FakeGcp) -> None:
    gpu_prod.plan = _once("throttle")
    gpu_prod.retry_after = "3"
    sleeps: list[float] = []
    scopes = list(_client(gpu_prod, sleep=sleeps.append).aggregated_instances("gpu-prod"))
    assert len(scopes) == 4  # both pages
    assert sleeps == [3.0, 3.0]  # one 429 per page, each waited as the server asked
    assert len(gpu_prod.calls("GET", "aggregated/instances")) == 4
    assert gpu_prod.produced == {"throttle": 2}


@pytest.mark.parametrize(
    ("kind", "logged"),
    [("server-error", "server-error"), ("truncated", "truncated"), ("reset", "connection")],
)
def test_a_failed_page_is_fetched_again_and_nothing_is_read_twice(
    gpu_prod: FakeGcp, kind: str, logged: str
) -> None:
    gpu_prod.plan = _once(kind)
    with capture_logs() as logs:
        assert _flow_ids(_client(gpu_prod)) == ALL_FLOWS
    assert gpu_prod.produced == {kind: 3}  # each of the three pages failed once
    assert len(gpu_prod.calls("POST", "entries:list")) == 6
    retried = [e["kind"] for e in logs if e["event"] == "gcp_call_retry"]
    assert retried == [logged] * 3


def test_an_answer_later_than_the_read_timeout_is_abandoned_and_asked_again(
    gpu_prod: FakeGcp,
) -> None:
    gpu_prod.plan = _once("timeout", where="pageToken")  # the second and third pages
    gpu_prod.fault_delay = 0.6
    with capture_logs() as logs:
        assert _flow_ids(_client(gpu_prod, timeout=0.3)) == ALL_FLOWS
    assert [e["kind"] for e in logs if e["event"] == "gcp_call_retry"] == ["timeout"] * 2


def test_an_access_token_expiring_mid_run_is_refreshed_once_and_the_page_re_sent(
    gpu_prod: FakeGcp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adc = credentials_file(tmp_path / "adc.json", token_url=f"{gpu_prod.url}/token")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    gpu_prod.plan = _once("expired", where='"pageToken": "2"')
    with capture_logs() as logs:
        assert _flow_ids(_client(gpu_prod, credentials="default")) == ALL_FLOWS
    assert [g["grant_type"] for g in gpu_prod.token_grants] == ["refresh_token"] * 2
    assert gpu_prod.tokens == {"ya29.fake-1": False, "ya29.fake-2": True}
    pages = [c.get("pageToken") for c in gpu_prod.calls("POST", "entries:list")]
    assert pages == [None, "2", "2", "4"]  # only the page refused for the expired token
    assert not [e for e in logs if e["event"] == "gcp_call_retry"]  # google-auth did it


def test_a_machine_type_missing_right_after_its_instance_was_listed_is_fetched_again(
    gpu_prod: FakeGcp,
    gcp_config: Callable[..., dict[str, object]],
    make_ctx: Callable[..., CollectContext],
    env: SourceEnv,
) -> None:
    gpu_prod.plan = FaultPlan(
        rate=1.0, kinds=("missing",), max_consecutive=2, matches=lambda i: "a3-highgpu" in i
    )
    config = gcp_config(retry=NO_WAIT.model_dump())
    inventory = {
        i.instance_id: i for i in GcpSource.from_config(config, env=env).inventory(make_ctx())
    }
    assert inventory["trainer-a3"].tags["accelerators-source"] == "machineTypes.get"
    assert len(gpu_prod.calls("GET", "machineTypes/a3-highgpu-8g")) == 3
    assert gpu_prod.produced == {"missing": 2}


def test_a_machine_type_that_stays_missing_is_asked_a_few_times_then_the_catalog_answers(
    gpu_prod: FakeGcp,
    gcp_config: Callable[..., dict[str, object]],
    make_ctx: Callable[..., CollectContext],
    env: SourceEnv,
) -> None:
    config = gcp_config(retry=NO_WAIT.model_dump() | {"attempts": 8})
    source = GcpSource.from_config(config, env=env)
    inventory = {i.instance_id: i for i in source.inventory(make_ctx())}
    assert inventory["render-g2"].tags["accelerators-source"] == "catalog"  # never served
    assert len(gpu_prod.calls("GET", "machineTypes/g2-standard-24")) == 4  # not 8
    with pytest.raises(SourceError, match="not found"):  # remembered: no second round
        source.client.machine_type("gpu-prod", "europe-west4-a", "g2-standard-24")
    assert len(gpu_prod.calls("GET", "machineTypes/g2-standard-24")) == 4


def test_a_permanent_outage_stops_after_the_attempts_as_unavailable_with_a_hint(
    fake: FakeGcp,
) -> None:
    fake.plan = FaultPlan(permanent_after=1, permanent_kind="server-error")
    retry = NO_WAIT.model_copy(update={"attempts": 3})
    with pytest.raises(ProviderUnavailable) as err:
        list(_client(fake, retry=retry).list_entries("gpu-lab", filter_=FLOWS))
    assert len(fake.calls("POST", "entries:list")) == 3
    assert "projects/gpu-lab" in err.value.message
    assert err.value.hint and "next scheduled run" in err.value.hint
