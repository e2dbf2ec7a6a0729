#!/usr/bin/env python3
"""The offline lab: `make lab` / `make lab-down`.

up    start dockerd if needed, build missing images, create the lab host
      container (systemd as PID 1, Docker inside), converge playbooks/site.yml
      with inventories/lab, write .lab/lab.json and print how to use it.
down  remove every container, network and volume `up` made.
dockerd  only make sure a Docker daemon is reachable (starting one as root).
secrets  only make the controller-side lab files: .lab/secrets.yml and the
      queue's hold music .lab/lab-hold.wav (molecule needs both).

Errors end with one sentence saying what is missing and how to get it.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import secrets
import shutil
import string
import struct
import subprocess
import sys
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / ".lab"
IMAGES = LAB / "images"
SECRETS = LAB / "secrets.yml"
LAB_JSON = LAB / "lab.json"
# Hold music of the lab queue 800 (asterisk_moh_classes lab-hold in inventories/lab).
HOLD_MUSIC = LAB / "lab-hold.wav"
HOLD_RATE = 8000  # Asterisk's .wav: 8 kHz, 16-bit, mono
HOLD_NOTES_HZ = (523.25, 659.25, 783.99)  # C5, E5, G5
HOLD_PATTERN = (0, 1, 2, 1)  # C E G E: E (659.25 Hz) sounds half the time
HOLD_NOTE_S = 0.4
HOLD_LOOP_S = 8.0
HOLD_FADE_S = 0.03  # raised-cosine fade in and out of each note: no clicks
HOLD_AMPLITUDE = 0.3  # soft: about -10 dBFS

HOST_CONTAINER = "webrtc-lab-host"
HOST_IMAGE = "voiceops/labhost:12"
NETWORK = "webrtc-lab"
DOCKER_VOLUME = "webrtc-lab-docker"
DATA_VOLUME = "webrtc-lab-data"
LAB_USERS = ["1000", "1001", "1002"]
# Fixed addresses: the inventory names the trunk's SIP Servers before anything
# runs. VOICEOPS_LAB_NET moves the lab (molecule uses another /24).
NET_PREFIX = os.environ.get("VOICEOPS_LAB_NET", "172.28.77")
SUBNET = f"{NET_PREFIX}.0/24"
HOST_IP = f"{NET_PREFIX}.10"
SIM_PRIMARY_IP = f"{NET_PREFIX}.21"
SIM_BACKUP_IP = f"{NET_PREFIX}.22"

# Every capability Docker 20.10 knows except SYS_RESOURCE: --privileged fails on our machines.
CAPABILITIES = [
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "SYSLOG",
    "WAKE_ALARM",
]


class LabError(RuntimeError):
    """Stops the lab with one clear sentence."""


def sh(cmd: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and res.returncode != 0:
        lines = [ln for ln in (res.stderr or res.stdout).strip().splitlines() if "--help" not in ln]
        raise LabError(f"'{' '.join(cmd[:3])} ...' failed: {' '.join(lines[-2:])}")
    return res


def docker_reachable() -> bool:
    return shutil.which("docker") is not None and sh(["docker", "info"], check=False).returncode == 0


def ensure_dockerd() -> None:
    if docker_reachable():
        return
    if shutil.which("docker") is None:
        raise LabError("The docker client is missing: install Docker with 'apt-get install -y docker.io'.")
    if os.geteuid() != 0:
        raise LabError("No Docker daemon is reachable and starting one needs root: run 'make lab' as root.")
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    if not Path(dockerd).exists():
        raise LabError("dockerd is missing: install it with 'apt-get install -y docker.io'.")
    LAB.mkdir(exist_ok=True)
    log = open(LAB / "dockerd.log", "ab")  # noqa: SIM115 - handed to the daemon
    proc = subprocess.Popen([dockerd], stdout=log, stderr=log, start_new_session=True)
    (LAB / "dockerd.pid").write_text(f"{proc.pid}\n")
    for _ in range(60):
        if docker_reachable():
            print(f"started dockerd (pid {proc.pid}, log .lab/dockerd.log)")
            return
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    raise LabError("dockerd did not come up: see .lab/dockerd.log for the reason.")


# What `make lab` and `make test` need from Debian (12 or 13) beyond a minimal
# install; Node.js and npm only when no `node` is on PATH already.
HOST_PACKAGES = [
    "docker.io", "debootstrap", "chromium", "make", "openssl", "curl", "ca-certificates", "iproute2",
    "python3-venv", "git", "flite",
]  # fmt: skip


def missing_host_packages() -> list[str]:
    wanted = HOST_PACKAGES + ([] if shutil.which("node") else ["nodejs", "npm"])
    if not shutil.which("dpkg-query"):
        raise LabError("no dpkg-query: the lab and the tests run on Debian 12 or 13.")
    res = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Package}\n", *wanted],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    installed = {line.split()[1] for line in res.stdout.splitlines() if line.startswith("ii")}
    return [name for name in wanted if name not in installed]


def ensure_host_packages() -> None:
    """Install the Debian packages the lab and the tests use, when some are missing."""
    missing = missing_host_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise LabError(f"packages missing: {' '.join(missing)}; run as root so that they are installed.")
    if not shutil.which("apt-get"):
        raise LabError(f"packages missing: {' '.join(missing)}; this host has no apt-get (Debian 12 or 13 needed).")
    print(f"installing {' '.join(missing)}", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    quiet = {"stdout": subprocess.DEVNULL}
    if subprocess.run(["apt-get", "update", "-q"], env=env, check=False, **quiet).returncode != 0:
        raise LabError("apt-get update failed: check the Debian mirror (output above).")
    res = subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env, check=False, **quiet
    )
    if res.returncode != 0:
        raise LabError(f"apt-get install {' '.join(missing)} failed (output above).")


def preflight() -> None:
    if os.geteuid() != 0:
        raise LabError("make lab needs root (it starts dockerd and builds images with debootstrap): run it as root.")
    if not shutil.which("debootstrap"):
        raise LabError("debootstrap is missing: install it with 'apt-get install -y debootstrap'.")
    ensure_dockerd()


def ensure_images() -> None:
    res = subprocess.run([sys.executable, str(ROOT / "lab" / "images" / "build.py")])
    if res.returncode != 0:
        raise LabError("Building the lab images failed: read the message above, fix it and run 'make lab' again.")


def _password(n: int = 24) -> str:
    alphabet = string.ascii_letters + string.digits
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(n))
        if any(c.isdigit() for c in pw) and any(c.islower() for c in pw) and any(c.isupper() for c in pw):
            return pw


def _digits(n: int) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(n))


def ensure_secrets() -> dict:
    """Lab secrets: generated once, kept in .lab/secrets.yml (git-ignored, 0600).

    Secrets added by newer versions of the lab are generated and merged in;
    existing values are never changed.
    """
    LAB.mkdir(exist_ok=True)
    data = json.loads(SECRETS.read_text()) if SECRETS.exists() else {}
    wanted = {
        "asterisk_ami_secret": lambda: _password(32),
        "asterisk_health_secret": lambda: _password(24),
        "coturn_static_auth_secret": lambda: _password(40),
        "nginx_tls_metrics_password": lambda: _password(24),
        "lab_agent_passwords": lambda: {u: _password(20) for u in LAB_USERS},
        # Range agents (asterisk_agent_ranges, e.g. the benchmarks' 5000): passwords derive from it.
        "asterisk_agent_range_secret": lambda: _password(32),
        # Voicemail PINs and the conference room's admin PIN (digits).
        "lab_voicemail_pins": lambda: {u: _digits(6) for u in LAB_USERS},
        "lab_conference_admin_pin": lambda: _digits(6),
        # Keys the voicemail portal's password hashes and signs its audio links.
        "voicemail_portal_secret": lambda: _password(40),
    }
    missing = {k: make() for k, make in wanted.items() if k not in data}
    if missing:
        data.update(missing)
        tmp = SECRETS.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)  # JSON is valid YAML for ansible's -e @file
        os.replace(tmp, SECRETS)
    return data


def hold_music_wav() -> bytes:
    """The lab's hold music: an 8 s loop of soft C-E-G-E notes, 0.4 s each, as an 8 kHz 16-bit mono WAV.

    Pure arithmetic, so every run makes the same bytes.
    """
    note = round(HOLD_NOTE_S * HOLD_RATE)
    fade = round(HOLD_FADE_S * HOLD_RATE)
    samples = []
    for k in range(round(HOLD_LOOP_S / HOLD_NOTE_S)):
        freq = HOLD_NOTES_HZ[HOLD_PATTERN[k % len(HOLD_PATTERN)]]
        for i in range(note):
            edge = min(i, note - 1 - i)
            gain = 0.5 - 0.5 * math.cos(math.pi * edge / fade) if edge < fade else 1.0
            samples.append(round(HOLD_AMPLITUDE * 32767 * gain * math.sin(2 * math.pi * freq * i / HOLD_RATE)))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(HOLD_RATE)
        w.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return buf.getvalue()


def ensure_hold_music() -> Path:
    """.lab/lab-hold.wav (git-ignored): written when missing or different, else left alone."""
    LAB.mkdir(exist_ok=True)
    data = hold_music_wav()
    if not HOLD_MUSIC.exists() or HOLD_MUSIC.read_bytes() != data:
        tmp = HOLD_MUSIC.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, HOLD_MUSIC)
    return HOLD_MUSIC


def ensure_lab_files() -> dict:
    """Everything the lab inventory reads on the controller: the secrets and the hold music."""
    data = ensure_secrets()
    ensure_hold_music()
    return data


def container_state(name: str) -> str | None:
    res = sh(["docker", "inspect", "-f", "{{.State.Status}}", name], check=False)
    return res.stdout.strip() if res.returncode == 0 else None


def labhost_run_args(name: str, hostname: str) -> list[str]:
    args = [
        "--name",
        name,
        "--hostname",
        hostname,
        "--detach",
        "--restart",
        "unless-stopped",
        "--stop-signal",
        "SIGRTMIN+3",
        "--cgroupns",
        "host",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "apparmor=unconfined",
        "--volume",
        "/sys/fs/cgroup:/sys/fs/cgroup:rw",
        "--tmpfs",
        "/run",
        "--tmpfs",
        "/run/lock",
        "--volume",
        f"{IMAGES}:/opt/voiceops/images:ro",
    ]
    for cap in CAPABILITIES:
        args += ["--cap-add", cap]
    return args


def ensure_network() -> None:
    res = sh(["docker", "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", NETWORK], check=False)
    if res.returncode != 0:
        sh(["docker", "network", "create", "--subnet", SUBNET, NETWORK])
    elif res.stdout.strip() != SUBNET:
        got = res.stdout.strip()
        raise LabError(f"network {NETWORK} exists with subnet {got}, not {SUBNET}: run 'make lab-down' first.")


def ensure_simulator() -> None:
    """Genesys SIP Server simulator, primary and backup (lab/simulator.py)."""
    import simulator  # noqa: PLC0415 - lab/ is not a package

    for role, ip in (("primary", SIM_PRIMARY_IP), ("backup", SIM_BACKUP_IP)):
        if container_state(simulator.NAMES[role]) == "running":
            continue
        try:
            simulator.start(role, NETWORK, ip, HOST_IP)
        except simulator.SimError as exc:
            raise LabError(f"the Genesys simulator did not start: {exc}") from exc


def create_host(
    name: str,
    hostname: str,
    ip: str,
    docker_volume: str,
    data_volume: str,
    network: str = NETWORK,
    extra_args: tuple[str, ...] = (),
) -> None:
    """Start a lab host container: systemd as PID 1, its own /var/lib/docker and /var/lib/voiceops volumes.

    `make lab` makes webrtc-lab-host with it; bench/deploy.py a separate host
    (own name, address, volumes; extra_args adds e.g. labels).
    """
    sh(
        [
            "docker",
            "run",
            *labhost_run_args(name, hostname),
            *extra_args,
            "--network",
            network,
            "--ip",
            ip,
            "--volume",
            f"{docker_volume}:/var/lib/docker",
            "--volume",
            f"{data_volume}:/var/lib/voiceops",
            HOST_IMAGE,
            "/sbin/init",
        ]
    )


def wait_for_systemd(name: str, tries: int = 90) -> None:
    """Wait until systemd in the container `name` has finished booting (running or degraded)."""
    for _ in range(tries):
        res = sh(["docker", "exec", name, "systemctl", "is-system-running"], check=False)
        if res.stdout.strip() in ("running", "degraded"):
            return
        time.sleep(1)
    raise LabError(f"systemd in {name} did not finish booting: see 'docker logs {name}'.")


def ensure_host() -> None:
    ensure_network()
    state = container_state(HOST_CONTAINER)
    if state is None:
        create_host(HOST_CONTAINER, "pbx-lab", HOST_IP, DOCKER_VOLUME, DATA_VOLUME)
    elif state != "running":
        sh(["docker", "start", HOST_CONTAINER])
    wait_for_systemd(HOST_CONTAINER)


def host_ip() -> str:
    res = sh(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", HOST_CONTAINER])
    return res.stdout.split()[0]


def playbook_command(*extra: str, playbook: str = "site.yml") -> tuple[list[str], dict[str, str]]:
    """The ansible-playbook command line and environment `make lab` converges with (lab inventory, lab secrets).

    extra is appended to the command line (bench/deploy.py adds -e overrides).
    """
    ansible = ROOT / ".venv" / "bin" / "ansible-playbook"
    if not ansible.exists():
        raise LabError("The project venv is missing: run 'make venv' (make lab does it for you).")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0")
    cmd = [
        str(ansible),
        "-i",
        str(ROOT / "inventories" / "lab"),
        str(ROOT / "playbooks" / playbook),
        "-e",
        f"@{SECRETS}",
        *extra,
    ]
    return cmd, env


def converge() -> float:
    cmd, env = playbook_command()
    t0 = time.monotonic()
    res = subprocess.run(cmd, cwd=ROOT, env=env)
    if res.returncode != 0:
        raise LabError("playbooks/site.yml failed on the lab host: the task output above names the failing step.")
    return time.monotonic() - t0


def write_lab_json(data: dict) -> dict:
    import simulator  # noqa: PLC0415 - lab/ is not a package

    ip = host_ip()
    ca = LAB / "lab-ca.crt"
    res = sh(["docker", "exec", HOST_CONTAINER, "cat", "/etc/voiceops/tls/lab-ca.crt"], check=False)
    if res.returncode == 0:
        ca.write_text(res.stdout)
    info = {
        "web_url": f"https://{ip}/",
        "wss_url": f"wss://{ip}:8089/ws",
        "sip_domain": ip,
        "host_container": HOST_CONTAINER,
        "host_address": ip,
        "ca_certificate": str(ca),
        "echo_test": "600",
        "users": [
            {"user": u, "password": p, "voicemail_pin": data["lab_voicemail_pins"][u]}
            for u, p in data["lab_agent_passwords"].items()
        ],
        "voicemail": "dial 601 (your PIN is voicemail_pin above); calls you do not answer go to voicemail",
        "conference": {"number": "700", "admin_pin": data["lab_conference_admin_pin"], "participants": "press #"},
        "queue": "dial 800: rings agents 1001 and 1002, callers hear the lab hold music (.lab/lab-hold.wav)",
        "record_toggle": "press *3 during an agent call to start or stop recording",
        "trunk_simulator": {
            "what": "Genesys SIP Server simulator (lab/simulator.py), Asterisk answering like SIP Server",
            "primary": {"container": simulator.NAMES["primary"], "address": SIM_PRIMARY_IP, "port": 5060},
            "backup": {"container": simulator.NAMES["backup"], "address": SIM_BACKUP_IP, "port": 5060},
            "outbound": "dial 9 + any number from the softphone: the simulator answers and echoes your audio",
            "inbound": ".venv/bin/python lab/simulator.py call primary 5000  (route point 5000 -> agent 1000)",
            "dialled_numbers": ".venv/bin/python lab/simulator.py dialled primary",
            "trunk_state": ".venv/bin/python lab/simulator.py status primary",
            "failure_modes": ".venv/bin/python lab/simulator.py mode primary echo|busy|fail|silent",
        },
    }
    fd = os.open(LAB_JSON, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(info, fh, indent=2)
    return info


def up(args: argparse.Namespace) -> None:
    t0 = time.monotonic()
    preflight()
    ensure_images()
    data = ensure_lab_files()
    ensure_host()
    ensure_simulator()
    took = converge()
    info = write_lab_json(data)
    print()
    print(f"Lab ready in {time.monotonic() - t0:.0f} s (site.yml {took:.0f} s).")
    print(f"  Softphone: {info['web_url']}   (lab CA: {info['ca_certificate']})")
    print(f"  WebSocket: {info['wss_url']}   SIP domain: {info['sip_domain']}")
    for u in info["users"]:
        print(f"  User {u['user']}  password {u['password']}  voicemail PIN {u['voicemail_pin']}")
    print(f"  Echo test: dial {info['echo_test']}.  Details: {LAB_JSON.relative_to(ROOT)}")
    conf = info["conference"]
    print(f"  Voicemail: dial 601.  Conference: dial {conf['number']} (admin PIN {conf['admin_pin']}, others press #).")
    print(f"  Queue: {info['queue']}.  Recording: {info['record_toggle']}.")
    print(f"  Genesys simulator: dial 9 + any number (echoes you back); inbound: {info['trunk_simulator']['inbound']}")


def down(args: argparse.Namespace) -> None:
    if not docker_reachable():
        print("no Docker daemon reachable: nothing to remove")
        return
    if container_state(HOST_CONTAINER) is not None:
        sh(["docker", "rm", "-f", "-v", HOST_CONTAINER])
    import simulator  # noqa: PLC0415 - lab/ is not a package

    simulator.down()
    for vol in (DOCKER_VOLUME, DATA_VOLUME):
        sh(["docker", "volume", "rm", "-f", vol], check=False)
    if sh(["docker", "network", "inspect", NETWORK], check=False).returncode == 0:
        sh(["docker", "network", "rm", NETWORK])
    LAB_JSON.unlink(missing_ok=True)
    print("lab removed (images and secrets in .lab/ are kept; delete .lab/ to start over)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="voiceops.webrtc_pbx lab")
    ap.add_argument("command", choices=["up", "down", "dockerd", "secrets", "host-packages"])
    args = ap.parse_args(argv)
    try:
        actions = {
            "up": up,
            "down": down,
            "dockerd": lambda a: ensure_dockerd(),
            "secrets": lambda a: ensure_lab_files(),
            "host-packages": lambda a: ensure_host_packages(),
        }
        actions[args.command](args)
    except LabError as exc:
        print(f"make lab: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
