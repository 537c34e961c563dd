"""A generated audit workload: many CloudTrail files, a long auth.log and a config.

Deterministic for a seed, big enough that ``chipwarden audit`` spends about a second
committing batches (so a random SIGKILL lands between, inside and around transactions).
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from agent.config import AppConfig

SAMPLE = Path(__file__).resolve().parents[2] / "agent" / "sample"
CKPT_SOURCE = "tests.reliability.ckpt_source:CheckpointedCloudTrailFiles"
CKPT_SCOPE = "reliability:ckpt"
"""Checkpoint scopes are ``reliability:ckpt-<part>``, one per checkpointed source."""

# Public addresses with a stable RIR country (iptocc): restricted and ordinary jurisdictions.
SOURCE_IPS = (
    "77.88.8.8",  # RU
    "175.45.176.1",  # KP
    "2.176.0.1",  # IR
    "1.0.1.1",  # CN
    "2a02:6b8::1",  # RU (IPv6)
    "193.99.144.80",  # DE
    "8.8.8.8",  # US
    "81.2.69.160",  # GB
    "10.1.0.5",  # private
)
US_EAST = (
    "111122223333",
    "us-east-1",
    ("i-0a1b2c3d4e5f60001", "i-0a1b2c3d4e5f60002", "i-0a1b2c3d4e5f60003", "i-0a1b2c3d4e5f60006"),
)
EU_WEST = ("444455556666", "eu-west-1", ("i-0b1b2c3d4e5f60001",))
SSHD_INSTANCE = {
    "provider": "aws",
    "account": "444455556666",
    "region": "eu-west-1",
    "instance_id": "i-0b1b2c3d4e5f60001",
}
T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class WorkloadSize:
    """How much to generate. Each part is its own source entry, and the pipeline commits at
    least once per source, so parts (not files) set how many transactions a run makes."""

    cloudtrail_parts: int = 6
    ckpt_parts: int = 2
    files_per_part: int = 2
    records_per_file: int = 25
    auth_logs: int = 2
    auth_log_sessions: int = 100
    bad_every: int = 97  # one malformed record in this many (quarantined, never fatal)


@dataclass(frozen=True)
class Workload:
    """Where the generated inputs and config live."""

    root: Path
    config: Path


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _record(rng: random.Random, n: int, when: datetime) -> dict[str, object]:
    account, region, instances = rng.choice((US_EAST, US_EAST, EU_WEST))
    user = f"user{rng.randrange(40)}"
    base: dict[str, object] = {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": f"AIDA{n:012d}",
            "accountId": account,
            "arn": f"arn:aws:iam::{account}:user/{user}",
            "userName": user,
        },
        "eventTime": _iso(when),
        "awsRegion": region,
        "sourceIPAddress": rng.choice(SOURCE_IPS),
        "userAgent": "aws-cli/2.22.4 Python/3.12.6 Linux/6.8",
        "eventID": f"{n:08x}-0000-4000-8000-{rng.getrandbits(48):012x}",
        "recipientAccountId": account,
        "eventType": "AwsApiCall",
    }
    kind = rng.choices(("ssm", "eic", "console", "noise", "end"), weights=(30, 15, 8, 40, 7))[0]
    if kind == "ssm":
        base |= {
            "eventSource": "ssm.amazonaws.com",
            "eventName": "StartSession",
            "requestParameters": {"target": rng.choice(instances)},
            "responseElements": {"sessionId": f"{user}-{n:06d}"},
        }
    elif kind == "eic":
        base |= {
            "eventSource": "ec2-instance-connect.amazonaws.com",
            "eventName": "SendSSHPublicKey",
            "requestParameters": {
                "instanceId": rng.choice(instances),
                "instanceOSUser": "ec2-user",
            },
        }
    elif kind == "console":
        base |= {
            "eventSource": "signin.amazonaws.com",
            "eventName": "ConsoleLogin",
            "responseElements": {"ConsoleLogin": "Success"},
            "additionalEventData": {"MFAUsed": "No"},
        }
    elif kind == "end":
        base |= {
            "eventSource": "ssm.amazonaws.com",
            "eventName": "TerminateSession",
            "requestParameters": {"sessionId": f"{user}-{max(n - 3, 0):06d}"},
        }
    else:
        base |= {"eventSource": "ec2.amazonaws.com", "eventName": "DescribeInstances"}
    return base


def _cloudtrail(
    folder: Path, *, files: int, size: WorkloadSize, rng: random.Random, first: int
) -> int:
    folder.mkdir(parents=True)
    n = first
    for f in range(files):
        records: list[object] = []
        for _ in range(size.records_per_file):
            n += 1
            when = T0 + timedelta(minutes=n)
            if n % size.bad_every == 0:
                records.append({"eventName": "StartSession", "eventTime": "not-a-time"})
            else:
                records.append(_record(rng, n, when))
        name = f"111122223333_CloudTrail_us-east-1_20261120T{f:04d}Z_{f:04d}.json"
        (folder / name).write_text(json.dumps({"Records": records}), encoding="utf-8")
    return n


def _auth_log(
    path: Path, *, sessions: int, rng: random.Random, bad_every: int, first_pid: int
) -> None:
    lines: list[str] = []
    when = datetime(2026, 11, 25, 0, 0, 0, tzinfo=UTC)
    for i in range(sessions):
        when += timedelta(seconds=rng.randrange(5, 90))
        stamp = f"{when:%b} {when.day:>2} {when:%H:%M:%S}"
        pid = first_pid + 2 * i
        ip = rng.choice(SOURCE_IPS)
        port = 40000 + i % 20000
        user = rng.choice(("ubuntu", "mlops", "alice", "root"))
        pre = f"{stamp} gpu-host sshd[{pid}]:"
        if rng.random() < 0.6:
            lines += [
                f"{pre} Accepted publickey for {user} from {ip} port {port} ssh2: RSA SHA256:k{i}",
                f"{pre} pam_unix(sshd:session): session opened for user {user}(uid=1000)",
                f"{pre} Disconnected from user {user} {ip} port {port}",
                f"{pre} pam_unix(sshd:session): session closed for user {user}",
            ]
        else:
            lines += [
                f"{pre} Failed password for {user} from {ip} port {port} ssh2",
                f"{pre} Connection closed by authenticating user {user} {ip} port {port} [preauth]",
            ]
        lines.append(f"{stamp} gpu-host CRON[{pid + 1}]: pam_unix(cron:session): session opened")
        if i % bad_every == 0:
            lines.append("\x00garbage that is not syslog at all")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def build_workload(
    root: Path,
    *,
    seed: int = 9,
    size: WorkloadSize | None = None,
    history: bool = False,
) -> Workload:
    """Write CloudTrail parts, checkpointed parts, auth logs and config.yaml under ``root``.

    ``history`` keeps principal-history signals on (they read the store, so findings then
    depend on what earlier runs stored: see test_reliability_history.py)."""
    size = size or WorkloadSize()
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLE / "inventory.csv", root / "inventory.csv")
    sources: list[dict[str, object]] = []
    n = 0
    for part in range(size.cloudtrail_parts):
        folder = root / "cloudtrail" / f"part-{part:02d}"
        n = _cloudtrail(folder, files=size.files_per_part, size=size, rng=rng, first=n + 10)
        sources.append(
            {"type": "cloudtrail-files", "paths": [f"cloudtrail/part-{part:02d}/*.json"]}
        )
    for part in range(size.ckpt_parts):
        folder = root / "ckpt" / f"part-{part:02d}"
        n = _cloudtrail(folder, files=size.files_per_part, size=size, rng=rng, first=n + 10)
        sources.append(
            {
                "type": CKPT_SOURCE,
                "paths": [f"ckpt/part-{part:02d}/*.json"],
                "scope": f"{CKPT_SCOPE}-{part:02d}",
            }
        )
    for log in range(size.auth_logs):
        name = f"auth-{log}.log"
        _auth_log(
            root / name,
            sessions=size.auth_log_sessions,
            rng=rng,
            bad_every=size.bad_every,
            first_pid=3000 + 100_000 * log,
        )
        sources.append({"type": "sshd-log", "path": name, "year": 2026, "instance": SSHD_INSTANCE})
    config: dict[str, object] = {
        "inventory": [{"path": "inventory.csv"}],
        "sources": sources,
        "policies": ["builtin:export-controls", "builtin:hygiene"],
        "geo": {"country_db": "builtin"},
    }
    if not history and "history" in AppConfig.model_fields:
        config["history"] = {"enabled": False}
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return Workload(root=root, config=path)
