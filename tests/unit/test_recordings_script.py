"""roles/asterisk/files/usr/local/libexec/voiceops/recordings.py: encryption at rest and retention.

Real files in a temporary directory and the real openssl command: a
recording encrypted to a throw-away certificate must decrypt with its key to
the same bytes, and only files past the retention age go.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "roles/asterisk/files/usr/local/libexec/voiceops/recordings.py"
spec = importlib.util.spec_from_file_location("voiceops_recordings", SCRIPT)
recordings = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recordings)

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@pytest.fixture(scope="module")
def keypair(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=recordings",
         "-days", "2", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    return d / "cert.pem", d / "key.pem"


def make(path: Path, data: bytes = b"RIFF....WAVEfmt fake audio", age_s: float = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


def test_finished_recording_is_encrypted_and_decrypts_to_the_same_bytes(tmp_path, keypair):
    cert, key = keypair
    data = os.urandom(50_000)
    wav = make(tmp_path / "2026/11/28/20261128-101500_1000_1001_1764324900.12.wav", data, age_s=600)
    stats = recordings.run(tmp_path, retention_days=90, certificate=cert, settle=120)
    assert stats["encrypted"] == 1 and stats["failed"] == 0
    assert not wav.exists()
    cms = wav.with_name(wav.name + ".cms")
    assert cms.exists() and data not in cms.read_bytes()
    assert abs(cms.stat().st_mtime - (time.time() - 600)) < 5  # keeps the recording's age
    out = tmp_path / "plain.wav"
    subprocess.run(
        ["openssl", "cms", "-decrypt", "-inform", "DER", "-in", str(cms), "-recip", str(cert),
         "-inkey", str(key), "-out", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    assert out.read_bytes() == data


def test_recording_still_being_written_is_left_alone(tmp_path, keypair):
    cert, _key = keypair
    wav = make(tmp_path / "live.wav", age_s=5)
    stats = recordings.run(tmp_path, retention_days=90, certificate=cert, settle=120)
    assert stats["encrypted"] == 0 and wav.exists()


def test_retention_deletes_old_recordings_and_empty_date_directories(tmp_path):
    old = make(tmp_path / "2020/01/01/old.wav", age_s=100 * 86400)
    old_cms = make(tmp_path / "2020/01/02/old.wav.cms", age_s=100 * 86400)
    new = make(tmp_path / "2026/11/28/new.wav", age_s=86400)
    other = make(tmp_path / "2020/01/03/notes.txt", age_s=100 * 86400)
    stats = recordings.run(tmp_path, retention_days=90, certificate=None, settle=120)
    assert stats["deleted"] == 2
    assert not old.exists() and not old_cms.exists() and new.exists() and other.exists()
    assert not (tmp_path / "2020/01/01").exists() and not (tmp_path / "2020/01/02").exists()
    assert (tmp_path / "2020/01/03").exists()
    # A date directory emptied completely goes with its parents.
    make(tmp_path / "1999/12/31/old.wav", age_s=9000 * 86400)
    recordings.run(tmp_path, retention_days=90, certificate=None, settle=120)
    assert not (tmp_path / "1999").exists()


def test_retention_zero_keeps_everything(tmp_path):
    old = make(tmp_path / "old.wav", age_s=1000 * 86400)
    assert recordings.run(tmp_path, retention_days=0, certificate=None, settle=120)["deleted"] == 0
    assert old.exists()


def test_a_bad_certificate_fails_loudly_and_keeps_the_wav(tmp_path, capsys):
    bad = make(tmp_path / "not-a-cert.pem", b"nonsense")
    wav = make(tmp_path / "rec" / "a.wav", age_s=600)
    assert recordings.main([str(tmp_path / "rec"), "--certificate", str(bad)]) == 1
    assert wav.exists()
    assert "cannot encrypt" in capsys.readouterr().err
