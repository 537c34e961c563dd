"""Watch test bed: a followed auth.log of a GPU host, a static inventory and a SQLite store."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from agent.config import load_config
from agent.models import AuditRun, Finding, Session
from agent.pipeline import FindingHook, RunHook
from agent.store import SqlStore, open_store
from agent.watch import WatchOptions, run_watch

ACCOUNT, INSTANCE = "111122223333", "i-0a1b2c3d4e5f60001"
INVENTORY = (
    "provider,account,region,instance_id,instance_type,private_ips,enis,name,"
    "accelerator_model,accelerator_count\n"
    f"aws,{ACCOUNT},us-east-1,{INSTANCE},p5.48xlarge,10.0.1.10,,train-h100,,\n"
)
CN_IP = "1.2.4.8"  # China (D:5) in the embedded RIR data; H100 is 3A090.a -> high


def now() -> datetime:
    return datetime.now(UTC)


def accepted(user: str, ip: str, *, pid: int, port: int = 50000, at: str = "10:00:00") -> str:
    return (
        f"Nov 28 {at} gpu-7 sshd[{pid}]: Accepted publickey for {user} from {ip} port {port} "
        "ssh2: ED25519 SHA256:Qm1vY2tLZXlGb3JDaGlwd2FyZGVuU2FtcGxlMDAx"
    )


def disconnected(user: str, ip: str, *, pid: int, port: int = 50000, at: str = "10:30:00") -> str:
    return f"Nov 28 {at} gpu-7 sshd[{pid}]: Disconnected from user {user} {ip} port {port}"


def noise(n: int, *, at: str = "10:00:00") -> str:
    return f"Nov 28 {at} gpu-7 CRON[{n}]: pam_unix(cron:session): session closed for user root"


def append(path: Path, *lines: str) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in lines))


@dataclass
class WatchBed:
    """Files of one watch setup under ``root`` and helpers to run and inspect it."""

    root: Path
    extra_sources: list[dict[str, Any]] = field(default_factory=list)
    extra_inventory: list[str] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.root / "auth.log"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.root / 'watch.db'}"

    def write_config(self) -> Path:
        (self.root / "inventory.csv").write_text(INVENTORY + "".join(self.extra_inventory))
        sshd = {
            "type": "sshd-log",
            "path": "auth.log",
            "year": 2026,
            "instance": {"provider": "aws", "account": ACCOUNT, "instance_id": INSTANCE},
        }
        doc = {
            "store": self.store_url,
            "inventory": [{"path": "inventory.csv"}],
            "sources": [sshd, *self.extra_sources],
        }
        self.config.write_text(yaml.safe_dump(doc, sort_keys=False))
        return self.config

    def options(self, **changes: Any) -> WatchOptions:
        base: dict[str, Any] = {"follow_interval": 0.01, "until_idle": True}
        return WatchOptions(**(base | changes))

    def run(
        self,
        *,
        options: WatchOptions | None = None,
        stop: threading.Event | None = None,
        finding_hook: FindingHook | None = None,
        after_run: Sequence[RunHook] = (),
    ) -> AuditRun:
        cfg, doc = load_config(self.write_config())
        return run_watch(
            cfg,
            doc=doc,
            stop=stop or threading.Event(),
            clock=now,
            options=options or self.options(),
            finding_hook=finding_hook,
            after_run=after_run,
        )

    def store(self) -> SqlStore:
        return open_store(self.store_url)

    def findings(self) -> list[Finding]:
        with self.store() as db:
            return db.list_findings(limit=100_000)

    def sessions(self) -> list[Session]:
        with self.store() as db:
            return list(db.list_sessions())

    def checkpoint(self, path: Path | None = None, source: str = "sshd-log[0]") -> dict[str, Any]:
        with self.store() as db:
            raw = db.get_checkpoint(f"watch:{source}:{path or self.log}")
        assert raw is not None
        value: dict[str, Any] = json.loads(raw)
        return value
