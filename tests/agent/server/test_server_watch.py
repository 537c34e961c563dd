"""``chipwarden serve --watch`` runs the watch loop beside the API (sidecar mode)."""

from __future__ import annotations

import time
from pathlib import Path
from threading import Event

from agent.cli_service import _start_watch
from agent.server.settings import ServerSettings
from agent.store import open_store

ACCEPTED = (
    "Nov 25 10:03:17 gpu-host sshd[2388]: Accepted publickey for ubuntu from 77.88.8.8 "
    "port 51234 ssh2: RSA SHA256:UnVzc2lhbkV4YW1wbGVLZXk\n"
)


def test_serve_watch_thread_follows_a_log_and_stores_a_finding_then_drains(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("Nov 25 08:01:12 gpu-host sshd[2211]: Server listening on 0.0.0.0 port 22.\n")
    (tmp_path / "inventory.csv").write_text(
        "provider,account,region,instance_id,instance_type\n"
        "aws,444455556666,eu-west-1,i-0b1b2c3d4e5f60001,p5.48xlarge\n"
    )
    config = tmp_path / "chipwarden.yaml"
    config.write_text(
        "store: sqlite:///cw.db\n"
        "inventory: [{path: inventory.csv}]\n"
        "sources:\n"
        "  - type: sshd-log\n"
        "    path: auth.log\n"
        "    year: 2026\n"
        "    instance: {provider: aws, account: '444455556666', region: eu-west-1,"
        " instance_id: i-0b1b2c3d4e5f60001}\n"
    )
    stop = Event()
    thread = _start_watch(ServerSettings(config=config), stop)
    try:
        with log.open("a") as fh:
            fh.write(ACCEPTED)
        deadline = time.monotonic() + 30
        found = []
        while time.monotonic() < deadline and not found:
            time.sleep(0.3)
            with open_store(f"sqlite:///{tmp_path / 'cw.db'}") as store:
                found = store.list_findings()
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert [f.session.source_ip for f in found] == ["77.88.8.8"]
    assert found[0].severity.value == "high"
