#!/usr/bin/env python3
"""Benchmark: SIP registrations over WSS through nginx, held with refreshes (issue #8).

A load client without a browser: one asyncio task and one WebSocket
(subprotocol "sip", RFC 7118) per registration to wss://<lab>/ws through
nginx TLS. Each sends REGISTER, answers the 401 with an MD5 digest (qop=auth,
nc, cnonce), expects 200 OK with its contact, then holds the connection for
--hold seconds, refreshing before expiry (every --refresh s, default half the
granted expiry), answering Asterisk's qualify OPTIONS. Then every socket is
closed and resource use is followed for a while after.

Measured:
  registrations ok / failed, errors by phase (connect, register, refresh, hold)
  burst time: first connect start -> last 200 OK of the initial registrations
  CPU seconds of webrtc-asterisk and webrtc-nginx (all processes of each
    container, utime + stime) during the burst, per registration
  RSS / PSS / anonymous memory and Asterisk threads: before, after the burst,
    peak, end of hold, and --after-close seconds after every socket closed
  --cycles N repeats connect/hold/close: memory after close that keeps growing
    cycle over cycle points to a leak; growth that plateaus is allocator
    retention (freed memory glibc keeps for reuse)

Accounts:
  --lab-agents                 the lab's agents 1000-1002 (.lab/secrets.yml),
                               --contacts-per-agent contacts each (default 3,
                               Asterisk's max_contacts): small tests only
  --first N --count M          range agents N.. (asterisk_agent_ranges); password of
                               extension X = sha256("<secret>:<X>") hex, first 24
                               characters; secret from --secret-file, else
                               $VOICEOPS_BENCH_AGENT_SECRET, else
                               asterisk_agent_range_secret in .lab/secrets.yml

Send traffic only to the lab. Needs `make lab`; the range agents need the bench
profile (bench/profile.yml: range agents, nginx /ws rate limit raised: at the
role defaults of 10 r/s, burst 200, nginx answers 429 beyond ~200 connections
from one address). Prints figures, writes JSON to bench/results/, exits non-zero
if any registration or refresh failed.

  .venv/bin/python bench/registrations.py --lab-agents --hold 20 --refresh 8
  .venv/bin/python bench/registrations.py --first 20000 --count 5000 --cycles 3
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import errno
import hashlib
import math
import os
import re
import resource
import ssl
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    ASTERISK,
    NGINX,
    ROOT,
    BenchError,
    ContainerSampler,
    lab_exec,
    lab_info,
    machine,
    stats,
    write_result,
)

try:
    import websockets
    from websockets.asyncio.client import connect as ws_connect
except ImportError:  # pragma: no cover
    sys.exit("bench: needs the websockets package (.venv/bin/python, requirements.txt)")

GOAL_COUNT = 5000
GOAL_BURST_S = 30.0
FD_MARGIN = 100  # files this process needs besides its sockets
SECRET_ENV = "VOICEOPS_BENCH_AGENT_SECRET"
USER_AGENT = "voiceops-bench-registrations"
AUTH_FAILURES = ("sip_401_after_auth", "sip_403")
MiB = 1024 * 1024


def derive_password(secret: str, extension: str) -> str:
    """A range agent's SIP password (plugins/filter/agents.py renders the same)."""
    return hashlib.sha256(f"{secret}:{extension}".encode()).hexdigest()[:24]


# -- SIP ------------------------------------------------------------------------

COMPACT = {"i": "call-id", "v": "via", "f": "from", "t": "to", "m": "contact", "l": "content-length", "k": "supported"}
PARAM_RE = re.compile(r'([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
CONTACT_RE = re.compile(r"<sips?:([^@>;]+)@[^>]*>([^,]*)")


class SipMessage:
    """Just enough SIP parsing for REGISTER, its challenge and in-dialog-less requests."""

    __slots__ = ("first", "headers", "raw_headers", "body")

    def __init__(self, text: str):
        head, _, self.body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        self.first = lines[0]
        self.headers: list[tuple[str, str]] = []
        self.raw_headers: list[str] = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and self.headers:
                name, value = self.headers[-1]
                self.headers[-1] = (name, value + " " + line.strip())
                self.raw_headers[-1] += " " + line.strip()
                continue
            name, _, value = line.partition(":")
            key = name.strip().lower()
            self.headers.append((COMPACT.get(key, key), value.strip()))
            self.raw_headers.append(f"{name.strip()}: {value.strip()}")

    @property
    def is_response(self) -> bool:
        return self.first.startswith("SIP/2.0 ")

    @property
    def status(self) -> int:
        return int(self.first.split(" ", 2)[1])

    @property
    def method(self) -> str:
        return self.first.split(" ", 1)[0]

    def get(self, name: str) -> str:
        return next((v for k, v in self.headers if k == name), "")

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    def cseq(self) -> tuple[int, str]:
        num, _, method = self.get("cseq").partition(" ")
        return int(num or 0), method.strip()


def parse_challenge(value: str) -> dict:
    scheme, _, rest = value.partition(" ")
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3) for m in PARAM_RE.finditer(rest)}
    params["scheme"] = scheme.strip()
    return params


HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def pick_challenge(resp: SipMessage) -> dict | None:
    """The Digest challenge to answer: MD5 if offered, else SHA-256."""
    found = [parse_challenge(v) for v in resp.all("www-authenticate") + resp.all("proxy-authenticate")]
    found = [c for c in found if c["scheme"].lower() == "digest" and "nonce" in c]
    for algo in HASHES:
        for c in found:
            if c.get("algorithm", "MD5").upper() == algo:
                return c
    return None


def digest_authorization(ch: dict, method: str, uri: str, user: str, password: str, nc: int = 1) -> str:
    """RFC 2617/8760 digest response; qop=auth with nc and cnonce when the server offers it."""
    algo = ch.get("algorithm", "MD5").upper()
    h = HASHES[algo]

    def hx(s: str) -> str:
        return h(s.encode()).hexdigest()

    realm, nonce = ch.get("realm", ""), ch["nonce"]
    ha1 = hx(f"{user}:{realm}:{password}")
    ha2 = hx(f"{method}:{uri}")
    parts = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
    qops = [q.strip() for q in ch.get("qop", "").split(",")]
    if "auth" in qops:
        cnonce, ncs = uuid.uuid4().hex[:16], f"{nc:08x}"
        parts.append(f'response="{hx(f"{ha1}:{nonce}:{ncs}:{cnonce}:auth:{ha2}")}"')
        parts += ["qop=auth", f"nc={ncs}", f'cnonce="{cnonce}"']
    else:
        parts.append(f'response="{hx(f"{ha1}:{nonce}:{ha2}")}"')
    parts.append(f"algorithm={algo}")
    if "opaque" in ch:
        parts.append(f'opaque="{ch["opaque"]}"')
    return "Digest " + ", ".join(parts)


def response_to(req: SipMessage, code: int, reason: str) -> str:
    """A stateless response to an incoming request (OPTIONS qualify, NOTIFY, ...)."""
    lines = [f"SIP/2.0 {code} {reason}"]
    for raw, (name, value) in zip(req.raw_headers, req.headers):
        if name in ("via", "from", "call-id", "cseq"):
            lines.append(raw)
        elif name == "to":
            lines.append(f"To: {value}" + ("" if ";tag=" in value else f";tag={uuid.uuid4().hex[:10]}"))
    lines += [f"User-Agent: {USER_AGENT}", "Content-Length: 0", "", ""]
    return "\r\n".join(lines)


# -- one registration -------------------------------------------------------------


@dataclass
class Account:
    extension: str
    password: str = field(repr=False)
    contact_no: int = 0


@dataclass
class Config:
    url: str
    domain: str
    ssl: ssl.SSLContext
    expires: int
    refresh: float | None
    timeout: float
    unregister: bool


class Cycle:
    """Counters and timings of one connect/hold/close cycle."""

    def __init__(self, n: int, max_auth_failures: int):
        self.n = n
        self.errors: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.ok = 0
        self.refresh_ok = 0
        self.refresh_failed = 0
        self.retries_423 = 0
        self.stale_retries = 0
        self.requests_in: collections.Counter = collections.Counter()
        self.connect_start: list[float] = []
        self.connect_ms: list[float] = []
        self.register_ms: list[float] = []
        self.refresh_ms: list[float] = []
        self.ok_at: list[float] = []
        self.done_at: list[float] = []
        self.closed_by_server = 0
        self.max_auth_failures = max_auth_failures
        self.aborted = False

    def error(self, phase: str, kind: str) -> None:
        self.errors[phase][kind] += 1
        if kind in AUTH_FAILURES and not self.aborted:
            auth = sum(c[k] for c in self.errors.values() for k in AUTH_FAILURES)
            if auth >= self.max_auth_failures:
                # sipguard bans a source after 10 failed authentications in 120 s, on
                # every port for an hour: stop before this machine gets banned.
                self.aborted = True

    @property
    def failed(self) -> int:
        return sum(sum(c.values()) for c in self.errors.values())


def classify_connect_error(exc: BaseException) -> str:
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "tls_verify"
    if isinstance(exc, ssl.SSLError):
        return "tls"
    if isinstance(exc, websockets.exceptions.InvalidStatus):
        return f"http_{exc.response.status_code}"
    if isinstance(exc, websockets.exceptions.InvalidHandshake):
        return f"ws_handshake_{type(exc).__name__}"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, OSError):
        return f"os_{errno.errorcode.get(exc.errno, exc.errno)}" if exc.errno else f"os_{type(exc).__name__}"
    return f"other_{type(exc).__name__}"


class Registration:
    def __init__(self, acct: Account, cfg: Config, cycle: Cycle):
        self.acct = acct
        self.cfg = cfg
        self.cycle = cycle
        self.ws = None
        self.reader: asyncio.Task | None = None
        self.call_id = uuid.uuid4().hex
        self.tag = uuid.uuid4().hex[:10]
        self.cseq = 0
        self.contact_user = uuid.uuid4().hex[:12]
        self.contact = f"sip:{self.contact_user}@{uuid.uuid4().hex[:12]}.invalid;transport=ws"
        self.via_host = f"{uuid.uuid4().hex[:12]}.invalid"
        self.waiting: tuple[int, asyncio.Future] | None = None
        self.wake = asyncio.Event()  # stop asked, or the connection closed
        self.closing = False
        self.granted = cfg.expires

    async def connect(self) -> bool:
        t0 = time.monotonic()
        self.cycle.connect_start.append(t0)
        try:
            self.ws = await ws_connect(
                self.cfg.url,
                subprotocols=["sip"],
                ssl=self.cfg.ssl,
                compression=None,
                proxy=None,
                open_timeout=self.cfg.timeout,
                ping_interval=None,  # browsers (JsSIP) send no WebSocket pings either
                close_timeout=self.cfg.timeout,
                user_agent_header=USER_AGENT,
                max_queue=4,
            )
        except Exception as exc:  # noqa: BLE001 - every failure is counted by kind
            self.cycle.error("connect", classify_connect_error(exc))
            return False
        if self.ws.subprotocol != "sip":
            self.cycle.error("connect", "no_sip_subprotocol")
            await self.ws.close()
            return False
        self.cycle.connect_ms.append((time.monotonic() - t0) * 1000)
        self.reader = asyncio.create_task(self.read())
        return True

    async def read(self) -> None:
        try:
            async for data in self.ws:
                text = data if isinstance(data, str) else data.decode(errors="replace")
                if not text.strip():  # CRLF keep-alive
                    self.cycle.requests_in["keep-alive"] += 1
                    continue
                try:
                    msg = SipMessage(text)
                    num, method = msg.cseq()
                    status = msg.status if msg.is_response else 0
                except (ValueError, IndexError):
                    self.cycle.requests_in["unparsable"] += 1
                    continue
                if msg.is_response:
                    if (
                        self.waiting
                        and method == "REGISTER"
                        and num == self.waiting[0]
                        and msg.get("call-id") == self.call_id
                        and status >= 200
                        and not self.waiting[1].done()
                    ):
                        self.waiting[1].set_result(msg)
                elif msg.first.endswith(" SIP/2.0") and msg.method != "ACK":
                    self.cycle.requests_in[msg.method] += 1
                    if msg.method in ("OPTIONS", "NOTIFY"):
                        await self.ws.send(response_to(msg, 200, "OK"))
                    else:
                        await self.ws.send(response_to(msg, 405, "Method Not Allowed"))
        except websockets.exceptions.ConnectionClosed:
            pass
        finally:
            if not self.closing:
                self.cycle.closed_by_server += 1
            if self.waiting and not self.waiting[1].done():
                self.waiting[1].set_exception(ConnectionError("closed"))
            self.wake.set()

    def _register(self, expires: int, authorization: str | None) -> str:
        self.cseq += 1
        d = self.cfg.domain
        ext = self.acct.extension
        lines = [
            f"REGISTER sip:{d} SIP/2.0",
            f"Via: SIP/2.0/WSS {self.via_host};branch=z9hG4bK{uuid.uuid4().hex}",
            "Max-Forwards: 70",
            f"To: <sip:{ext}@{d}>",
            f"From: <sip:{ext}@{d}>;tag={self.tag}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} REGISTER",
            f"Contact: <{self.contact}>;expires={expires}",
            f"Expires: {expires}",
            "Allow: INVITE,ACK,CANCEL,BYE,OPTIONS,NOTIFY",
            f"User-Agent: {USER_AGENT}",
        ]
        if authorization:
            lines.append(f"Authorization: {authorization}")
        lines += ["Content-Length: 0", "", ""]
        return "\r\n".join(lines)

    async def _transaction(self, text: str) -> SipMessage:
        fut = asyncio.get_running_loop().create_future()
        self.waiting = (self.cseq, fut)
        try:
            await self.ws.send(text)
            return await asyncio.wait_for(fut, self.cfg.timeout)
        finally:
            self.waiting = None

    async def register(self, phase: str, expires: int | None = None) -> bool:
        """REGISTER -> 401 -> REGISTER with digest -> 200 OK (as JsSIP does on every refresh)."""
        expires = self.cfg.expires if expires is None else expires
        t0 = time.monotonic()
        auth = None
        authed = stale_retried = False
        try:
            for _ in range(5):
                resp = await self._transaction(self._register(expires, auth))
                code = resp.status
                stale = (
                    code in (401, 407)
                    and authed
                    and not stale_retried
                    and (str((pick_challenge(resp) or {}).get("stale", "")).lower() == "true")
                )
                if stale:
                    # The nonce expired while the request waited (RFC 7616: stale=true): answer the
                    # new challenge once, as JsSIP does. Counted: it shows the server was slow.
                    self.cycle.stale_retries += 1
                    stale_retried, authed = True, False
                if code in (401, 407) and not authed:
                    ch = pick_challenge(resp)
                    if ch is None:
                        self.cycle.error(phase, "no_digest_challenge")
                        return False
                    auth = digest_authorization(ch, "REGISTER", f"sip:{self.cfg.domain}", self.acct.extension,
                                                self.acct.password)  # fmt: skip
                    authed = True
                    continue
                if code == 423 and expires:  # Interval Too Brief: use Min-Expires, as RFC 3261 says
                    min_exp = int(resp.get("min-expires") or 0)
                    if min_exp <= expires:
                        self.cycle.error(phase, "sip_423")
                        return False
                    self.cycle.retries_423 += 1
                    expires, auth, authed = min_exp, None, False
                    continue
                if code == 200:
                    break
                self.cycle.error(phase, "sip_401_after_auth" if code in (401, 407) else f"sip_{code}")
                return False
            else:
                self.cycle.error(phase, "too_many_round_trips")
                return False
        except (asyncio.TimeoutError, TimeoutError):
            self.cycle.error(phase, "timeout")
            return False
        except (ConnectionError, websockets.exceptions.ConnectionClosed):
            self.cycle.error(phase, "closed")
            return False
        if expires == 0:
            return True
        granted = None
        for value in resp.all("contact"):
            for m in CONTACT_RE.finditer(value):
                if m.group(1) == self.contact_user:
                    e = re.search(r"expires=(\d+)", m.group(2))
                    granted = int(e.group(1)) if e else int(resp.get("expires") or expires)
        if granted is None:
            self.cycle.error(phase, "contact_missing_in_200")
            return False
        self.granted = granted
        (self.cycle.register_ms if phase == "register" else self.cycle.refresh_ms).append(
            (time.monotonic() - t0) * 1000
        )
        return True

    async def hold(self) -> None:
        """Refresh before expiry until asked to stop (or the server closes the connection)."""
        while not self.wake.is_set():
            every = self.cfg.refresh or max(1.0, self.granted / 2)
            try:
                await asyncio.wait_for(self.wake.wait(), every)
                break
            except (asyncio.TimeoutError, TimeoutError):
                pass
            if await self.register("refresh"):
                self.cycle.refresh_ok += 1
            else:
                self.cycle.refresh_failed += 1
                if self.ws.state.name != "OPEN":
                    break

    async def close(self) -> None:
        self.closing = True
        if self.ws is None:
            return
        if self.cfg.unregister and self.ws.state.name == "OPEN":
            await self.register("unregister", expires=0)
        try:
            await self.ws.close()
        except Exception as exc:  # noqa: BLE001 - counted
            self.cycle.error("close", type(exc).__name__)
        if self.reader:
            await asyncio.gather(self.reader, return_exceptions=True)


# -- accounts ----------------------------------------------------------------------


def build_accounts(args, lab: dict) -> tuple[list[Account], str]:
    if args.lab_agents:
        exts = sorted(lab["passwords"])
        cpa = args.contacts_per_agent or 3
        total = args.count or len(exts) * cpa
        if total > len(exts) * cpa:
            raise BenchError(f"--count {total}: the {len(exts)} lab agents hold at most {len(exts) * cpa} "
                             f"contacts with --contacts-per-agent {cpa}")  # fmt: skip
        pw = lab["passwords"]
        accts = [Account(exts[i % len(exts)], pw[exts[i % len(exts)]], i // len(exts)) for i in range(total)]
        return accts, f"lab agents {exts[0]}-{exts[-1]}, up to {cpa} contacts each"
    if args.first is None or not args.count:
        raise BenchError("give --lab-agents, or --first N --count M for range agents")
    secret, source = None, None
    if args.secret_file:
        secret, source = Path(args.secret_file).read_text().strip(), args.secret_file
    elif os.environ.get(SECRET_ENV):
        secret, source = os.environ[SECRET_ENV].strip(), f"${SECRET_ENV}"
    elif lab["secrets"].get("asterisk_agent_range_secret"):
        secret, source = lab["secrets"]["asterisk_agent_range_secret"], ".lab/secrets.yml asterisk_agent_range_secret"
    if not secret:
        raise BenchError(f"range agents need their secret: --secret-file PATH or ${SECRET_ENV}")
    cpa = args.contacts_per_agent or 1
    n_agents = math.ceil(args.count / cpa)
    exts = [str(args.first + i) for i in range(n_agents)]
    pws = {e: derive_password(secret, e) for e in exts}
    accts = [Account(exts[i % n_agents], pws[exts[i % n_agents]], i // n_agents) for i in range(args.count)]
    return accts, f"range agents {exts[0]}-{exts[-1]} ({cpa} contact(s) each), secret from {source}"


# -- limits and lab checks ------------------------------------------------------------


def raise_nofile(needed: int) -> dict:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and needed > hard:
        raise BenchError(
            f"{needed} open files needed (one socket per registration + {FD_MARGIN}); the hard limit "
            f"RLIMIT_NOFILE is {hard} (Docker's default ulimit here): lower --count or raise the hard limit"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return {"soft_before": soft, "hard": hard, "needed": needed}


def _int(pattern: str, text: str) -> int | None:
    m = re.search(pattern, text, re.M)
    return int(m.group(1)) if m else None


def preflight(sampler: ContainerSampler, accts: list[Account], args) -> dict:
    """What the lab allows: nginx limits, Asterisk's file limit and HTTP sessions, the agents."""
    pf: dict = {"warnings": []}
    warn = pf["warnings"].append
    n = len(accts)
    conf = lab_exec("docker", "exec", NGINX, "nginx", "-T", "-c", "/etc/nginx/voiceops/nginx.conf", check=False)
    if "worker_connections" not in conf:  # an older deployment: nginx.conf mounted as a file
        conf = lab_exec("docker", "exec", NGINX, "nginx", "-T", check=False)
    ws_loc = re.search(r"location\s+/ws\s*\{(.*?)\}", conf, re.S)
    zone = (
        re.search(r"limit_req\s+zone=(\S+?)(?:\s+burst=(\d+))?(\s+nodelay)?\s*;", ws_loc.group(1)) if ws_loc else None
    )
    rate = None
    if zone:
        zr = re.search(rf"limit_req_zone\s+\S+\s+zone={re.escape(zone.group(1))}:\S+\s+rate=(\d+)r/(s|m)", conf)
        if zr:
            rate = int(zr.group(1)) / (60 if zr.group(2) == "m" else 1)
    burst = int(zone.group(2) or 0) if zone else None
    nginx_procs = sampler.sample(pss=False)["containers"][NGINX]["processes"]
    pf["nginx"] = {
        "ws_rate_per_s": rate,
        "ws_burst": burst,
        "ws_nodelay": bool(zone and zone.group(3)),
        "worker_processes": max(1, nginx_procs - 1),
        "worker_connections": _int(r"^\s*worker_connections\s+(\d+)", conf),
        "worker_rlimit_nofile": _int(r"^\s*worker_rlimit_nofile\s+(\d+)", conf),
    }
    ng = pf["nginx"]
    if rate:
        immediate = (burst or 0) + 1
        pf["nginx"]["seconds_for_count_from_one_address"] = max(0.0, (n - immediate) / rate)
        if n > immediate and not args.rate:
            warn(f"nginx /ws allows {rate:g} new connections/s after a burst of {burst} per client address: "
                 f"expect 429 for ~{n - immediate} of {n} connections (use --rate auto to pace, or the bench "
                 f"profile's raised nginx_tls_ws_rate/_burst)")  # fmt: skip
    if ng["worker_connections"] and 2 * n + 50 > ng["worker_connections"]:
        warn(f"each proxied WebSocket takes 2 of nginx's worker_connections ({ng['worker_connections']} per "
             f"worker, {ng['worker_processes']} workers): {n} connections fit only if spread evenly")  # fmt: skip
    if ng["worker_rlimit_nofile"] and 2 * n + 50 > ng["worker_rlimit_nofile"]:
        warn(f"nginx worker_rlimit_nofile {ng['worker_rlimit_nofile']} per worker < 2 x {n} sockets")
    http = lab_exec("docker", "exec", ASTERISK, "cat", "/etc/asterisk/http.conf", check=False)
    ast_pid = sampler.ready[ASTERISK]["pid"]
    limits = lab_exec("cat", f"/proc/{ast_pid}/limits", check=False)
    pf["asterisk"] = {
        "http_sessionlimit": _int(r"^\s*sessionlimit\s*=\s*(\d+)", http),
        "nofile": _int(r"^Max open files\s+(\d+)", limits),
    }
    if pf["asterisk"]["http_sessionlimit"] and n > pf["asterisk"]["http_sessionlimit"]:
        warn(f"Asterisk http.conf sessionlimit {pf['asterisk']['http_sessionlimit']} < {n} WebSockets")
    if pf["asterisk"]["nofile"] and n + 200 > pf["asterisk"]["nofile"]:
        warn(f"Asterisk's open-file limit {pf['asterisk']['nofile']} is close to {n} sockets")
    # The agents must exist: REGISTERs for unknown endpoints are failed authentications,
    # and sipguard bans this machine's address after 10 of them.
    exts = sorted({a.extension for a in accts}, key=lambda e: (len(e), e))
    cpa = max(a.contact_no for a in accts) + 1
    for ext in {exts[0], exts[-1]}:
        out = lab_exec("docker", "exec", ASTERISK, "asterisk", "-rx", f"pjsip show aor {ext}", check=False)
        max_contacts = _int(r"^\s*max_contacts\s*:\s*(\d+)", out)
        if max_contacts is None:
            raise BenchError(f"agent {ext} is not configured in the lab's Asterisk (pjsip show aor {ext}): "
                             "converge the lab with the range agents first")  # fmt: skip
        if cpa > max_contacts:
            raise BenchError(f"{cpa} contacts per agent > max_contacts {max_contacts} of aor {ext}: "
                             "Asterisk would replace contacts (remove_existing)")  # fmt: skip
        pf["asterisk"]["max_contacts"] = max_contacts
    return pf


def contact_counts(text: str | None, exts: set[str]) -> dict:
    """Contacts Asterisk lists: all, ours, and ours by qualify status (Avail once an OPTIONS was answered)."""
    if text is None:
        return {"total": None, "ours": None, "ours_status": {}}
    status: collections.Counter = collections.Counter()
    for m in re.finditer(r"^\s*Contact:\s+([^/\s]+)/\S+\s+\S+\s+(\S+)", text, re.M):
        if m.group(1) in exts:
            status[m.group(2)] += 1
    return {
        "total": _int(r"Objects found:\s*(\d+)", text) or 0,
        "ours": sum(status.values()),
        "ours_status": dict(status),
    }


# -- one cycle ---------------------------------------------------------------------------


KEPT = ("cpu_s", "cgroup_cpu_s", "rss_kib", "pss_kib", "anon_kib", "threads", "processes", "fds", "cgroup_anon_bytes",
        "cgroup_kernel_bytes")  # fmt: skip


class Monitor:
    """Resource samples: labelled milestones plus a periodic series (for the peak)."""

    def __init__(self, sampler: ContainerSampler, exts: set[str], ports: list[int], mem_summary: bool):
        self.sampler = sampler
        self.exts = exts
        self.ports = ports
        self.mem_summary = mem_summary
        self.series: list[dict] = []
        self.t0 = time.time()

    @staticmethod
    def brief(s: dict) -> dict:
        out = {}
        for name, c in s["containers"].items():
            out[name] = {k: c.get(k) for k in KEPT}
        if "tcp" in s:
            out["tcp"] = s["tcp"]
        return out

    async def quick(self, label: str) -> dict:
        s = await asyncio.to_thread(self.sampler.sample, True, self.ports)
        rec = {"label": label, "t": round(s["t"] - self.t0, 3), **self.brief(s)}
        self.series.append(rec)
        return rec

    async def full(self, label: str) -> dict:
        rec = await self.quick(label)
        cli = {"contacts": (ASTERISK, "pjsip show contacts")}
        if self.mem_summary:
            cli["memory"] = (ASTERISK, "memory show summary")
        s = await asyncio.to_thread(self.sampler.sample, False, None, cli)
        rec["contacts"] = contact_counts(s["cli"]["contacts"], self.exts)
        if self.mem_summary and s["cli"].get("memory"):
            rec["memory_show_summary"] = s["cli"]["memory"].strip().splitlines()[-3:]
        return rec

    async def periodic(self, every: float, label: str) -> None:
        while True:
            await asyncio.sleep(every)
            await self.quick(label)


def rusage_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def self_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def run_cycle(
    n: int, accts: list[Account], cfg: Config, args, mon: Monitor, pace: tuple | None, idle: dict | None
) -> dict:
    cyc = Cycle(n, args.max_auth_failures)
    out: dict = {"cycle": n, "samples": {}}
    out["samples"]["before"] = await mon.full("before")
    base = await mon.quick("burst start")
    client_cpu0 = rusage_s()
    regs = [Registration(a, cfg, cyc) for a in accts]
    sem = asyncio.Semaphore(args.concurrency)
    remaining = len(regs)
    initial_done = asyncio.Event()
    t_start = time.monotonic()

    def finished() -> None:
        nonlocal remaining
        cyc.done_at.append(time.monotonic())
        remaining -= 1
        if remaining == 0:
            initial_done.set()

    async def life(i: int, reg: Registration) -> None:
        if pace:
            rate, burst = pace
            delay = t_start + max(0, i - burst) / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        try:
            if cyc.aborted:
                cyc.error("connect", "skipped_after_auth_failures")
                return
            async with sem:
                ok = await reg.connect() and await reg.register("register")
            if not ok:
                return
            cyc.ok += 1
            cyc.ok_at.append(time.monotonic())
        finally:
            finished()
        await reg.hold()

    tasks = [asyncio.create_task(life(i, r)) for i, r in enumerate(regs)]
    peak_task = asyncio.create_task(mon.periodic(args.sample_interval, "burst"))
    try:
        await initial_done.wait()
        client_cpu_burst = rusage_s() - client_cpu0
        after = await mon.quick("after burst")
        peak_task.cancel()
        out["samples"]["after_burst"] = await mon.full("after burst (cli)")
        out["samples"]["after_burst"].update({k: v for k, v in after.items() if k != "label"})
        bt = burst_time(cyc)
        print(f"  cycle {n}: {cyc.ok}/{len(regs)} registered, burst {'-' if bt is None else f'{bt:.2f}'} s; "
              f"holding {args.hold:g} s", flush=True)  # fmt: skip
        peak_task = asyncio.create_task(mon.periodic(args.sample_interval, "hold"))
        await asyncio.sleep(args.hold)
        peak_task.cancel()
        out["samples"]["end_of_hold"] = await mon.full("end of hold")
        client_rss = self_rss_kib()
    finally:
        peak_task.cancel()
        t_close = time.monotonic()
        for r in regs:
            r.wake.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(r.close() for r in regs), return_exceptions=True)
        close_s = time.monotonic() - t_close
    t_closed = time.monotonic()
    for delay in args.after_close:
        wait = t_closed + delay - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        out["samples"][f"after_close_{delay:g}s"] = await mon.full(f"{delay:g} s after close")

    ok_times = cyc.ok_at
    out.update(
        {
            "registrations": len(regs),
            "ok": cyc.ok,
            "failed": len(regs) - cyc.ok,
            "aborted_after_auth_failures": cyc.aborted,
            "hold_s": args.hold,
            "burst_s": burst_time(cyc),
            "initial_phase_s": (max(cyc.done_at) - min(cyc.connect_start)) if cyc.connect_start else None,
            "ok_per_s": (cyc.ok / burst_time(cyc)) if ok_times and burst_time(cyc) else None,
            "connect_ms": stats(cyc.connect_ms),
            "register_ms": stats(cyc.register_ms),
            "refresh_ms": stats(cyc.refresh_ms),
            "refresh_ok": cyc.refresh_ok,
            "refresh_failed": cyc.refresh_failed,
            "retries_after_423": cyc.retries_423,
            "stale_nonce_retries": cyc.stale_retries,
            "requests_answered": dict(cyc.requests_in),
            "closed_by_server": cyc.closed_by_server,
            "close_all_s": close_s,
            "errors": {phase: dict(c) for phase, c in cyc.errors.items()},
            "errors_total": cyc.failed,
            "client": {"cpu_s_burst": client_cpu_burst, "rss_kib_holding": client_rss},
            "cpu_burst": cpu_delta(base, after, cyc.ok, idle),
            "cpu_hold": cpu_delta(after, out["samples"]["end_of_hold"], cyc.refresh_ok, idle),
        }
    )
    return out


def burst_time(cyc: Cycle) -> float | None:
    if not cyc.ok_at or not cyc.connect_start:
        return None
    return max(cyc.ok_at) - min(cyc.connect_start)


def cpu_delta(a: dict, b: dict, per: int, idle: dict | None = None) -> dict:
    """CPU seconds each container used between two samples (live processes; cgroup as a cross-check).

    With idle (cpu_delta of a quiet window), net_cpu_s takes off what the container
    burns anyway in that much time (timers, other lab traffic)."""
    out = {}
    dt = b["t"] - a["t"]
    for name in (ASTERISK, NGINX):
        d = b[name]["cpu_s"] - a[name]["cpu_s"]
        cg = None
        if a[name].get("cgroup_cpu_s") is not None and b[name].get("cgroup_cpu_s") is not None:
            cg = b[name]["cgroup_cpu_s"] - a[name]["cgroup_cpu_s"]
        if d < 0 and cg is not None:  # a process went away (nginx reload): the cgroup still counts it
            d = cg
        net = max(0.0, d - idle[name]["cpu_pct"] / 100 * dt) if idle and idle[name]["cpu_pct"] is not None else d
        out[name] = {
            "cpu_s": round(d, 3),
            "net_cpu_s": round(net, 3),
            "cgroup_cpu_s": round(cg, 3) if cg is not None else None,
            "ms_per_item": round(d * 1000 / per, 3) if per else None,
            "net_ms_per_item": round(net * 1000 / per, 3) if per else None,
            "cpu_pct": round(100 * d / dt, 2) if dt > 0 else None,
        }
    return out


async def measure_idle(mon: Monitor, seconds: float) -> dict | None:
    """CPU the containers use with none of our connections open (subtracted from the burst)."""
    if seconds <= 0:
        return None
    a = await mon.quick("idle start")
    await asyncio.sleep(seconds)
    b = await mon.quick("idle end")
    return cpu_delta(a, b, 0)


async def probe(acct: Account, cfg: Config) -> None:
    """One registration before the burst: a wrong secret or a missing agent fails here once,
    not thousands of times (sipguard bans this address after 10 failed authentications)."""
    cyc = Cycle(0, 1)
    reg = Registration(acct, cfg, cyc)
    try:
        ok = await reg.connect() and await reg.register("probe")
    finally:
        reg.closing = True
        await reg.close()
    if not ok:
        raise BenchError(
            f"probe registration of {acct.extension} failed ({', '.join(k for c in cyc.errors.values() for k in c)}): "
            "nothing else was sent; "
            "check the agents, their secret and the URL"
        )


# -- leak verdict ----------------------------------------------------------------------------


def leak_verdict(baseline: float, after_close: list[float], per_cycle: int, tol: float) -> dict:
    """Memory after close, cycle over cycle: plateau (retention) or steady growth (leak)."""
    growth = [after_close[0] - baseline] + [after_close[i] - after_close[i - 1] for i in range(1, len(after_close))]
    res = {
        "baseline": baseline,
        "after_close": after_close,
        "growth_per_cycle": growth,
        # after cycle k: memory kept over the baseline / all registrations made so far
        "retained_bytes_per_registration": (
            [(a - baseline) / (per_cycle * (k + 1)) for k, a in enumerate(after_close)] if per_cycle else None
        ),
    }
    if len(after_close) < 2:
        res["verdict"] = "inconclusive (one cycle): run --cycles 3 to tell retention from a leak"
        if growth[0] <= tol:
            res["verdict"] = "back to baseline (within tolerance) after one cycle"
        return res
    later = growth[1:]
    first = max(growth[0], tol)
    if all(g <= tol for g in growth):
        res["verdict"] = "no growth after close beyond the tolerance in any cycle: no leak seen at this scale"
    elif all(g <= max(tol, 0.1 * first) for g in later):
        res["verdict"] = ("plateau: memory after close stops growing after the first cycle -> allocator/cache "
                          "retention, not a leak")  # fmt: skip
    elif len(later) >= 2 and all(g > tol and g >= 0.5 * first for g in later):
        res["verdict"] = (f"steady growth: +{later[-1] / MiB:.1f} MiB per cycle of {per_cycle} registrations "
                          f"(~{later[-1] / max(per_cycle, 1):.0f} B each) -> likely leak")  # fmt: skip
    elif len(later) == 1:
        res["verdict"] = "grew again in cycle 2: run 3 or more cycles to tell retention from a leak"
    elif later[-1] < later[0]:
        res["verdict"] = "shrinking growth: probably retention; run more cycles to be sure"
    else:
        res["verdict"] = "irregular growth: run more cycles, with nothing else using the lab"
    return res


# -- report ----------------------------------------------------------------------------------


def mib(kib: float | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f}"


def print_cycle(c: dict) -> None:
    print(f"cycle {c['cycle']}: {c['ok']}/{c['registrations']} registered, {c['failed']} failed"
          + (" (ABORTED after failed authentications)" if c["aborted_after_auth_failures"] else ""))  # fmt: skip
    bt = c["burst_s"]
    print(
        f"  burst (first connect start -> last 200 OK): {bt:.2f} s" if bt is not None else "  burst: no 200 OK",
        f"({c['ok_per_s']:.0f} registrations/s)" if c["ok_per_s"] else "",
    )
    for key, label in (("connect_ms", "TCP+TLS+WS connect"), ("register_ms", "REGISTER -> 200 OK"),
                       ("refresh_ms", "refresh -> 200 OK")):  # fmt: skip
        s = c[key]
        if s:
            print(f"  {label:<20} p50 {s['p50']:.1f} ms  p95 {s['p95']:.1f} ms  max {s['max']:.1f} ms  (n={s['n']})")
    print(f"  refreshes ok {c['refresh_ok']}, failed {c['refresh_failed']}; requests answered "
          f"{c['requests_answered'] or 'none'}; closed by server {c['closed_by_server']}; "
          f"closing all took {c['close_all_s']:.2f} s")  # fmt: skip
    print(f"  errors: {c['errors'] or 'none'}")
    cb = c["cpu_burst"]
    print("  CPU during burst: " + ", ".join(
        f"{n.removeprefix('webrtc-')} {v['cpu_s']:.2f} s ({v['net_ms_per_item']} ms/registration net of idle)"
        for n, v in cb.items()) + f", this client {c['client']['cpu_s_burst']:.2f} s")  # fmt: skip
    ch = c["cpu_hold"]
    held = [f"{n.removeprefix('webrtc-')} {v['cpu_s']:.2f} s ({v['cpu_pct']} % of one core)" for n, v in ch.items()]
    print("  CPU during hold:  " + ", ".join(held))
    s = c["samples"]
    cols = list(s)
    print(f"  {'':<26}" + "".join(f"{k.replace('after_close_', '+'):>14}" for k in cols))
    rows = [
        ("asterisk RSS MiB", lambda r: mib(r[ASTERISK]["rss_kib"])),
        ("asterisk anon MiB", lambda r: mib(r[ASTERISK]["anon_kib"])),
        ("asterisk threads", lambda r: r[ASTERISK]["threads"]),
        ("asterisk cgroup kernel MiB", lambda r: mib((r[ASTERISK]["cgroup_kernel_bytes"] or 0) / 1024)),
        ("nginx RSS MiB (sum)", lambda r: mib(r[NGINX]["rss_kib"])),
        ("nginx PSS MiB", lambda r: mib(r[NGINX]["pss_kib"])),
        ("open files asterisk", lambda r: sum(r[ASTERISK]["fds"])),
        ("open files nginx/process", lambda r: "/".join(str(f) for f in r[NGINX]["fds"])),
        ("contacts (ours/all)", lambda r: f"{r['contacts']['ours']}/{r['contacts']['total']}"),
        ("our contacts Avail", lambda r: r["contacts"]["ours_status"].get("Avail", 0)),
        ("TCP est. 443+8089/8088", lambda r: "{}/{}".format(
            r["tcp"]["established"]["443"] + r["tcp"]["established"]["8089"], r["tcp"]["established"]["8088"])),
    ]  # fmt: skip
    for label, fn in rows:
        print(f"  {label:<26}" + "".join(f"{fn(s[k])!s:>14}" for k in cols))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    src = ap.add_argument_group("accounts")
    src.add_argument("--lab-agents", action="store_true", help="the lab's agents 1000-1002 (small tests)")
    src.add_argument("--contacts-per-agent", type=int, help="default 3 with --lab-agents, else 1")
    src.add_argument("--first", type=int, help="first range agent extension (e.g. 20000)")
    src.add_argument("--count", type=int, help="registrations (connections); --lab-agents: default all")
    src.add_argument("--secret-file", help=f"range agents' secret (else ${SECRET_ENV})")
    ap.add_argument("--url", help="default: wss://<lab web_url host>/ws")
    ap.add_argument("--insecure", action="store_true", help="skip certificate verification (no lab CA file)")
    ap.add_argument("--concurrency", type=int, default=200, help="connections being set up at once (200)")
    ap.add_argument("--rate", help="new connections per second, or 'auto' (nginx's /ws limit); default unpaced")
    ap.add_argument(
        "--expires", type=int, default=60, help="Expires asked for (60; Asterisk raises less to minimum_expiration, 60)"
    )
    ap.add_argument("--refresh", type=float, help="refresh every S seconds (default: half the granted expiry)")
    ap.add_argument("--hold", type=float, default=120, help="seconds to hold after the burst (120)")
    ap.add_argument("--timeout", type=float, default=15, help="connect and per-transaction timeout (15 s)")
    ap.add_argument("--unregister", action="store_true", help="REGISTER Expires: 0 before closing")
    ap.add_argument("--cycles", type=int, default=1, help="connect/hold/close cycles (leak check: 3)")
    ap.add_argument("--after-close", default="15,60", help="sample memory S seconds after all closed (15,60)")
    ap.add_argument("--idle", type=float, default=5, help="seconds of idle CPU measured first, subtracted (5)")
    ap.add_argument("--sample-interval", type=float, default=5, help="seconds between peak samples (5)")
    ap.add_argument("--leak-tolerance-mib", type=float, default=2.0, help="growth below this is noise (2 MiB)")
    ap.add_argument("--max-auth-failures", type=int, default=5,
                    help="stop after this many failed authentications (sipguard bans at 10): 5")  # fmt: skip
    args = ap.parse_args(argv)
    args.after_close = sorted(float(x) for x in args.after_close.split(",") if x.strip())

    try:
        return asyncio.run(bench(args))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2


async def bench(args) -> int:
    lab = lab_info()
    accts, source = build_accounts(args, lab)
    limits = raise_nofile(len(accts) + FD_MARGIN)
    host = urlsplit(lab["web_url"]).hostname
    url = args.url or f"wss://{host}/ws"
    ctx = ssl.create_default_context()
    if args.insecure or not lab["ca"]:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        tls = "not verified" + ("" if args.insecure else " (no lab CA file)")
    else:
        ctx.load_verify_locations(lab["ca"])
        tls = f"verified against {Path(lab['ca']).name}"
    cfg = Config(url, lab["sip_domain"], ctx, args.expires, args.refresh, args.timeout, args.unregister)
    exts = {a.extension for a in accts}
    with ContainerSampler([ASTERISK, NGINX], lab["container"]) as sampler:
        pf = preflight(sampler, accts, args)
        pace = None
        if args.rate == "auto":
            r, b = pf["nginx"]["ws_rate_per_s"], pf["nginx"]["ws_burst"]
            pace = (r * 0.9, b) if r else None
        elif args.rate:
            pace = (float(args.rate), 0)
        mem = lab_exec("docker", "exec", ASTERISK, "asterisk", "-rx", "memory show summary", check=False)
        mem_summary = bool(mem.strip()) and "No such command" not in mem
        mon = Monitor(sampler, exts, [443, 8089, 8088], mem_summary)
        print(f"registrations over WSS: {url} (TLS {tls})\n  machine: {machine()}")
        print(f"  {len(accts)} registrations: {source}; concurrency {args.concurrency}, "
              f"pace {f'{pace[0]:g}/s after {pace[1]}' if pace else 'none'}; expires {args.expires}, refresh "
              f"{f'every {args.refresh:g} s' if args.refresh else 'at half the granted expiry'}; hold {args.hold:g} s; "
              f"cycles {args.cycles}")  # fmt: skip
        print(f"  open files: this process {limits['hard']} (needs {limits['needed']}); nginx {pf['nginx']}; "
              f"asterisk {pf['asterisk']}")  # fmt: skip
        if not mem_summary:
            print("  Asterisk 'memory show summary' unavailable (no MALLOC_DEBUG): process figures only")
        for w in pf["warnings"]:
            print(f"  WARNING: {w}")
        idle = await measure_idle(mon, args.idle)
        await probe(accts[0], cfg)
        if idle:
            print("  idle CPU: " + ", ".join(f"{k.removeprefix('webrtc-')} {v['cpu_pct']} %" for k, v in idle.items()))
        cycles = []
        for n in range(1, args.cycles + 1):
            c = await run_cycle(n, accts, cfg, args, mon, pace, idle)
            cycles.append(c)
            print_cycle(c)
            if c["aborted_after_auth_failures"]:
                break

    last = f"after_close_{args.after_close[-1]:g}s" if args.after_close else "end_of_hold"
    tol = args.leak_tolerance_mib * MiB
    base = cycles[0]["samples"]["before"]
    leak = {}
    for key, name, metric in (("asterisk_rss", ASTERISK, "rss_kib"), ("asterisk_anon", ASTERISK, "anon_kib"),
                              ("nginx_rss", NGINX, "rss_kib"), ("nginx_pss", NGINX, "pss_kib")):  # fmt: skip
        after = [c["samples"][last][name][metric] * 1024 for c in cycles]
        leak[key] = leak_verdict(base[name][metric] * 1024, after, len(accts), tol)
    series = mon.series
    peak = {
        name: {m: max((s[name][m] or 0) for s in series) for m in ("rss_kib", "anon_kib", "pss_kib", "threads")}
        for name in (ASTERISK, NGINX)
    }
    # Someone else's contacts or connections coming and going make the memory figures unreliable.
    others = {
        (s["contacts"]["total"] or 0) - (s["contacts"]["ours"] or 0) for c in cycles for s in c["samples"].values()
    }
    foreign_tcp = max(
        c["samples"][k]["tcp"]["established"]["443"] + c["samples"][k]["tcp"]["established"]["8089"]
        for c in cycles
        for k in c["samples"]
        if k == "before" or k.startswith("after_close")
    )
    outside = len(others) > 1 or foreign_tcp > 0
    failed = sum(c["failed"] + c["refresh_failed"] + c["closed_by_server"] for c in cycles)
    goal = {
        "count": len(accts) >= GOAL_COUNT,
        "zero_failures": failed == 0,
        "burst_le_30s": all(c["burst_s"] is not None and c["burst_s"] <= GOAL_BURST_S for c in cycles),
    }
    result = {
        "benchmark": "registrations",
        "machine": machine(),
        "url": url,
        "tls": tls,
        "accounts": source,
        "config": {k: v for k, v in vars(args).items() if k != "secret_file"},
        "open_files": limits,
        "preflight": pf,
        "asterisk_memory_show_summary": mem_summary,
        "idle_cpu": idle,
        "cycles": cycles,
        "peak": peak,
        "leak": leak,
        "outside_activity": {
            "seen": outside,
            "other_contacts_seen": sorted(others),
            "other_tls_sockets_max": foreign_tcp,
        },
        "failures_total": failed,
        "goal": goal,
        "series": series,
    }
    out = write_result("registrations", result)
    print(f"peak: asterisk RSS {mib(peak[ASTERISK]['rss_kib'])} MiB, {peak[ASTERISK]['threads']} threads; "
          f"nginx RSS {mib(peak[NGINX]['rss_kib'])} MiB (PSS {mib(peak[NGINX]['pss_kib'])})")  # fmt: skip
    for key, v in leak.items():
        grow = ", ".join(f"{g / MiB:+.1f}" for g in v["growth_per_cycle"])
        print(f"memory after close, {key}: growth per cycle [{grow}] MiB -> {v['verdict']}")
    if outside:
        print(f"  NOTE: other clients used the lab during the run (other contacts {sorted(others)}, up to "
              f"{foreign_tcp} other TLS sockets): CPU and memory figures include them")  # fmt: skip
    print(f"goal (5000 held, 0 failures, burst <= 30 s): {goal}")
    print(f"JSON: {out.relative_to(ROOT)}")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
