# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import datetime
import ipaddress
import ssl

import pytest
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils import sip
from ansible_collections.voiceops.webrtc_pbx.tests.unit.helpers.fake_udp import (
    refused_tcp_port,
    refused_udp_port,
    silent_responder,
    sip_responder,
)


def test_build_options_udp():
    data, info = sip.build_options(
        "127.0.0.1", 5060, local_host="127.0.0.1", local_port=40000, call_id="abc@127.0.0.1", branch="z9hG4bKx1"
    )
    text = data.decode()
    assert text.startswith("OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\n")
    assert "\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKx1;rport\r\n" in text
    assert "\r\nCall-ID: abc@127.0.0.1\r\n" in text
    assert "\r\nCSeq: 1 OPTIONS\r\n" in text
    assert "\r\nTo: <sip:127.0.0.1>\r\n" in text
    assert "\r\nMax-Forwards: 70\r\n" in text
    assert text.endswith("Content-Length: 0\r\n\r\n")
    assert info["request_uri"] == "sip:127.0.0.1:5060"


def test_build_options_tcp_with_user_and_ipv6():
    data, info = sip.build_options("::1", 5062, "tcp", user="1000", local_host="::1", local_port=1234)
    text = data.decode()
    assert text.startswith("OPTIONS sip:1000@[::1]:5062;transport=tcp SIP/2.0\r\n")
    assert "Via: SIP/2.0/TCP [::1]:1234;branch=z9hG4bK" in text
    assert "Contact: <sip:ansible@[::1]:1234;transport=tcp>" in text
    assert info["branch"].startswith("z9hG4bK")
    assert info["call_id"].endswith("@::1")


def test_parse_response_with_compact_and_folded_headers():
    raw = (
        b"\r\nSIP/2.0 200 OK\r\n"
        b"v: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKx1;received=127.0.0.1\r\n"
        b"i: abc@127.0.0.1\r\n"
        b"CSeq: 1 OPTIONS\r\n"
        b"Allow: OPTIONS,\r\n INVITE\r\n"
        b"Allow: BYE\r\n"
        b"Server: Asterisk PBX 22.10.1\r\n"
        b"l: 5\r\n\r\nhello, and more"
    )
    msg = sip.parse_message(raw)
    assert msg["kind"] == "response"
    assert (msg["status_code"], msg["reason"]) == (200, "OK")
    assert sip.header(msg, "Call-ID") == "abc@127.0.0.1"
    assert sip.header(msg, "i") == "abc@127.0.0.1"
    assert msg["headers"]["allow"] == ["OPTIONS, INVITE", "BYE"]
    assert msg["body"] == "hello"
    assert sip.flat_headers(msg)["Allow"] == "OPTIONS, INVITE, BYE"
    assert sip.flat_headers(msg)["Call-Id"] == "abc@127.0.0.1"
    assert sip.matches(msg, {"call_id": "abc@127.0.0.1", "cseq": 1, "branch": "z9hG4bKx1"})
    assert not sip.matches(msg, {"call_id": "abc@127.0.0.1", "cseq": 1, "branch": "z9hG4bKother"})
    assert not sip.matches(msg, {"call_id": "other", "cseq": 1, "branch": "z9hG4bKx1"})
    assert not sip.matches(msg, {"call_id": "abc@127.0.0.1", "cseq": 2, "branch": "z9hG4bKx1"})


def test_parse_request():
    data, _ = sip.build_options("127.0.0.1", 5060, user="1000")
    msg = sip.parse_message(data)
    assert msg["kind"] == "request"
    assert msg["method"] == "OPTIONS"
    assert msg["uri"] == "sip:1000@127.0.0.1:5060"


@pytest.mark.parametrize(
    "raw",
    [
        b"SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\n",  # no blank line
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"SIP/2.0 OK\r\n\r\n",
        b"SIP/2.0 200 OK\r\nno colon here\r\n\r\n",
        b"SIP/2.0 200 OK\r\n continuation first\r\n\r\n",
        b"SIP/2.0 200 OK\r\nContent-Length: x\r\n\r\n",
        b"\r\n\r\n",
    ],
)
def test_parse_malformed(raw):
    with pytest.raises(sip.SIPParseError):
        sip.parse_message(raw)


def test_options_ping_udp():
    with sip_responder() as server:
        result = sip.options_ping(server.host, server.port, timeout=2)
    assert result["status_code"] == 200
    assert result["reason"] == "OK"
    assert result["server"] == "FakeAsterisk PBX 22.10.1"
    assert result["user_agent"] is None
    assert result["transmissions"] == 1
    assert result["provisional"] == []
    assert result["rtt_ms"] >= 0
    assert result["headers"]["Allow"].startswith("OPTIONS")
    assert result["request_uri"] == f"sip:127.0.0.1:{server.port}"
    request = sip.parse_message(server.requests[0])
    assert request["method"] == "OPTIONS"
    assert sip.header(request, "user-agent") == "ansible-voiceops-sip-options-ping"


def test_options_ping_unknown_user_gets_404():
    with sip_responder(known_users={"1000"}) as server:
        assert sip.options_ping(server.host, server.port, user="1000", timeout=2)["status_code"] == 200
        result = sip.options_ping(server.host, server.port, user="9999", timeout=2)
    assert (result["status_code"], result["reason"]) == (404, "Not Found")


def test_options_ping_skips_provisional():
    with sip_responder(provisional=[100]) as server:
        result = sip.options_ping(server.host, server.port, timeout=2)
    assert result["status_code"] == 200
    assert result["provisional"] == [100]


def test_options_ping_retransmits():
    with sip_responder(drop_first=1) as server:
        result = sip.options_ping(server.host, server.port, timeout=3)
    assert result["status_code"] == 200
    assert result["transmissions"] == 2
    assert result["rtt_ms"] >= 400  # measured from the first transmission (T1 = 500 ms)


def test_options_ping_timeout():
    with silent_responder() as server, pytest.raises(sip.SIPTimeout, match="No final SIP response from 127.0.0.1"):
        sip.options_ping(server.host, server.port, timeout=0.3)


def test_options_ping_refused_udp():
    with pytest.raises(sip.SIPConnectionError, match="ICMP port unreachable"):
        sip.options_ping("127.0.0.1", refused_udp_port(), timeout=2)


def test_options_ping_tcp():
    with sip_responder(transport="tcp", status=503, reason="Service Unavailable") as server:
        result = sip.options_ping(server.host, server.port, transport="tcp", timeout=2)
    assert (result["status_code"], result["reason"]) == (503, "Service Unavailable")
    assert b";transport=tcp SIP/2.0" in server.requests[0]


def test_options_ping_tcp_refused():
    with pytest.raises(sip.SIPConnectionError, match="Cannot connect"):
        sip.options_ping("127.0.0.1", refused_tcp_port(), transport="tcp", timeout=2)


# -- TLS with a throw-away self-signed certificate ---------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    crypto = pytest.importorskip("cryptography")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


def server_context(tls_files):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)
    return context


def test_options_ping_tls_with_ca(tls_files):
    with sip_responder(transport="tls", ssl_context=server_context(tls_files)) as server:
        result = sip.options_ping(server.host, server.port, transport="tls", ca_path=tls_files[0], timeout=3)
    assert result["status_code"] == 200
    assert b";transport=tls SIP/2.0" in server.requests[0]


def test_options_ping_tls_without_validation(tls_files):
    with sip_responder(transport="tls", ssl_context=server_context(tls_files)) as server:
        result = sip.options_ping(server.host, server.port, transport="tls", validate_certs=False, timeout=3)
    assert result["status_code"] == 200


def test_options_ping_tls_untrusted(tls_files):
    responder = sip_responder(transport="tls", ssl_context=server_context(tls_files))
    with responder as server, pytest.raises(sip.SIPConnectionError, match="TLS handshake .* failed"):
        sip.options_ping(server.host, server.port, transport="tls", timeout=3)
