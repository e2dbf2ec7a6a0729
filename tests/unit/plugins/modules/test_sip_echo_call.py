# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import hashlib

import pytest
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils import sip
from ansible_collections.voiceops.webrtc_pbx.plugins.modules import sip_echo_call
from ansible_collections.voiceops.webrtc_pbx.tests.unit.helpers.fake_sip_uas import FakeSIPUAS
from ansible_collections.voiceops.webrtc_pbx.tests.unit.helpers.fake_udp import silent_responder
from ansible_collections.voiceops.webrtc_pbx.tests.unit.helpers.module_runner import run_module

PASSWORD = "Health-Secret-4711"


def run(server=None, check_mode=False, **args):
    base = {"target": "600", "username": "health", "password": PASSWORD, "duration": 0.6, "timeout": 3}
    if server is not None:
        base.update(host=server.host, port=server.port, transport=server.transport)
    base.update(args)
    return run_module(sip_echo_call.main, base, check_mode=check_mode)


def assert_no_password(result):
    assert PASSWORD not in repr(result)


# -- calls against the fake UAS ------------------------------------------------------------


@pytest.mark.parametrize("qop", [True, False], ids=["qop-auth", "no-qop"])
def test_echo_call_succeeds(qop):
    with FakeSIPUAS(qop=qop) as uas:
        failed, result = run(uas)
    assert not failed, result
    assert_no_password(result)
    assert result["changed"] is False
    assert result["status_code"] == 200 and result["reason"] == "OK"
    assert result["request_uri"] == f"sip:600@127.0.0.1:{uas.port}"
    assert 100 in result["provisional"] and 180 in result["provisional"]
    assert result["tone_detected"] is True
    assert result["tone_snr_db"] > 30
    assert -8 < result["audio_level_dbfs"] < -4  # amplitude 0.5
    assert result["packets_sent"] == 30
    assert result["packets_received"] == 30
    assert result["loss_pct"] == 0
    assert 0 <= result["jitter_ms"] < 10
    assert 0 < result["setup_ms"] < 1000
    assert 0 <= result["first_audio_ms"] < 200
    assert result["remote_rtp"] == {"address": "127.0.0.1", "port": uas.rtp_port}
    assert result["bye_status_code"] == 200
    assert result["remote_hangup"] is False
    # Authentication: challenged INVITE, then one with a valid digest; ACK; BYE through the route set.
    assert uas.methods() == ["INVITE", "ACK", "INVITE", "ACK", "BYE"]  # the 401 is ACKed too
    assert uas.auth_checks == [("INVITE", True)]
    assert uas.acks == 1
    assert sip.header(uas.bye_from_client, "route") == f"<sip:127.0.0.1:{uas.port};lr>"
    assert uas.bye_from_client["uri"] == f"sip:600@127.0.0.1:{uas.port}"
    assert not uas.errors
    # The SDP offer.
    (audio,) = uas.offer["media"]
    assert audio["formats"] == ["0", "101"]
    assert audio["rtpmap"] == {"0": "PCMU/8000", "101": "telephone-event/8000"}
    assert audio["ptime"] == 20 and audio["direction"] == "sendrecv"
    assert audio["connection"] == "127.0.0.1" and audio["port"] == result["local_rtp"]["port"]
    # The RTP we sent: PCMU, marker on the first packet only, consecutive seq, +160 timestamps, one SSRC.
    packets = uas.rtp_in
    assert [p["marker"] for p in packets] == [True] + [False] * 29
    assert {p["pt"] for p in packets} == {0} and {p["version"] for p in packets} == {2}
    assert len({p["ssrc"] for p in packets}) == 1
    assert all((b["seq"] - a["seq"]) & 0xFFFF == 1 for a, b in zip(packets, packets[1:]))
    assert all((b["ts"] - a["ts"]) & 0xFFFFFFFF == 160 for a, b in zip(packets, packets[1:]))


def test_tcp_and_check_mode():
    with FakeSIPUAS(transport="tcp") as uas:
        failed, result = run(uas, check_mode=True, duration=0.4)
    assert not failed, result
    assert result["tone_detected"] and result["bye_status_code"] == 200
    assert sip.header(uas.requests[0], "via").startswith("SIP/2.0/TCP ")
    assert result["request_uri"].endswith(";transport=tcp")


def test_busy_fails_with_status():
    with FakeSIPUAS(mode="busy") as uas:
        failed, result = run(uas)
    assert failed
    assert result["status_code"] == 486
    assert "not answered: 486 Busy Here" in result["msg"]
    assert result["msg"].startswith(f"Call to sip:600@127.0.0.1:{uas.port} via 127.0.0.1:{uas.port} over udp")
    assert uas.methods() == ["INVITE", "ACK", "INVITE", "ACK"]  # the 401 and the 486 are ACKed
    assert not uas.rtp_in
    assert_no_password(result)


def test_wrong_password_fails_after_second_401():
    with FakeSIPUAS(password="something-else") as uas:
        failed, result = run(uas)
    assert failed
    assert result["status_code"] == 401
    assert "401 Unauthorized" in result["msg"]
    assert "credentials of user 'health' were rejected" in result["msg"]
    assert uas.methods() == ["INVITE", "ACK", "INVITE", "ACK"]
    assert uas.auth_checks == [("INVITE", False)]
    assert_no_password(result)


def test_silence_fails_tone_not_detected():
    with FakeSIPUAS(mode="silence") as uas:
        failed, result = run(uas)
    assert failed
    assert result["tone_detected"] is False
    assert result["packets_received"] == result["packets_sent"] > 0
    assert result["tone_snr_db"] < 15
    assert "1000 Hz tone was not detected" in result["msg"] and "SNR 0.0 dB" in result["msg"]
    assert result["bye_status_code"] == 200


def test_silence_passes_without_expect_echo():
    with FakeSIPUAS(mode="silence") as uas:
        failed, result = run(uas, expect_echo=False, duration=0.3)
    assert not failed, result
    assert result["tone_detected"] is False


def test_no_rtp_back_fails():
    with FakeSIPUAS(mode="no_rtp") as uas:
        failed, result = run(uas, duration=0.3)
    assert failed
    assert result["packets_received"] == 0 and result["packets_sent"] == 15
    assert f"no RTP came back from 127.0.0.1:{uas.rtp_port}" in result["msg"]
    assert result["first_audio_ms"] is None
    assert uas.bye_from_client is not None


def test_packet_loss_is_reported():
    with FakeSIPUAS(mode="drop") as uas:
        failed, result = run(uas, duration=1.0)
    assert not failed, result
    assert result["packets_sent"] == 50
    assert 43 <= result["packets_received"] <= 46
    assert 6 <= result["loss_pct"] <= 12
    assert result["tone_detected"]


def test_wrong_tone_frequency_is_not_detected():
    # The echo is fine; we only look for a tone we did not send by lying about min_snr_db.
    with FakeSIPUAS() as uas:
        failed, result = run(uas, tone_hz=400, min_snr_db=60)
    assert failed
    assert "400 Hz tone was not detected" in result["msg"]


def test_retransmitted_200_is_acked_again():
    with FakeSIPUAS(ignore_first_ack=True) as uas:
        failed, result = run(uas)
    assert not failed, result
    assert uas.acks >= 2


def test_challenged_bye():
    with FakeSIPUAS(challenge_bye=True) as uas:
        failed, result = run(uas, duration=0.3)
    assert not failed, result
    assert result["bye_status_code"] == 200
    # The BYE carries the INVITE's credentials; the fake wants a BYE nonce, so it challenges once.
    assert uas.methods()[-2:] == ["BYE", "BYE"]
    assert uas.auth_checks[-2:] == [("BYE", False), ("BYE", True)]


def test_remote_hangup_ends_audio_early():
    with FakeSIPUAS(hangup_after=10) as uas:
        failed, result = run(uas, duration=2)
    assert not failed, result
    assert result["remote_hangup"] is True
    assert result["bye_status_code"] is None
    assert result["packets_sent"] < 40
    assert uas.bye_answer == 200


def test_ringing_times_out_and_cancels():
    with FakeSIPUAS(mode="ringing") as uas:
        failed, result = run(uas, timeout=0.8)
    assert failed
    assert "No final response to INVITE" in result["msg"] and "provisional: 100, 180" in result["msg"]
    assert "cancelled" in result["msg"]
    assert "CANCEL" in uas.methods()
    assert uas.methods()[-1] == "ACK"  # the 487 is ACKed
    assert "status_code" not in result


def test_timeout_when_nothing_answers():
    with silent_responder() as server:
        failed, result = run(host=server.host, port=server.port, timeout=0.7)
    assert failed
    assert "No final response to INVITE from 127.0.0.1" in result["msg"]
    assert "within 0.7s (2 request(s) sent)" in result["msg"]  # sent at 0 and 0.5 s
    assert len(server.requests) >= 2
    assert_no_password(result)


@pytest.mark.parametrize(
    "args,message",
    [
        ({"tone_hz": 5000}, "tone_hz must be between 100 and 3800"),
        ({"duration": 0}, "duration must be between 0.2 and 60 seconds"),
        ({"timeout": 0}, "timeout must be greater than 0"),
        ({"target": "6 00"}, "target must be a non-empty SIP user part"),
    ],
)
def test_invalid_arguments(args, message):
    failed, result = run(**args)
    assert failed
    assert result["msg"].startswith(message)


# -- SIP helpers used by the module -----------------------------------------------------------


def test_digest_rfc2617_example():
    # RFC 2617 section 3.5 (the published value; RFC 2617 erratum 1649 notes the request is GET).
    response = sip.digest_response(
        "Mufasa",
        "Circle Of Life",
        "testrealm@host.com",
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "GET",
        "/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    assert response == "6629fae49393a05397450978507c4ef1"


def test_digest_without_qop_rfc2069():
    def md5(text):
        return hashlib.md5(text.encode()).hexdigest()

    expected = md5(f"{md5('bob:asterisk:pw')}:abc:{md5('INVITE:sip:600@pbx')}")
    assert sip.digest_response("bob", "pw", "asterisk", "abc", "INVITE", "sip:600@pbx") == expected


def test_authorization_header_and_challenge_parsing():
    challenge = (
        'Digest realm="asterisk",nonce="1700000000/abc",opaque="5ee3",algorithm=md5,qop="auth,auth-int"',
        'Digest realm="asterisk", nonce="n2", algorithm=SHA-256, qop="auth"',
    )
    message = {"headers": {"www-authenticate": list(challenge)}}
    name, params = sip.choose_challenge(message)
    assert name == "Authorization"
    assert params == {
        "realm": "asterisk",
        "nonce": "1700000000/abc",
        "opaque": "5ee3",
        "algorithm": "md5",
        "qop": "auth,auth-int",
    }
    value = sip.build_authorization(params, "health", "pw", "INVITE", "sip:600@h", nc=1, cnonce="c0ffee")
    scheme, sent = sip.parse_auth_params(value)
    assert scheme == "digest"
    assert sent["qop"] == "auth" and sent["nc"] == "00000001" and sent["cnonce"] == "c0ffee"
    assert sent["opaque"] == "5ee3" and sent["uri"] == "sip:600@h"
    assert sent["response"] == sip.digest_response(
        "health", "pw", "asterisk", "1700000000/abc", "INVITE", "sip:600@h", "auth", "00000001", "c0ffee", "md5"
    )
    assert "pw" not in value.replace("sip:", "")
    unsupported = {"headers": {"www-authenticate": ['Digest realm="r", nonce="n", algorithm=AKAv1-MD5']}}
    assert sip.choose_challenge(unsupported) is None


def test_sha256_digest_rfc7616_example():
    # RFC 7616 section 3.9.1 (SHA-256, qop=auth).
    response = sip.digest_response(
        "Mufasa",
        "Circle of Life",
        "http-auth@example.org",
        "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        "GET",
        "/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        algorithm="SHA-256",
    )
    assert response == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"


def test_sdp_round_trip():
    offer = sip.build_sdp("127.0.0.1", 40000, session_id=1, session_version=2)
    assert "m=audio 40000 RTP/AVP 0 101\r\n" in offer
    assert "a=fmtp:101 0-16\r\n" in offer and offer.endswith("a=ptime:20\r\na=sendrecv\r\n")
    parsed = sip.parse_sdp(offer)
    assert parsed["origin"] == "- 1 2 IN IP4 127.0.0.1"
    (audio,) = parsed["media"]
    assert audio["connection"] == "127.0.0.1" and audio["port"] == 40000
    answer = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 10042 RTP/AVP 0\r\nc=IN IP4 10.0.0.2\r\n"
    assert sip_echo_call.remote_media(answer) == ("10.0.0.2", 10042)
    with pytest.raises(sip_echo_call.CallFailed, match="did not accept PCMU"):
        sip_echo_call.remote_media(answer.replace("RTP/AVP 0", "RTP/AVP 8"))
    with pytest.raises(sip_echo_call.CallFailed, match="rejected the audio"):
        sip_echo_call.remote_media(answer.replace("10042", "0"))


def test_header_helpers():
    values = ['<sip:a@h;lr>, "B, b" <sip:b@h>;x=1', "<sip:c@h>"]
    assert sip.split_header_values(values) == ["<sip:a@h;lr>", '"B, b" <sip:b@h>;x=1', "<sip:c@h>"]
    assert sip.name_addr_uri('"A" <sip:600@h:5060>;tag=x') == "sip:600@h:5060"
    assert sip.header_param('"A" <sip:600@h;transport=tcp>;tag=x1', "tag") == "x1"
    assert sip.header_param("<sip:600@h>", "tag") is None
