#!/usr/bin/env python3
"""Genesys Engage SIP Server simulator for the lab and the tests (never production).

Two containers (primary and backup) run a real SIP stack - a second Asterisk
from the lab image - and behave toward our PBX the way SIP Server behaves
toward an external PBX configured as a Trunk DN. Each behaviour names the
Genesys document it follows (see docs/genesys-notes.md for the sources):

* Liveness: SIP Server checks a Trunk DN every `oos-check` seconds and puts
  it out of service when it has not responded for `oos-force` seconds
  (Trunk DN options, docs.genesys.com SIPS IntegrationReferenceManual
  ConfigACGatewayDN / CiscoConfigMediaDN). That the check is an OPTIONS
  request is documented for SIP Server <-> SIP Proxy (SIPProxyDeployment/TLS)
  and assumed here for trunks. Simulated with PJSIP qualify at the oos-check
  interval; `status` reports the PBX in or out of service.
* Calls from the PBX (agent dials 9 + number): SIP Server routes them on to
  the PSTN. The simulator answers and echoes the received audio, so any number
  dialled from a browser comes back as that browser's own tone; it logs the
  number it received (`dialled`). `mode` changes the answer: echo (default),
  busy (486), fail (503 - a SIP Server that cannot route the call), or silent
  (never answers - a hung SIP Server). The 503/timeout behaviours are our
  assumptions of how an overloaded SIP Server fails, not documented ones.
* Calls to the PBX (a customer call routed to our route point): an INVITE
  whose Request-URI user is the DNIS, carrying X-Genesys-CallUUID in the
  first INVITE (a third-party AudioCodes manual documents it; Genesys's own
  GVP Events and Model Reference describes CallUUID) and attached data in
  User-to-User (hex). `call <dnis>` originates one; the customer side echoes
  audio, so the agent hears its own tone when media flows both ways, or with
  `--tone HZ` plays a steady tone (audio whose recording can be checked).
* HA: a primary and a backup instance, like a SIP Server HA pair (Trunk DN
  `contact` / `contact-backup`, `priority`).

See docs/genesys-notes.md for the sources and the list of assumptions.

Usage (also importable by the tests):
  simulator.py up --network N --pbx IP --primary IP [--backup IP] [--oos-check S]
  simulator.py down
  simulator.py mode  primary|backup echo|busy|fail|silent
  simulator.py call  primary|backup DNIS [--uuid U] [--uui HEX] [--ani NUMBER] [--tone HZ]
  simulator.py dialled primary|backup        numbers received, one per line
  simulator.py inbound primary|backup        outcome of originated calls
  simulator.py status primary|backup         JSON: PBX contact state as SIP Server sees it
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "voiceops/asterisk:22"
# The lab and a molecule run may coexist: each has its own container names.
PREFIX = os.environ.get("VOICEOPS_SIM_PREFIX", "webrtc-genesys-sim")
NAMES = {"primary": f"{PREFIX}-primary", "backup": f"{PREFIX}-backup"}
STATE_DIR = ROOT / ".lab" / "simulator" / PREFIX
LOG_DIR = "/var/log/asterisk"
MODES = ("echo", "busy", "fail", "silent")


class SimError(RuntimeError):
    pass


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and res.returncode != 0:
        raise SimError(f"docker {' '.join(args[:3])}: {res.stderr.strip()}")
    return res


def _cli(role: str, command: str) -> str:
    return _docker("exec", NAMES[role], "asterisk", "-rx", command).stdout


def render(pbx: str, oos_check: int, digest: dict | None = None) -> dict[str, str]:
    """The simulator's /etc/asterisk. digest: {'to_pbx': (user, pw), 'from_pbx': (user, pw)}."""
    auth = ""
    endpoint_auth = ""
    if digest:
        (tu, tp), (fu, fp) = digest["to_pbx"], digest["from_pbx"]
        auth = (
            f"\n[to-pbx-auth]\ntype = auth\nauth_type = userpass\nusername = {tu}\npassword = {tp}\n"
            f"\n[from-pbx-auth]\ntype = auth\nauth_type = userpass\nusername = {fu}\npassword = {fp}\n"
        )
        endpoint_auth = "outbound_auth = to-pbx-auth\nauth = from-pbx-auth\n"
    pjsip = f"""[global]
type = global
user_agent = Genesys SIP Server simulator (voiceops lab)
endpoint_identifier_order = ip,username

[transport-udp]
type = transport
protocol = udp
bind = 0.0.0.0:5060

; The PBX is a Trunk DN to SIP Server: contact = the PBX, OPTIONS every oos-check seconds.
[pbx]
type = endpoint
context = from-pbx
disallow = all
allow = ulaw,alaw
direct_media = no
rtp_symmetric = yes
dtmf_mode = rfc4733
aors = pbx
{endpoint_auth}
[pbx]
type = aor
contact = sip:{pbx}:5060
qualify_frequency = {oos_check}
qualify_timeout = 2.0

[pbx]
type = identify
endpoint = pbx
match = {pbx}
{auth}"""
    extensions = f"""[general]
static = yes
writeprotect = yes

; Calls from the PBX to the PSTN through SIP Server: log the number, then answer per mode.
[from-pbx]
exten => _[+0-9*#].,1,Set(FILE({LOG_DIR}/sim-dialled.log,,,al,u)=${{EXTEN}} ${{CALLERID(num)}})
 same => n,Set(MODE=${{DB(sim/mode)}})
 same => n,GotoIf($["${{MODE}}" = "busy"]?busy)
 same => n,GotoIf($["${{MODE}}" = "fail"]?fail)
 same => n,GotoIf($["${{MODE}}" = "silent"]?silent)
 same => n,Answer()
 same => n,Echo()
 same => n,Hangup()
 same => n(busy),Hangup(17)
 same => n(fail),Hangup(34)
 same => n(silent),Wait(120)
 same => n,Hangup()

; Customer calls to a route point: INVITE to the DNIS with CallUUID and attached data.
[to-pbx]
exten => _[+0-9*#].,1,Set(__SIM_UUID=${{DB(sim/uuid)}})
 same => n,Set(__SIM_UUI=${{DB(sim/uui)}})
 same => n,Set(CALLERID(num)=${{DB(sim/ani)}})
 same => n,Dial(PJSIP/${{EXTEN}}@pbx,60,gb(sim-headers^s^1))
 same => n,Set(FILE({LOG_DIR}/sim-inbound.log,,,al,u)=${{EXTEN}} ${{SIM_UUID}} ${{DIALSTATUS}} ${{HANGUPCAUSE}})
 same => n,Hangup()

[sim-headers]
exten => s,1,Set(PJSIP_HEADER(add,X-Genesys-CallUUID)=${{SIM_UUID}})
 same => n,ExecIf($["${{SIM_UUI}}" != ""]?Set(PJSIP_HEADER(add,User-to-User)=${{SIM_UUI}}\\;encoding=hex))
 same => n,Return()

; The customer's side of an inbound call: echo what the agent sends ...
[customer]
exten => echo,1,Answer()
 same => n,Echo()
; ... or send a steady tone (call --tone HZ) until hung up.
exten => tone,1,Answer()
 same => n,Playtones(${{DB(sim/tone)}})
 same => n,Wait(600)
 same => n,Hangup()
"""
    return {
        "asterisk.conf": "[options]\nverbose = 1\n",
        "modules.conf": "[modules]\nautoload = yes\n"
        + "".join(
            f"noload = {m}\n"
            for m in (
                "chan_dahdi.so",
                "chan_iax2.so",
                "chan_unistim.so",
                "chan_mgcp.so",
                "chan_skinny.so",
                "res_pjsip_phoneprov_provider.so",
                "res_phoneprov.so",
                "cdr_pgsql.so",
                "cel_pgsql.so",
                "res_config_pgsql.so",
                "res_config_ldap.so",
                "res_hep.so",
                "res_hep_pjsip.so",
                "res_hep_rtcp.so",
                "res_prometheus.so",
                "res_stasis_test.so",
            )
        ),
        "logger.conf": "[general]\n[logfiles]\nmessages.log => notice,warning,error\n",
        "rtp.conf": "[general]\nrtpstart = 30000\nrtpend = 31998\n",
        "pjsip.conf": pjsip,
        "extensions.conf": extensions,
    }


def _container_ip(name: str) -> str | None:
    res = _docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name, check=False)
    return res.stdout.split()[0] if res.returncode == 0 and res.stdout.split() else None


def start(role: str, network: str, ip: str, pbx: str, oos_check: int = 10, digest: dict | None = None) -> None:
    """(Re)create one simulator instance; waits until it is fully booted."""
    name = NAMES[role]
    conf = STATE_DIR / role
    if conf.exists():
        shutil.rmtree(conf)
    conf.mkdir(parents=True)
    for fname, text in render(pbx, oos_check, digest).items():
        (conf / fname).write_text(text)
    _docker("rm", "-f", name, check=False)
    _docker(
        "run", "-d", "--name", name, "--hostname", name, "--network", network, "--ip", ip,
        "--label", "voiceops.lab=genesys-simulator", "--volume", f"{conf}:/etc/asterisk", IMAGE,
    )  # fmt: skip
    wait_booted(role)
    # FILE() appends only to existing files.
    logs = " ".join(f"{LOG_DIR}/{f}" for f in ("sim-dialled.log", "sim-inbound.log"))
    _docker("exec", "-u", "asterisk", name, "sh", "-c", f"touch {logs}")
    set_mode(role, "echo")


def wait_booted(role: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = _docker("exec", NAMES[role], "asterisk", "-rx", "core waitfullybooted", check=False)
        if res.returncode == 0 and "fully booted" in res.stdout:
            return
        time.sleep(1)
    logs = _docker("logs", "--tail", "20", NAMES[role], check=False)
    raise SimError(f"{NAMES[role]} did not boot: {logs.stdout[-800:]}{logs.stderr[-800:]}")


def stop(role: str) -> None:
    _docker("stop", "-t", "2", NAMES[role], check=False)


def resume(role: str) -> None:
    _docker("start", NAMES[role])
    wait_booted(role)


def down() -> None:
    for name in NAMES.values():
        _docker("rm", "-f", name, check=False)
    if STATE_DIR.exists():
        shutil.rmtree(STATE_DIR)


def set_mode(role: str, mode: str) -> None:
    if mode not in MODES:
        raise SimError(f"mode must be one of {', '.join(MODES)}")
    _cli(role, f"database put sim mode {mode}")


def call(
    role: str, dnis: str, call_uuid: str | None = None, uui: str = "", ani: str = "+15550100", tone: int | None = None
) -> str:
    """Originate a customer call to the PBX's route point `dnis`; returns its CallUUID.

    The customer side echoes the PBX's audio, or sends a steady `tone` (Hz)."""
    if not re.fullmatch(r"\+?[0-9*#]+", dnis) or not re.fullmatch(r"[0-9A-Fa-f]*", uui):
        raise SimError("dnis must be digits and uui hex")
    if tone is not None and not 100 <= int(tone) <= 3400:
        raise SimError("tone must be 100-3400 Hz")
    call_uuid = call_uuid or str(uuid.uuid4()).upper()
    _cli(role, f"database put sim uuid {call_uuid}")
    _cli(role, f"database put sim uui {uui}" if uui else "database del sim uui")
    _cli(role, f"database put sim ani {ani}")
    customer = "echo"
    if tone is not None:
        _ensure_dialplan(role, "tone@customer")
        _cli(role, f"database put sim tone {int(tone)}")
        customer = "tone"
    _cli(role, f"channel originate Local/{dnis}@to-pbx/n extension {customer}@customer")
    return call_uuid


def _ensure_dialplan(role: str, exten: str) -> None:
    """A simulator started by an older checkout lacks newer extensions: rewrite its dialplan and reload."""
    if "There is no existence" not in _cli(role, f"dialplan show {exten}"):
        return
    conf = STATE_DIR / role / "extensions.conf"
    if not conf.parent.is_dir():
        raise SimError(f"{NAMES[role]} has no {exten} and no config in {conf.parent}: recreate it (simulator.py up)")
    conf.write_text(render("", 0)["extensions.conf"])  # the dialplan does not depend on the arguments
    _cli(role, "dialplan reload")


def hangup_all(role: str) -> None:
    _cli(role, "channel request hangup all")


def _read_log(role: str, fname: str) -> list[str]:
    res = _docker("exec", NAMES[role], "cat", f"{LOG_DIR}/{fname}", check=False)
    return [line for line in res.stdout.splitlines() if line.strip()] if res.returncode == 0 else []


def dialled(role: str) -> list[str]:
    """Numbers the simulator received from the PBX, oldest first."""
    return [line.split()[0] for line in _read_log(role, "sim-dialled.log")]


def inbound(role: str) -> list[dict]:
    out = []
    for line in _read_log(role, "sim-inbound.log"):
        parts = line.split()
        out.append(dict(zip(("dnis", "uuid", "dialstatus", "cause"), parts + [""] * (4 - len(parts)))))
    return out


def status(role: str) -> dict:
    """The PBX as SIP Server sees it: in service while its OPTIONS are answered."""
    text = _cli(role, "pjsip show contacts")
    states = "Avail|Unavail|NonQual|Unknown|Created|Removed"
    m = re.search(rf"Contact:\s+pbx/(\S+)\s+\S+\s+({states})\s+([0-9.]+)?", text)
    state = m.group(2) if m else "Unknown"
    return {
        "simulator": NAMES[role],
        "contact": m.group(1) if m else None,
        "state": state,
        "in_service": state == "Avail",
        "rtt_ms": float(m.group(3)) if m and m.group(3) not in (None, "nan") else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Genesys SIP Server simulator (lab only)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("up")
    p.add_argument("--network", required=True)
    p.add_argument("--pbx", required=True)
    p.add_argument("--primary", required=True)
    p.add_argument("--backup")
    p.add_argument("--oos-check", type=int, default=10)
    sub.add_parser("down")
    p = sub.add_parser("mode")
    p.add_argument("role", choices=NAMES)
    p.add_argument("mode", choices=MODES)
    p = sub.add_parser("call")
    p.add_argument("role", choices=NAMES)
    p.add_argument("dnis")
    p.add_argument("--uuid")
    p.add_argument("--uui", default="")
    p.add_argument("--ani", default="+15550100")
    p.add_argument("--tone", type=int, help="send a steady tone of this frequency (Hz) instead of echoing")
    for name in ("dialled", "inbound", "status"):
        sub.add_parser(name).add_argument("role", choices=NAMES)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "up":
            start("primary", args.network, args.primary, args.pbx, args.oos_check)
            if args.backup:
                start("backup", args.network, args.backup, args.pbx, args.oos_check)
        elif args.cmd == "down":
            down()
        elif args.cmd == "mode":
            set_mode(args.role, args.mode)
        elif args.cmd == "call":
            print(call(args.role, args.dnis, args.uuid, args.uui, args.ani, args.tone))
        elif args.cmd == "dialled":
            print("\n".join(dialled(args.role)))
        elif args.cmd == "inbound":
            print(json.dumps(inbound(args.role), indent=2))
        elif args.cmd == "status":
            print(json.dumps(status(args.role), indent=2))
    except SimError as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
