#!/usr/bin/env python3
"""Build the offline lab images with debootstrap + ``docker import``.

No container registry is used. Each image is described by a recipe below; the
recipe and the files it copies are hashed, and an image is rebuilt only when
that hash changes. Every image is also saved as a tarball under
``.lab/images/`` so the roles can load it on an air-gapped host
(``asterisk_image_archive`` and friends).

Usage: build.py [--out DIR] [NAME ...]   (default: every image)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFAULT_OUT = ROOT / ".lab" / "images"
MIRROR = os.environ.get("LAB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
APT_NOCHECK = ["-o", "Acquire::Check-Valid-Until=false", "-o", "Acquire::Check-Date=false"]

# One recipe per image. "suite" is the debootstrap suite, "packages" are
# installed with apt inside the root, "sid_packages" come from Debian sid
# (pinned low so only what we name is taken from there), "script" runs in the
# chroot after the packages, "files" are copied from lab/images/<name>/files,
# "changes" are docker import --change instructions.
RECIPES: dict[str, dict] = {
    "labhost": {
        "tag": "voiceops/labhost:12",
        "suite": "bookworm",
        "packages": [
            "systemd",
            "systemd-sysv",
            "dbus",
            "python3",
            "python3-apt",
            "python3-requests",
            "iproute2",
            "iptables",
            "procps",
            "ca-certificates",
            "docker.io",
            "firewalld",
            "openssl",
            "curl",
            "less",
            "cron",
            "logrotate",
            "sudo",
            "python3-cryptography",
            "python3-docker",
        ],
        "script": """
            systemctl mask getty@tty1.service console-getty.service systemd-logind.service \
                systemd-udevd.service systemd-udev-trigger.service dev-hugepages.mount \
                sys-fs-fuse-connections.mount systemd-remount-fs.service
            systemctl disable docker.service docker.socket firewalld.service || true
            echo 'labhost' > /etc/hostname
        """,
        # docker import cannot set STOPSIGNAL: containers are run with --stop-signal SIGRTMIN+3.
        "changes": ['CMD ["/sbin/init"]', "ENV container=docker"],
    },
    "asterisk": {
        # Mimics andrius/asterisk:22 (Debian trixie, Asterisk 22 from sid).
        "tag": "voiceops/asterisk:22",
        "suite": "trixie",
        "packages": ["ca-certificates", "procps", "iproute2", "tzdata", "passwd"],
        "sid_packages": [
            "asterisk",
            "asterisk-modules",
            "asterisk-core-sounds-en-gsm",
            "asterisk-moh-opsound-gsm",
            "asterisk-opus",
        ],
        "script": """
            id asterisk >/dev/null 2>&1 || useradd -r -d /var/lib/asterisk asterisk
            groupmod -o -g 1000 asterisk
            usermod -o -u 1000 -g 1000 asterisk
            mkdir -p /var/lib/asterisk/sounds /var/lib/asterisk/keys /var/lib/asterisk/phoneprov \
                /var/spool/asterisk /var/log/asterisk /var/run/asterisk
            chown -R asterisk:asterisk /etc/asterisk /var/lib/asterisk /var/spool/asterisk \
                /var/log/asterisk /var/run/asterisk
            # Upstream keeps data (sounds, moh) under /var/lib/asterisk; Debian under
            # /usr/share/asterisk. Offer both paths.
            for d in /usr/share/asterisk/sounds/*; do
                [ -e "/var/lib/asterisk/sounds/${d##*/}" ] || ln -s "$d" /var/lib/asterisk/sounds/
            done
            [ -e /var/lib/asterisk/moh ] || ln -s /usr/share/asterisk/moh /var/lib/asterisk/moh
            install -m 0755 /files/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
        """,
        "changes": [
            'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]',
            'CMD ["/usr/sbin/asterisk", "-vvvdddf", "-T", "-W", "-U", "asterisk", "-p"]',
            'VOLUME ["/etc/asterisk", "/var/lib/asterisk/sounds", "/var/lib/asterisk/keys", '
            '"/var/lib/asterisk/phoneprov", "/var/spool/asterisk", "/var/log/asterisk"]',
            "ENV PUID=1000 PGID=1000",
        ],
        "optional_sid": ["asterisk-opus"],
    },
    "nginx": {
        # Mimics nginx:alpine: /etc/nginx/conf.d/*.conf, workers as uid 101, logs to stdout/stderr.
        "tag": "voiceops/nginx:stable",
        "suite": "bookworm",
        "packages": ["nginx-light", "ca-certificates"],
        "script": """
            groupadd -g 101 nginx && useradd -r -u 101 -g 101 -d /var/cache/nginx -s /sbin/nologin nginx
            rm -f /etc/nginx/sites-enabled/default
            mkdir -p /etc/nginx/conf.d /usr/share/nginx/html /var/cache/nginx
            install -m 0644 /files/nginx.conf /etc/nginx/nginx.conf
            ln -sf /dev/stdout /var/log/nginx/access.log
            ln -sf /dev/stderr /var/log/nginx/error.log
            install -m 0755 /files/docker-entrypoint.sh /docker-entrypoint.sh
        """,
        "changes": [
            'ENTRYPOINT ["/docker-entrypoint.sh"]',
            'CMD ["nginx", "-g", "daemon off;"]',
        ],
    },
    "coturn": {
        # Mimics coturn/coturn: runs as nobody, reads /etc/coturn/turnserver.conf.
        "tag": "voiceops/coturn:4.6",
        "suite": "bookworm",
        "packages": ["coturn", "ca-certificates"],
        "script": """
            mkdir -p /etc/coturn /var/lib/coturn
            cp /etc/turnserver.conf /etc/coturn/turnserver.conf
            chown -R nobody:nogroup /var/lib/coturn
            install -m 0755 /files/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
        """,
        "changes": [
            'ENTRYPOINT ["docker-entrypoint.sh"]',
            'CMD ["--log-file=stdout", "-c", "/etc/coturn/turnserver.conf"]',
            "USER nobody:nogroup",
        ],
    },
    "sipp": {
        # Load generator for bench/trunk_calls.py (sip-tester = SIPp 3.6). Built on demand only.
        "tag": "voiceops/sipp:3.6",
        "suite": "bookworm",
        "packages": ["sip-tester", "iproute2", "procps", "python3"],
        "script": "true",
        "changes": ['CMD ["sleep", "infinity"]'],
        "on_demand": True,
    },
}

BUILDER_VERSION = "3"  # bump to force a rebuild of every image


class BuildError(RuntimeError):
    """A build step failed; the message says what and how to fix it."""


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if res.returncode != 0:
        tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-20:])
        raise BuildError(f"command failed ({res.returncode}): {' '.join(cmd)}\n{tail}")
    return res


def inputs_hash(name: str) -> str:
    h = hashlib.sha256()
    h.update(BUILDER_VERSION.encode())
    h.update(MIRROR.encode())
    h.update(json.dumps(RECIPES[name], sort_keys=True).encode())
    files = HERE / name / "files"
    if files.is_dir():
        for p in sorted(files.rglob("*")):
            if p.is_file():
                h.update(str(p.relative_to(files)).encode())
                h.update(p.read_bytes())
    return h.hexdigest()[:16]


def image_hash(tag: str) -> str | None:
    res = subprocess.run(
        ["docker", "image", "inspect", "-f", '{{ index .Config.Labels "voiceops.inputs" }}', tag],
        capture_output=True,
        text=True,
    )
    return res.stdout.strip() if res.returncode == 0 else None


def base_root(suite: str, cache: Path) -> Path:
    """A debootstrap minbase tarball per suite, cached across images."""
    tarball = cache / f"base-{suite}.tar"
    if tarball.exists():
        return tarball
    tmp = Path(tempfile.mkdtemp(prefix=f"debootstrap-{suite}-", dir=cache))
    try:
        print(f"  debootstrap {suite} (minbase) ...", flush=True)
        run(["debootstrap", "--variant=minbase", suite, str(tmp / "root"), MIRROR])
        run(["tar", "-C", str(tmp / "root"), "-cf", str(tarball) + ".part", "."])
        os.replace(str(tarball) + ".part", tarball)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tarball


def chroot_sh(root: Path, script: str) -> None:
    run(
        ["chroot", str(root), "/bin/sh", "-ec", script],
        env={
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "DEBIAN_FRONTEND": "noninteractive",
            "LANG": "C.UTF-8",
        },
    )


def build(name: str, out: Path, cache: Path) -> None:
    recipe = RECIPES[name]
    tag = recipe["tag"]
    digest = inputs_hash(name)
    archive = out / f"{name}.tar"
    stamp = out / f"{name}.inputs"
    have_archive = archive.exists() and stamp.exists() and stamp.read_text().strip() == digest
    if image_hash(tag) == digest:
        if not have_archive:
            print(f"{name}: image current, saving archive", flush=True)
            run(["docker", "save", "-o", str(archive), tag])
            stamp.write_text(digest + "\n")
        else:
            print(f"{name}: up to date ({tag}, inputs {digest})", flush=True)
        return
    if have_archive:
        print(f"{name}: loading cached archive {archive}", flush=True)
        run(["docker", "load", "-i", str(archive)])
        return

    print(f"{name}: building {tag} (inputs {digest})", flush=True)
    base = base_root(recipe["suite"], cache)
    work = Path(tempfile.mkdtemp(prefix=f"img-{name}-", dir=cache))
    root = work / "root"
    root.mkdir()
    mounted: list[Path] = []
    try:
        run(["tar", "-C", str(root), "-xf", str(base)])
        shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
        (root / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
        (root / "usr/sbin/policy-rc.d").chmod(0o755)
        (root / "etc/dpkg/dpkg.cfg.d/01-nodoc").write_text(
            "path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\n"
        )
        for sub in ("proc", "dev/pts"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        run(["mount", "-t", "proc", "proc", str(root / "proc")])
        mounted.append(root / "proc")
        if (HERE / name / "files").is_dir():
            shutil.copytree(HERE / name / "files", root / "files")
        noinst = " ".join(APT_NOCHECK)
        pkgs = " ".join(recipe.get("packages", []))
        script = f"apt-get {noinst} update -q\napt-get {noinst} install -y -q --no-install-recommends {pkgs}\n"
        sid = recipe.get("sid_packages", [])
        if sid:
            optional = set(recipe.get("optional_sid", []))
            required = " ".join(p for p in sid if p not in optional)
            script += (
                f"echo 'deb {MIRROR} sid main' > /etc/apt/sources.list.d/sid.list\n"
                "printf 'Package: *\\nPin: release n=sid\\nPin-Priority: 100\\n' > /etc/apt/preferences.d/sid\n"
                f"apt-get {noinst} update -q\n"
                f"apt-get {noinst} install -y -q --no-install-recommends -t sid {required}\n"
            )
            for pkg in optional:
                script += f"apt-get {noinst} install -y -q --no-install-recommends -t sid {pkg} || true\n"
        print(f"  {name}: apt install", flush=True)
        chroot_sh(root, script)
        print(f"  {name}: customise", flush=True)
        chroot_sh(root, recipe.get("script", "true"))
        chroot_sh(root, "apt-get clean; rm -rf /var/lib/apt/lists/* /files /usr/sbin/policy-rc.d; : > /etc/resolv.conf")
        for m in reversed(mounted):
            run(["umount", "-l", str(m)])
        mounted.clear()
        cmd = ["docker", "import"]
        for change in recipe.get("changes", []) + [f"LABEL voiceops.inputs={digest}"]:
            cmd += ["--change", change]
        print(f"  {name}: docker import", flush=True)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        res = subprocess.run(cmd + ["-", tag], stdin=tar.stdout, capture_output=True, text=True)
        tar.stdout.close()
        if res.returncode != 0:
            tar.kill()
        tar.wait()
        if res.returncode != 0 or tar.returncode != 0:
            raise BuildError(f"docker import of {tag} failed: {res.stderr.strip()}")
        run(["docker", "save", "-o", str(archive), tag])
        stamp.write_text(digest + "\n")
        print(f"{name}: built {tag} -> {archive}", flush=True)
    finally:
        for m in reversed(mounted):
            subprocess.run(["umount", "-l", str(m)], check=False)
        shutil.rmtree(work, ignore_errors=True)


def preflight() -> None:
    if os.geteuid() != 0:
        raise BuildError("Building the lab images needs root (debootstrap and chroot): run it as root.")
    if not shutil.which("debootstrap"):
        raise BuildError("debootstrap is missing: install it with 'apt-get install -y debootstrap'.")
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        raise BuildError("No Docker daemon is reachable: start one with 'make dockerd' (or 'dockerd &').")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("names", nargs="*", help=f"images to build: {', '.join(RECIPES)} (default: all but on-demand ones)")
    args = ap.parse_args(argv)
    names = args.names or [n for n, r in RECIPES.items() if not r.get("on_demand")]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        ap.error(f"unknown image(s) {', '.join(unknown)}; known: {', '.join(RECIPES)}")
    try:
        preflight()
        args.out.mkdir(parents=True, exist_ok=True)
        cache = args.out / "cache"
        cache.mkdir(exist_ok=True)
        for name in names:
            build(name, args.out, cache)
    except BuildError as exc:
        print(f"image build failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
