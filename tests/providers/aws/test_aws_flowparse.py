"""Flow-log parsing from the AWS documentation samples: default v2 and custom formats."""

from __future__ import annotations

import pytest

from providers.aws.flowparse import (
    DEFAULT_FIELDS,
    FlowLayout,
    fields_from_format,
    header_fields,
    parse_block,
)

from .conftest import DATA

FLOWS = DATA / "vpcflow"
V3 = (
    "version vpc-id subnet-id instance-id interface-id account-id type srcaddr dstaddr srcport "
    "dstport pkt-srcaddr pkt-dstaddr protocol bytes packets start end action tcp-flags log-status"
)
V5 = (
    "version srcaddr dstaddr srcport dstport protocol start end type packets bytes account-id "
    "vpc-id subnet-id instance-id interface-id region az-id sublocation-type sublocation-id "
    "action tcp-flags pkt-srcaddr pkt-dstaddr pkt-src-aws-service pkt-dst-aws-service "
    "traffic-path flow-direction log-status"
)


def lines(name: str) -> list[str]:
    return (FLOWS / f"awsdocs__flow-logs-records-examples__{name}.log").read_text().splitlines()


def test_default_v2_records_parse_and_nodata_skipdata_are_skipped() -> None:
    block = parse_block(lines("v2-default"), layout=FlowLayout(DEFAULT_FIELDS), first_line=1)
    assert block.skipped == 2 and block.errors == []
    ssh, rdp, icmp, _, ipv6 = block.records
    assert (ssh.line, ssh.srcaddr, ssh.dstaddr, ssh.dst_port, ssh.protocol) == (
        1,
        "172.31.16.139",
        "172.31.16.21",
        22,
        6,
    )
    assert (ssh.account, ssh.interface_id, ssh.action, ssh.start, ssh.end) == (
        "123456789010",
        "eni-1235b8ca123456789",
        "ACCEPT",
        1418530010,
        1418530070,
    )
    assert (rdp.dst_port, rdp.action) == (3389, "REJECT")
    assert (icmp.line, icmp.protocol, icmp.dst_port) == (5, 1, 0)
    assert ipv6.srcaddr == "2001:db8:1234:a100:8d6e:3477:df66:f105" and ipv6.line == 7
    assert ssh.source_ip == ssh.srcaddr and ssh.pkt_srcaddr is None


def test_custom_v3_format_prefers_pkt_srcaddr_and_reads_instance_id() -> None:
    layout = FlowLayout(tuple(V3.split()))
    block = parse_block(lines("v3-tcpflags-custom"), layout=layout, first_line=10)
    assert block.errors == [] and len(block.records) == 8
    first = block.records[0]
    assert (first.line, first.instance_id, first.pkt_srcaddr, first.dst_port) == (
        10,
        "i-01234567890123456",
        "52.213.180.42",
        5001,
    )
    assert first.source_ip == "52.213.180.42"


def test_v5_flow_direction_and_region_are_read() -> None:
    block = parse_block(
        lines("v5-aws-service-custom"), layout=FlowLayout(tuple(V5.split())), first_line=1
    )
    ingress, egress = block.records
    assert (ingress.direction, egress.direction) == ("ingress", "egress")
    assert ingress.region == "ap-southeast-2" and ingress.bytes == 15044


def test_inline_comments_are_stripped_and_a_layout_without_ports_is_unusable() -> None:
    layout = FlowLayout(
        ("instance-id", "interface-id", "srcaddr", "dstaddr", "pkt-srcaddr", "pkt-dstaddr")
    )
    block = parse_block(lines("nat-gateway-custom"), layout=layout, first_line=1)
    assert block.errors == [] and len(block.records) == 6
    assert block.records[0].instance_id is None  # "-" on the NAT gateway's ENI
    assert block.records[4].instance_id == "i-01234567890123456"
    assert layout.missing == ("dstport", "start", "action")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            "2 123456789010 eni-1 172.31.16.139 172.31.16.21 20641 22 6 20",
            "expected 14 fields, got 9",
        ),
        (
            "2 1 eni-1 300.1.1.1 172.31.16.21 20641 22 6 20 4249 1 2 ACCEPT OK",
            "srcaddr is not an IP",
        ),
        (
            "2 1 eni-1 1.1.1.1 172.31.16.21 20641 70000 6 20 4249 1 2 ACCEPT OK",
            "dstport out of range",
        ),
        (
            "2 1 eni-1 1.1.1.1 172.31.16.21 20641 twenty 6 20 4249 1 2 ACCEPT OK",
            "dstport is not a number",
        ),
    ],
)
def test_malformed_lines_are_errors_with_their_line_and_the_rest_parses(
    line: str, reason: str
) -> None:
    good = lines("v2-default")[0]
    block = parse_block([good, line, "", good], layout=FlowLayout(DEFAULT_FIELDS), first_line=41)
    assert [r.line for r in block.records] == [41, 44]
    ((number, why),) = block.errors
    assert number == 42 and why.startswith(reason)


def test_header_lines_and_log_formats_name_the_fields() -> None:
    assert header_fields(" ".join(DEFAULT_FIELDS)) == DEFAULT_FIELDS
    assert header_fields(lines("v2-default")[0]) is None
    assert header_fields("version") is None
    assert fields_from_format("${version} ${srcaddr} ${dstport}") == (
        "version",
        "srcaddr",
        "dstport",
    )
    with pytest.raises(ValueError, match="tokens"):
        fields_from_format("version srcaddr")
