"""Exports: CSV header contract, JSON Lines shape, OCSF Detection Finding (class 2004) and a
self-contained HTML report with a world map and a timeline."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import pytest
from py_ocsf_models.events.findings.detection_finding import DetectionFinding

from agent.errors import UsageError
from agent.export import EXPORTERS, export_findings
from agent.export.ocsf import to_ocsf
from agent.export.tabular import CSV_COLUMNS
from agent.models import FindingStatus, Severity
from agent.models.run import AuditRun, RunCounts, RunStatus, ScopeError
from tests.agent.review.reviewkit import T0, build_finding, build_session

OCSF_REQUIRED = {
    "activity_id",
    "category_uid",
    "class_uid",
    "type_uid",
    "severity_id",
    "time",
    "metadata",
    "finding_info",
}


def _findings():  # type: ignore[no-untyped-def]
    return [
        build_finding(),
        build_finding(
            build_session("evt-2", source_ip="2.188.21.1", started_at=T0 + timedelta(days=1)),
            country="IR",
            severity=Severity.CRITICAL,
            status=FindingStatus.RESOLVED,
            extra={"resolution": "false-positive"},
        ),
        build_finding(
            build_session("evt-3", source_ip="198.51.100.7", principal="=HYPERLINK(evil)"),
            country=None,
            severity=Severity.LOW,
            status=FindingStatus.EXCEPTED,
            extra={"exception_id": "exc_1"},
        ),
    ]


def _export(fmt: str, **kw: object) -> str:
    out = io.StringIO()
    export_findings(_findings(), fmt, out, generated_at=T0, **kw)  # type: ignore[arg-type]
    return out.getvalue()


def test_csv_has_the_documented_header_and_one_row_per_finding() -> None:
    rows = list(csv.reader(io.StringIO(_export("csv"))))

    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 4
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["severity"] == "high" and first["country"] == "CN" and first["asn"] == "4134"
    assert first["accelerators"] == "8x nvidia-h100 [3A090.a]"


def test_csv_neutralises_spreadsheet_formulas() -> None:
    rows = list(csv.DictReader(io.StringIO(_export("csv"))))

    principal = next(r["principal"] for r in rows if "HYPERLINK" in r["principal"])
    assert principal == "'=HYPERLINK(evil)"


def test_jsonl_is_one_finding_object_per_line_with_review_fields() -> None:
    lines = _export("jsonl").splitlines()

    records = [json.loads(line) for line in lines]
    assert [r["severity"] for r in records] == ["high", "critical", "low"]
    assert records[1]["review"] == {"resolution": "false-positive"}
    assert records[0]["session"]["source_ip"] == "1.2.4.8"


def test_ocsf_events_carry_every_required_detection_finding_field() -> None:
    events = json.loads(_export("ocsf"))

    for event in events:
        assert event.keys() >= OCSF_REQUIRED
        assert event["class_uid"] == 2004 and event["category_uid"] == 2
        assert event["type_uid"] == 2004 * 100 + event["activity_id"]
        assert event["finding_info"]["uid"] and event["finding_info"]["title"]
        assert event["metadata"]["product"]["vendor_name"] == "chipwarden"
        assert re.fullmatch(r"1\.\d+\.\d+", event["metadata"]["version"])
        assert isinstance(event["time"], int)
        DetectionFinding(**event)  # the community pydantic models accept it


@pytest.mark.parametrize(
    ("index", "activity", "status_id", "severity_id"),
    [(0, 1, 1, 4), (1, 3, 3, 5), (2, 3, 3, 2)],
)
def test_ocsf_maps_review_status_and_severity(
    index: int, activity: int, status_id: int, severity_id: int
) -> None:
    event = to_ocsf(_findings()[index])

    assert (event["activity_id"], event["status_id"], event["severity_id"]) == (
        activity,
        status_id,
        severity_id,
    )


def test_ocsf_puts_the_source_ip_in_evidence_and_the_account_in_the_cloud_profile() -> None:
    event = to_ocsf(_findings()[0])

    endpoint = event["evidences"][0]["src_endpoint"]
    assert endpoint["ip"] == "1.2.4.8" and endpoint["location"]["country"] == "CN"
    assert endpoint["autonomous_system"]["number"] == 4134
    assert event["cloud"]["account"]["uid"] == "111122223333"
    assert "cloud" in event["metadata"]["profiles"]
    assert event["resources"][0]["uid"] == "i-0123456789abcdef0"
    assert {"type_id": 2, "value": "1.2.4.8"}.items() <= event["observables"][0].items()


def test_html_report_is_self_contained_with_map_bubbles_and_timeline() -> None:
    run = AuditRun(
        id="run-42",
        started_at=T0,
        finished_at=T0 + timedelta(minutes=3),
        status=RunStatus.PARTIAL,
        counts=RunCounts(sessions=12, findings=3),
        scope_errors=(ScopeError(source="aws", scope="eu-west-1", code="denied", message="no"),),
    )

    html = _export("html", run=run)

    assert "run-42" in html and "scope errors" in html.lower()
    assert re.search(r'<svg id="world-map"', html)
    assert 'data-country="CN"' in html and 'data-country="IR"' in html
    assert '<svg id="timeline"' in html and html.count("<rect x=") >= 2
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing loaded from the network
    assert "<script" not in html


def test_unknown_format_is_a_usage_error_listing_the_choices() -> None:
    with pytest.raises(UsageError) as caught:
        export_findings([], "xml", io.StringIO(), generated_at=T0)
    assert set(EXPORTERS) <= set((caught.value.hint or "").replace(",", "").split())
