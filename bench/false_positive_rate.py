"""False-positive check: the bundled export-controls pack over real public samples.

    /work/venv/bin/python bench/false_positive_rate.py [--data ../shared/data] [--target h100]

Every real source IP in the samples is replayed as a *successful* session of its principal to an
8 x H100 instance (the worst case: every session reaches controlled accelerators), enriched
with the builtin country data plus the bundled reputation data (Tor snapshots matched at the
event time, ASN lists: no ASN database here, so ASN tags cannot fire), with principal history
on, and judged by the bundled pack. Reports, per data set, how many sessions got a decision
and which. The samples are read in place (LogHub / Elastic files are never copied).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import structlog

from agent.enrich import GeoEnricher
from agent.enrich.reputation import BUNDLED_DATA_DIR, Reputation
from agent.history import HistoryContext, HistoryStore
from agent.inventory_index import InventoryIndex
from agent.models import Accelerator, AccessMethod, Session
from agent.pipeline import Evaluator
from agent.store import open_store
from policies.catalog import ChipCatalog
from policies.engine import YamlPolicyEngine

FIXED = datetime(2026, 7, 1, 12, tzinfo=UTC)
DETECTION_POLICIES = frozenset(
    {
        "ec-high-hq-test-owner-in-macau-or-d5",
        "ec-high-owner-on-screening-list-to-controlled",
        "ec-high-risk-score-to-controlled",
        "ec-medium-evasion-network-to-controlled",
        "ec-low-hosting-or-vpn-to-controlled",
    }
)
"""Policies added by the detection work (evasion signals, ownership); the rest judge countries."""
Row = tuple[str, str, datetime]  # principal, ip, time


def gcp_audit(root: Path) -> Iterator[Row]:
    """Cloud Custodian GCP audit events (Apache-2.0): callerIp + principalEmail + timestamp."""
    for path in sorted((root / "gcp" / "cloud-custodian__c7n_gcp_audit_events").glob("*.json")):
        doc = json.loads(path.read_text())
        proto = doc.get("protoPayload", {})
        ip = proto.get("requestMetadata", {}).get("callerIp")
        who = proto.get("authenticationInfo", {}).get("principalEmail", "unknown")
        when = doc.get("timestamp") or doc.get("receiveTimestamp")
        if ip:
            at = datetime.fromisoformat(when.replace("Z", "+00:00")) if when else FIXED
            yield who, ip, at


def nsg_flows(root: Path) -> Iterator[Row]:
    """Azure docs NSG flow-log sample (CC-BY-4.0): inbound flow tuples' source IPs."""
    path = root / "azure" / "azure-docs__nsg-flow-logs-overview__sample-records.jsonl"
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        for flow in rec["properties"]["flows"]:
            for group in flow["flows"]:
                for tup in group["flowTuples"]:
                    ts, src, _dst, *_rest = tup.split(",")
                    yield f"nsg:{src}", src, datetime.fromtimestamp(int(ts), tz=UTC)


_SSHD = re.compile(r"^(\w{3} +\d+ [\d:]+) .*? (?:for (?:invalid user )?(\S+) )?from ([\d.]+)")


def loghub_sshd(root: Path) -> Iterator[Row]:
    """LogHub OpenSSH_2k (research use; read in place): every 'from <ip>' with its user."""
    for line in (root / "sshd_auth" / "loghub__OpenSSH_2k.log").read_text().splitlines():
        m = _SSHD.match(line)
        if m:
            when = datetime.strptime(f"2016 {m.group(1)}", "%Y %b %d %H:%M:%S").replace(tzinfo=UTC)
            yield m.group(2) or f"sshd:{m.group(3)}", m.group(3), when


def cloudtrail_console(root: Path) -> Iterator[Row]:
    """AWS docs console sign-in examples (CC-BY-SA / MIT-0 docs): sourceIPAddress."""
    path = (
        root
        / "aws_cloudtrail"
        / "awsdocs__cloudtrail-user-guide__console-sign-in-event-examples.json"
    )
    data = json.loads(path.read_text())
    records = data if isinstance(data, list) else data.get("Records", [data])
    for rec in records:
        ip = rec.get("sourceIPAddress")
        who = rec.get("userIdentity", {}).get("arn") or "unknown"
        when = rec.get("eventTime")
        if ip:
            yield who, ip, datetime.fromisoformat(when.replace("Z", "+00:00")) if when else FIXED


SETS = {
    "gcp-audit (Cloud Custodian)": gcp_audit,
    "azure-nsg (Azure docs)": nsg_flows,
    "aws-console-signin (AWS docs)": cloudtrail_console,
    "sshd (LogHub OpenSSH_2k; attacks)": loghub_sshd,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    engine = YamlPolicyEngine.from_refs(
        ["builtin:export-controls"], base_dir=Path.cwd(), clock=lambda: FIXED
    )
    print(f"export-controls pack, bundle revision {engine.revision}; target 8 x nvidia-h100\n")
    print(
        f"{'data set':42} {'sessions':>8} {'flagged':>8} {'rate':>6} {'unrestr.':>8} "
        f"{'by signals':>10} {'rate':>6}  top countries; decisions"
    )
    with tempfile.TemporaryDirectory() as tmp, open_store(f"sqlite:///{tmp}/fp.db") as store:
        enricher = GeoEnricher(reputation=Reputation.load([BUNDLED_DATA_DIR]))
        for name, reader in SETS.items():
            try:
                rows = list(reader(args.data))
            except OSError as exc:
                print(f"{name:44} skipped ({exc})")
                continue
            evaluator = Evaluator(
                engine=engine,
                enricher=enricher,
                classifier=ChipCatalog(),
                inventory=InventoryIndex(),
                clock=lambda: FIXED,
                context_providers=[HistoryContext(store=HistoryStore(store.engine, keep=50))],
            )
            sessions = [
                Session(
                    key=f"{name}-{i}",
                    provider="bench",
                    source=name,
                    account="bench",
                    instance_id="i-bench",
                    instance_type="p5.48xlarge",
                    accelerators=(Accelerator(model="nvidia-h100", count=8),),
                    principal=who,
                    source_ip=ip,
                    method=AccessMethod.SSH,
                    started_at=at,
                )
                for i, (who, ip, at) in enumerate(sorted(rows, key=lambda r: r[2]))
            ]
            decisions: Counter[str] = Counter()
            countries: Counter[str] = Counter()
            flagged = unrestricted = by_signals = 0
            for item in evaluator.inputs(sessions):
                countries[item.intel.country or "?"] += 1
                found = engine.evaluate(item)
                restricted = bool(found) and found[0].policy_id not in DETECTION_POLICIES
                unrestricted += not restricted
                if found:
                    flagged += 1
                    decisions[f"{found[0].severity.value}:{found[0].policy_id}"] += 1
                    by_signals += not restricted
            rate = flagged / len(sessions) if sessions else 0.0
            signal_rate = by_signals / unrestricted if unrestricted else 0.0
            top = ", ".join(f"{k} x{v}" for k, v in decisions.most_common(3)) or "-"
            where = " ".join(f"{k}:{v}" for k, v in countries.most_common(3))
            print(
                f"{name:42} {len(sessions):8d} {flagged:8d} {rate:6.1%} {unrestricted:8d} "
                f"{by_signals:10d} {signal_rate:6.1%}  {where}; {top}"
            )
    print(
        "\nunrestr. = sessions no country policy flagged; by signals = of those, flagged by the "
        "detection policies (Tor / China-HQ network / hosting-VPN / history / ownership)."
    )


if __name__ == "__main__":
    main()
