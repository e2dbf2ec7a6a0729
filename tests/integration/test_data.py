"""Voicemail, recordings and CDR live on host volumes: they survive the Asterisk
container being recreated and an image tag upgrade, and playbooks/backup.yml +
playbooks/restore.yml round-trip them with owners and modes."""

from __future__ import annotations

import json
import tarfile
import time
import uuid

import pytest
from conftest import ami_args, lab_exec, run_module, run_playbook

DATA = "/var/lib/voiceops/asterisk/spool"
CDR = "/var/log/voiceops/asterisk/cdr-custom/Master.csv"
UPGRADE_TAG = "voiceops/asterisk:22-upgrade-test"


@pytest.fixture
def markers(lab):
    """A voicemail message, a recording and a CDR line that a rebuild cannot recreate."""
    tag = uuid.uuid4().hex[:8]
    files = {
        f"{DATA}/voicemail/default/1000/INBOX/msg9000.txt": f"[message]\ncallerid=+15550100\nid={tag}\n",
        f"{DATA}/monitor/20261127-230000-1000-1001-{tag}.wav": "RIFF" + tag * 64,
    }
    for path, content in files.items():
        lab_exec(lab, "install", "-d", "-o", "1000", "-g", "1000", "-m", "0750", path.rsplit("/", 1)[0])
        lab_exec(lab, "sh", "-c", f"printf '%s' '{content}' > {path} && chown 1000:1000 {path} && chmod 0640 {path}")
    lab_exec(lab, "sh", "-c", f"echo '\"marker-{tag}\"' >> {CDR}")
    yield tag, files
    for path in files:
        lab_exec(lab, "rm", "-f", path)


def _digest(lab, path: str) -> str:
    return lab_exec(lab, "sh", "-c", f"stat -c '%u:%g:%a' {path} && sha256sum {path}").strip()


def _state(lab, files) -> dict:
    return {p: _digest(lab, p) for p in files}


def _asterisk_ok(inventory, tmp_path) -> None:
    out = run_module(inventory, "pjsip_endpoint_info", ami_args(endpoints=["genesys"], wait_for="reachable",
                                                                 wait_timeout=60), tmp_path)  # fmt: skip
    assert not out.get("failed"), out.get("msg")


def test_data_survives_recreation_and_image_upgrade(lab, inventory, tmp_path, markers):
    tag, files = markers
    before = _state(lab, files)
    # 1. The container is removed and site.yml creates it again.
    lab_exec(lab, "docker", "rm", "-f", "webrtc-asterisk")
    res = run_playbook(inventory, "site.yml", "--tags", "asterisk,genesys_trunk")
    assert res.returncode == 0, res.stdout[-3000:]
    assert _state(lab, files) == before
    seen = lab_exec(lab, "docker", "exec", "webrtc-asterisk", "ls", "/var/spool/asterisk/voicemail/default/1000/INBOX")
    assert "msg9000.txt" in seen
    _asterisk_ok(inventory, tmp_path)
    # 2. An image tag upgrade: the container is replaced by one from the new tag.
    lab_exec(lab, "docker", "tag", "voiceops/asterisk:22", UPGRADE_TAG)
    try:
        extra = json.dumps({"asterisk_image": UPGRADE_TAG, "asterisk_image_archive": ""})
        res = run_playbook(inventory, "site.yml", "--tags", "asterisk,genesys_trunk", "-e", extra)
        assert res.returncode == 0, res.stdout[-3000:]
        image = lab_exec(lab, "docker", "inspect", "-f", "{{.Config.Image}}", "webrtc-asterisk").strip()
        assert image == UPGRADE_TAG
        assert _state(lab, files) == before
        assert f"marker-{tag}" in lab_exec(lab, "tail", "-n", "20", CDR)
        _asterisk_ok(inventory, tmp_path)
    finally:
        res = run_playbook(inventory, "site.yml", "--tags", "asterisk,genesys_trunk")
        lab_exec(lab, "docker", "rmi", UPGRADE_TAG)
    assert res.returncode == 0, res.stdout[-3000:]
    _asterisk_ok(inventory, tmp_path)


def test_backup_and_restore_round_trip(lab, inventory, tmp_path, markers):
    tag, files = markers
    before = _state(lab, files)
    t0 = time.monotonic()
    res = run_playbook(inventory, "backup.yml", "-e", f"backup_local_dir={tmp_path}")
    assert res.returncode == 0, res.stdout[-3000:]
    archives = list(tmp_path.glob("voiceops-lab-pbx-*.tar.gz"))
    assert len(archives) == 1, res.stdout[-2000:]
    with tarfile.open(archives[0]) as tar:
        names = tar.getnames()
    assert any(n.endswith("msg9000.txt") for n in names) and any(tag in n for n in names)
    print(f"\nbackup: {len(names)} entries, {archives[0].stat().st_size} bytes in {time.monotonic() - t0:.1f} s")

    for path in files:  # lose the data
        lab_exec(lab, "rm", "-f", path)
    lab_exec(lab, "sed", "-i", f"/marker-{tag}/d", CDR)
    assert lab_exec(lab, "sh", "-c", f"ls {' '.join(files)} 2>/dev/null").strip() == ""

    res = run_playbook(inventory, "restore.yml", "-e", f"backup_archive={archives[0]}")
    assert res.returncode == 0, res.stdout[-3000:]
    assert _state(lab, files) == before
    assert f"marker-{tag}" in lab_exec(lab, "tail", "-n", "50", CDR)


def test_restore_refuses_a_foreign_archive(lab, inventory, tmp_path):
    evil = tmp_path / "evil.tar.gz"
    payload = tmp_path / "passwd"
    payload.write_text("root::0:0::/root:/bin/sh\n")
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(payload, arcname="etc/passwd")
    res = run_playbook(inventory, "restore.yml", "-e", f"backup_archive={evil}")
    assert res.returncode != 0
    assert "holds paths outside" in res.stdout and "etc/passwd" in res.stdout
    assert "root::0:0" not in lab_exec(lab, "cat", "/etc/passwd")
