"""Generate a synthetic CloudTrail organisation trail: gzip'd S3 delivery objects under
``AWSLogs/<org>/<account>/CloudTrail/<region>/YYYY/MM/DD/`` with a realistic event mix
(~0.5% remote-access session events by default), a GPU inventory CSV and a chipwarden config.

    python bench/gen_cloudtrail.py OUT_DIR --size 256MB [--files 400] [--session-share 0.005]

``--size`` is the uncompressed JSON volume; the files hold about 10-20x less on disk.
"""

from __future__ import annotations

import argparse
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.common import REGIONS, GpuHost, IpPools, accounts, gpu_hosts, gzip_bytes, parse_size
from bench.common import write_inventory as _write_inventory

__all__ = ["generate", "main"]

ORG = "o-bench12345"
DAY = datetime(2026, 11, 24, tzinfo=UTC)
Record = dict[str, Any]

# Background (non-session) events: (eventSource, eventName, weight). SSM agent heartbeats and
# parameter reads share ssm.amazonaws.com with sessions, so an event-source filter is not enough.
BACKGROUND: tuple[tuple[str, str, int], ...] = (
    ("sts.amazonaws.com", "AssumeRole", 18),
    ("sts.amazonaws.com", "GetCallerIdentity", 4),
    ("kms.amazonaws.com", "Decrypt", 14),
    ("kms.amazonaws.com", "GenerateDataKey", 6),
    ("s3.amazonaws.com", "GetObject", 12),
    ("s3.amazonaws.com", "PutObject", 6),
    ("s3.amazonaws.com", "ListBuckets", 1),
    ("ec2.amazonaws.com", "DescribeInstances", 8),
    ("ec2.amazonaws.com", "DescribeInstanceStatus", 4),
    ("ec2.amazonaws.com", "DescribeVolumes", 2),
    ("ec2.amazonaws.com", "RunInstances", 1),
    ("ssm.amazonaws.com", "UpdateInstanceInformation", 10),
    ("ssm.amazonaws.com", "GetParameter", 4),
    ("ssm.amazonaws.com", "ListAssociations", 3),
    ("ssm.amazonaws.com", "DescribeInstanceInformation", 1),
    ("logs.amazonaws.com", "CreateLogStream", 3),
    ("iam.amazonaws.com", "PutRolePolicy", 1),
    ("lambda.amazonaws.com", "Invoke", 2),
)
SESSION_EVENTS: tuple[tuple[str, int], ...] = (
    ("StartSession", 40),
    ("TerminateSession", 25),
    ("ResumeSession", 3),
    ("SendSSHPublicKey", 15),
    ("SendSerialConsoleSSHPublicKey", 2),
    ("OpenTunnel", 5),
    ("ConsoleLogin", 10),
)
_AGENTS = (
    "aws-cli/2.22.4 Python/3.12.6 Linux/6.8 exe/x86_64.ubuntu.24",
    "Boto3/1.35.2 md/Botocore#1.35.2 ua/2.0 os/linux#6.8 md/arch#x86_64 lang/python#3.12.6",
    "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/129.0 Safari/537.36",
    "amazon-ssm-agent/3.3.859.0",
)


class _Factory:
    """Builds records for one account x region; all randomness from one seeded Random."""

    def __init__(self, rnd: random.Random, pools: IpPools, hosts: list[GpuHost]) -> None:
        self.rnd = rnd
        self.pools = pools
        self.hosts = hosts
        self.open_sessions: list[str] = []
        bg_weights = [w for _, _, w in BACKGROUND]
        self._bg = (BACKGROUND, bg_weights)
        self._session = ([n for n, _ in SESSION_EVENTS], [w for _, w in SESSION_EVENTS])
        self._session_rules: dict[str, Callable[[Record, str, GpuHost], None]] = {
            "StartSession": self._start,
            "TerminateSession": self._terminate,
            "ResumeSession": self._resume,
            "SendSSHPublicKey": self._eic,
            "SendSerialConsoleSSHPublicKey": self._serial,
            "OpenTunnel": self._tunnel,
            "ConsoleLogin": self._console,
        }

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rnd.getrandbits(128), version=4))

    def _base(self, account: str, region: str, when: datetime, source: str, name: str) -> Record:
        rnd = self.rnd
        user = f"user{rnd.randint(1, 400)}"
        role = rnd.choice(("ml-engineer", "platform-admin", "ci-deployer", "data-science"))
        return {
            "eventVersion": "1.09",
            "userIdentity": {
                "type": "AssumedRole",
                "principalId": f"AROA{rnd.getrandbits(60):015X}:{user}",
                "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{user}",
                "accountId": account,
                "accessKeyId": f"ASIA{rnd.getrandbits(64):016X}",
                "sessionContext": {
                    "sessionIssuer": {
                        "type": "Role",
                        "principalId": f"AROA{rnd.getrandbits(60):015X}",
                        "arn": f"arn:aws:iam::{account}:role/{role}",
                        "accountId": account,
                        "userName": role,
                    },
                    "attributes": {
                        "creationDate": (when - timedelta(minutes=30)).strftime(
                            "%Y-%m-%dT%H:%M:%SZ"
                        ),
                        "mfaAuthenticated": rnd.choice(("true", "false")),
                    },
                },
            },
            "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": source,
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": self.pools.any_ip(),
            "userAgent": rnd.choice(_AGENTS),
            "requestParameters": None,
            "responseElements": None,
            "requestID": self._uuid(),
            "eventID": self._uuid(),
            "readOnly": name.startswith(("Describe", "Get", "List")),
            "eventType": "AwsApiCall",
            "managementEvent": source != "s3.amazonaws.com",
            "recipientAccountId": account,
            "eventCategory": "Management" if source != "s3.amazonaws.com" else "Data",
            "tlsDetails": {
                "tlsVersion": "TLSv1.3",
                "cipherSuite": "TLS_AES_128_GCM_SHA256",
                "clientProvidedHostHeader": f"{source.split('.')[0]}.{region}.amazonaws.com",
            },
        }

    def background(self, account: str, region: str, when: datetime) -> Record:
        source, name, _ = self.rnd.choices(self._bg[0], weights=self._bg[1])[0]
        rec = self._base(account, region, when, source, name)
        rnd = self.rnd
        if source == "s3.amazonaws.com":
            rec["requestParameters"] = {
                "bucketName": f"datasets-{account}",
                "key": f"shards/{rnd.getrandbits(40):010x}/part-{rnd.randint(0, 9999):05d}.parquet",
                "Host": f"datasets-{account}.s3.{region}.amazonaws.com",
            }
            rec["resources"] = [
                {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::datasets-{account}/shards/"},
            ]
        elif source == "kms.amazonaws.com":
            rec["requestParameters"] = {
                "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                "keyId": f"arn:aws:kms:{region}:{account}:key/{self._uuid()}",
            }
            rec["sourceIPAddress"] = "s3.amazonaws.com"
        elif name == "UpdateInstanceInformation":
            host = rnd.choice(self.hosts)
            rec["requestParameters"] = {
                "instanceId": host.instance_id,
                "agentVersion": "3.3.859.0",
                "platformType": "Linux",
                "iPAddress": host.private_ip,
            }
            rec["userIdentity"]["type"] = "AssumedRole"
            rec["userAgent"] = "amazon-ssm-agent/3.3.859.0"
        elif name == "PutRolePolicy":
            # Mentions session actions inside a string: a false positive for a byte filter.
            rec["requestParameters"] = {
                "roleName": "ml-engineer",
                "policyName": "session-access",
                "policyDocument": '{"Statement":[{"Effect":"Allow","Action":'
                '["ssm:StartSession","ssm:TerminateSession","ec2-instance-connect:'
                'SendSSHPublicKey"],"Resource":"*"}]}',
            }
        elif name in ("DescribeInstances", "DescribeInstanceStatus"):
            rec["requestParameters"] = {
                "instancesSet": {"items": [{"instanceId": rnd.choice(self.hosts).instance_id}]},
                "filterSet": {},
            }
        else:
            rec["requestParameters"] = {"roleSessionName": f"s-{rnd.getrandbits(32):08x}"}
        return rec

    def session(self, account: str, region: str, when: datetime) -> Record:
        name = self.rnd.choices(self._session[0], weights=self._session[1])[0]
        host = self.rnd.choice(self.hosts)
        source = {
            "ConsoleLogin": "signin.amazonaws.com",
            "StartSession": "ssm.amazonaws.com",
            "TerminateSession": "ssm.amazonaws.com",
            "ResumeSession": "ssm.amazonaws.com",
        }.get(name, "ec2-instance-connect.amazonaws.com")
        rec = self._base(account, region, when, source, name)
        rec["sourceIPAddress"] = self.pools.session_ip()
        self._session_rules[name](rec, account, host)
        if self.rnd.random() < 0.05:
            rec["errorCode"] = "AccessDenied"
            rec["errorMessage"] = "User is not authorized to perform this operation"
        return rec

    def _start(self, rec: Record, account: str, host: GpuHost) -> None:
        sid = f"{rec['userIdentity']['arn'].rsplit('/', 1)[-1]}-{self.rnd.getrandbits(64):016x}"
        self.open_sessions.append(sid)
        forward = self.rnd.random() < 0.2
        rec["requestParameters"] = {
            "target": host.instance_id,
            "documentName": "AWS-StartPortForwardingSession"
            if forward
            else "SSM-SessionManagerRunShell",
        }
        rec["responseElements"] = {
            "sessionId": sid,
            "tokenValue": "Value hidden due to security reasons.",
            "streamUrl": f"wss://ssmmessages.{host.region}.amazonaws.com/v1/data-channel/{sid}",
        }

    def _terminate(self, rec: Record, account: str, host: GpuHost) -> None:
        sid = (
            self.open_sessions.pop(0)
            if self.open_sessions
            else f"orphan-{self.rnd.getrandbits(64):016x}"
        )
        rec["requestParameters"] = {"sessionId": sid}
        rec["responseElements"] = {"sessionId": sid}

    def _resume(self, rec: Record, account: str, host: GpuHost) -> None:
        sid = self.open_sessions[-1] if self.open_sessions else f"x-{self.rnd.getrandbits(32):x}"
        rec["requestParameters"] = {"sessionId": sid}
        rec["responseElements"] = {"sessionId": sid, "tokenValue": "Value hidden."}

    def _eic(self, rec: Record, account: str, host: GpuHost) -> None:
        rec["requestParameters"] = {
            "instanceId": host.instance_id,
            "instanceOSUser": "ec2-user",
            "sSHPublicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtAlK45MAEWZ7MUY2QEmi3M6W",
        }
        rec["responseElements"] = {"requestId": rec["requestID"], "success": True}

    def _serial(self, rec: Record, account: str, host: GpuHost) -> None:
        rec["requestParameters"] = {"instanceId": host.instance_id, "serialPort": 0}
        rec["responseElements"] = {"requestId": rec["requestID"], "success": True}

    def _tunnel(self, rec: Record, account: str, host: GpuHost) -> None:
        rec["requestParameters"] = {
            "instanceConnectEndpointId": f"eice-{self.rnd.getrandbits(64):017x}",
            "maxTunnelDuration": "3600",
            "remotePort": "22",
            "privateIpAddress": host.private_ip,
        }

    def _console(self, rec: Record, account: str, host: GpuHost) -> None:
        rec["eventType"] = "AwsConsoleSignIn"
        rec["responseElements"] = {"ConsoleLogin": self.rnd.choice(("Success", "Failure"))}
        rec["additionalEventData"] = {
            "LoginTo": "https://console.aws.amazon.com/console/home",
            "MobileVersion": "No",
            "MFAUsed": self.rnd.choice(("Yes", "No")),
        }


def generate(
    out: Path,
    *,
    size: int,
    files: int | None = None,
    session_share: float = 0.005,
    seed: int = 8,
    write_config: bool = True,
) -> dict[str, Any]:
    """Write the trail under ``out``; returns a summary (files, records, bytes, sessions)."""
    rnd = random.Random(seed)  # noqa: S311 - synthetic data, not security
    pools = IpPools(rnd)
    hosts = gpu_hosts()
    files = files or max(1, size // (768 * 1024))
    per_file_bytes = size / files
    factory = _Factory(rnd, pools, hosts)
    accts = accounts()
    summary = {"files": 0, "records": 0, "raw_bytes": 0, "gz_bytes": 0, "session_events": 0}
    root = out / "trail" / "AWSLogs" / ORG
    for n in range(files):
        account = accts[n % len(accts)]
        region = REGIONS[(n // len(accts)) % len(REGIONS)]
        minute = (n * 5) % (24 * 60)
        start = DAY + timedelta(minutes=minute)
        folder = root / account / "CloudTrail" / region / start.strftime("%Y/%m/%d")
        folder.mkdir(parents=True, exist_ok=True)
        records: list[Record] = []
        written = 0
        while written < per_file_bytes or not records:
            when = start + timedelta(seconds=rnd.randint(0, 299))
            if rnd.random() < session_share:
                rec = factory.session(account, region, when)
                summary["session_events"] += 1
            else:
                rec = factory.background(account, region, when)
            records.append(rec)
            written += 1250  # close to the mean serialised record; avoids dumping twice
        body = orjson.dumps({"Records": records})
        stamp = start.strftime("%Y%m%dT%H%MZ")
        name = f"{account}_CloudTrail_{region}_{stamp}_{rnd.getrandbits(64):016x}.json.gz"
        data = gzip_bytes(body)
        (folder / name).write_bytes(data)
        summary["files"] += 1
        summary["records"] += len(records)
        summary["raw_bytes"] += len(body)
        summary["gz_bytes"] += len(data)
    if write_config:
        write_config_files(out, hosts)
    summary["countries"] = pools.countries()
    return summary


def write_config_files(out: Path, hosts: list[GpuHost]) -> None:
    """inventory.csv and a chipwarden config reading the trail (store next to it)."""
    _write_inventory(out / "inventory.csv", hosts)
    (out / "config.yaml").write_text(
        "inventory:\n  - path: inventory.csv\n"
        "sources:\n  - type: cloudtrail-files\n    paths: [trail]\n"
        "policies: [builtin:export-controls]\n",
        encoding="utf-8",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", default="64MB", help="uncompressed JSON volume (64MB, 1GB)")
    parser.add_argument("--files", type=int, default=None, help="number of files")
    parser.add_argument("--session-share", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args(argv)
    summary = generate(
        args.out,
        size=parse_size(args.size),
        files=args.files,
        session_share=args.session_share,
        seed=args.seed,
    )
    print(summary)


if __name__ == "__main__":
    main()
