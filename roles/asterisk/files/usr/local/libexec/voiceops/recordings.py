#!/usr/bin/python3
"""Call recording maintenance (voiceops.webrtc_pbx asterisk role).

Run by the voiceops-recordings systemd timer on the PBX host:

* with --certificate, every finished recording (a .wav that MixMonitor has
  not written for --settle seconds) is encrypted to that certificate's public
  key (``openssl cms -encrypt -aes256``, DER) as <name>.wav.cms, and the WAV is
  removed: the host keeps no playable copy and cannot decrypt its own files;
* recordings (.wav and .wav.cms) older than --retention-days are deleted, and
  date directories left empty are removed.

Decrypt elsewhere with the private key:
  openssl cms -decrypt -inform DER -in X.wav.cms -recip key.pem -out X.wav

Standard library and the openssl command only. Prints one summary line.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

SUFFIXES = (".wav", ".wav.cms")


def recordings(root: Path):
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.endswith(SUFFIXES):
                yield Path(dirpath) / name


def encrypt(path: Path, certificate: Path) -> Path:
    """Encrypt path to certificate; the WAV is removed only once the CMS file is complete."""
    out = path.with_name(path.name + ".cms")
    tmp = path.with_name(f".{path.name}.cms.tmp")
    subprocess.run(
        ["openssl", "cms", "-encrypt", "-binary", "-aes256", "-outform", "DER",
         "-in", str(path), "-out", str(tmp), str(certificate)],
        check=True, capture_output=True,
    )  # fmt: skip
    st = path.stat()
    os.chown(tmp, st.st_uid, st.st_gid)
    os.chmod(tmp, st.st_mode & 0o640)
    os.utime(tmp, (st.st_atime, st.st_mtime))  # retention counts from the recording, not the encryption
    os.replace(tmp, out)
    path.unlink()
    return out


def prune_dirs(root: Path) -> int:
    removed = 0
    for dirpath, _dirs, _files in os.walk(root, topdown=False):
        p = Path(dirpath)
        if p != root and not any(p.iterdir()):
            try:
                p.rmdir()
                removed += 1
            except OSError:
                pass
    return removed


def run(root: Path, retention_days: int, certificate: Path | None, settle: float, now: float | None = None) -> dict:
    now = time.time() if now is None else now
    stats = {"encrypted": 0, "deleted": 0, "failed": 0, "dirs_removed": 0}
    for path in list(recordings(root)):
        try:
            age = now - path.stat().st_mtime
        except FileNotFoundError:
            continue
        if retention_days > 0 and age > retention_days * 86400:
            path.unlink(missing_ok=True)
            stats["deleted"] += 1
            continue
        if certificate and path.name.endswith(".wav") and age >= settle:
            try:
                encrypt(path, certificate)
                stats["encrypted"] += 1
            except (subprocess.CalledProcessError, OSError) as exc:
                err = getattr(exc, "stderr", b"") or b""
                print(f"cannot encrypt {path}: {exc} {err.decode(errors='replace').strip()}", file=sys.stderr)
                stats["failed"] += 1
    stats["dirs_removed"] = prune_dirs(root)
    return stats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directory", type=Path)
    ap.add_argument("--retention-days", type=int, default=0, help="delete recordings older than this (0: keep)")
    ap.add_argument("--certificate", type=Path, help="encrypt finished recordings to this PEM certificate")
    ap.add_argument(
        "--settle", type=float, default=120.0, help="seconds without writes before a WAV counts as finished"
    )
    args = ap.parse_args(argv)
    if not args.directory.is_dir():
        print(f"{args.directory}: not a directory", file=sys.stderr)
        return 2
    stats = run(args.directory, args.retention_days, args.certificate, args.settle)
    print(" ".join(f"{k}={v}" for k, v in stats.items()))
    return 1 if stats["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
