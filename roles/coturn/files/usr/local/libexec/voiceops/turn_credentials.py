#!/usr/bin/python3
"""TURN REST credential service (voiceops.webrtc_pbx coturn role).

Hands an authenticated softphone short-lived TURN credentials in the TURN REST
format that coturn's ``use-auth-secret`` accepts:

    username   = "<expiry unix time>:<extension>"
    credential = base64(HMAC-SHA1(static-auth-secret, username))

The softphone authenticates with HTTP Basic (extension and SIP password);
the configuration holds only sha256("<secret>:<password>") per extension.
The long-term secret never leaves this process. It listens on loopback and is
reached through nginx at /turn-credentials. Standard library only.
"""

import base64
import hashlib
import hmac
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def load(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def credentials(secret, user, ttl, now=None):
    expiry = int((now or time.time()) + ttl)
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def check_basic(header, secret, users):
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    expected = users.get(user)
    given = hashlib.sha256(f"{secret}:{password}".encode()).hexdigest()
    if expected and hmac.compare_digest(expected, given):
        return user
    return None


def make_handler(cfg):
    class Handler(BaseHTTPRequestHandler):
        server_version = "voiceops-turn-credentials"
        sys_version = ""

        def _send(self, code, body, extra=None):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 (http.server API)
            if self.path.split("?")[0] != "/turn-credentials":
                self._send(404, {"error": "not found"})
                return
            user = check_basic(self.headers.get("Authorization"), cfg["secret"], cfg["users"])
            if not user:
                # No WWW-Authenticate: browsers must not pop up a login dialog.
                self._send(401, {"error": "authentication required"})
                return
            username, credential = credentials(cfg["secret"], user, cfg["ttl"])
            self._send(200, {"username": username, "credential": credential, "ttl": cfg["ttl"], "uris": cfg["uris"]})

        def log_message(self, fmt, *args):  # no credentials are ever logged
            sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

    return Handler


def main():
    cfg = load(sys.argv[1] if len(sys.argv) > 1 else "/etc/voiceops/turn-credentials/config.json")
    server = ThreadingHTTPServer((cfg.get("listen", "127.0.0.1"), int(cfg.get("port", 8091))), make_handler(cfg))
    server.serve_forever()


if __name__ == "__main__":
    main()
