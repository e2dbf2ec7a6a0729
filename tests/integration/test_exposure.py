"""What another machine can reach on the lab host: only the public services.

Run from the test runner (outside the lab host container), aimed only at the
container the run created.
"""

from __future__ import annotations

import socket

import pytest


def _tcp_open(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=3):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("port", [443, 8089, 80, 3478, 5349])
def test_public_services_reachable(lab, port):
    assert _tcp_open(lab["ip"], port), f"{lab['ip']}:{port} should be reachable"


@pytest.mark.parametrize("port", [5038, 8088, 8091])
def test_ami_http_and_credential_service_not_reachable(lab, port):
    # AMI, Asterisk's HTTP/ARI server and the TURN credential service listen on loopback only.
    assert not _tcp_open(lab["ip"], port), f"{lab['ip']}:{port} must not be reachable from outside"


def test_turn_credentials_need_authentication(lab):
    import ssl
    import urllib.error
    import urllib.request

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"https://{lab['ip']}/turn-credentials", context=ctx, timeout=5)
    assert err.value.code == 401


def test_turn_credentials_in_rest_format(lab):
    import base64
    import hashlib
    import hmac
    import json
    import ssl
    import time
    import urllib.request

    from conftest import LAB

    secret = json.loads((LAB / "secrets.yml").read_text())["coturn_static_auth_secret"]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    auth = base64.b64encode(f"1000:{lab['passwords']['1000']}".encode()).decode()
    req = urllib.request.Request(f"https://{lab['ip']}/turn-credentials", headers={"Authorization": f"Basic {auth}"})
    with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
        body = json.loads(resp.read())
    expiry, _, user = body["username"].partition(":")
    assert user == "1000"
    assert 0 < int(expiry) - time.time() <= body["ttl"] + 5
    expected = base64.b64encode(hmac.new(secret.encode(), body["username"].encode(), hashlib.sha1).digest()).decode()
    assert body["credential"] == expected
    assert secret not in json.dumps(body)
    assert any(uri.startswith("turn:") for uri in body["uris"])
