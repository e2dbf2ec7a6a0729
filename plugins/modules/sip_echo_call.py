#!/usr/bin/python
# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sip_echo_call
short_description: Place a synthetic SIP call to an echo extension and check the returned audio
version_added: 0.1.0
description:
  - Places a real SIP call from the managed node over UDP or TCP to an echo extension (Asterisk C(Echo()), for
    example extension C(600)), answering Digest authentication challenges (MD5 or SHA-256, with and without
    C(qop=auth)).
  - The C(INVITE) offers PCMU/8000 (payload type 0) and telephone-event/8000 (payload type 101) with
    C(a=ptime:20) and C(a=sendrecv). After the C(200 OK) the module sends the C(ACK), then sends a sine tone of
    O(tone_hz) as 20 ms PCMU packets for O(duration) seconds to the address in the SDP answer while receiving RTP on
    the same socket (symmetric RTP), and finally hangs up with C(BYE).
  - The returned audio is decoded (G.711 u-law) and the tone is measured with a Goertzel filter; the ratio of the
    tone's energy to the rest of the audio is reported as RV(tone_snr_db).
  - Reports call set-up time, time until the first audio came back, packet counts, loss, RFC 3550 interarrival
    jitter and whether the tone was detected.
  - Fails when the call is not answered, when no RTP comes back, or when O(expect_echo=true) and the tone is not
    detected.
  - Uses only the Python standard library.
author:
  - voiceops contributors (@voiceops)
extends_documentation_fragment:
  - voiceops.webrtc_pbx.attributes
attributes:
  check_mode:
    support: full
    details: The call changes no configuration, so it runs normally in check mode.
  diff_mode:
    support: none
options:
  host:
    description:
      - Host name or IP address of the SIP server. All SIP requests are sent there.
    type: str
    default: 127.0.0.1
  port:
    description:
      - Port of the SIP server.
    type: int
    default: 5060
  transport:
    description:
      - SIP transport. RTP always uses UDP.
    type: str
    choices: [udp, tcp]
    default: udp
  target:
    description:
      - User part of the Request-URI, the extension to call (for example the echo test V(600)).
    type: str
    required: true
  domain:
    description:
      - Host part of the Request-URI, C(To) and C(From) URIs.
      - Defaults to O(host); then the Request-URI also carries O(port).
    type: str
  username:
    description:
      - User name for Digest authentication and user part of the C(From) and C(Contact) URIs.
    type: str
    required: true
  password:
    description:
      - Password for Digest authentication. It is never returned or put in an error message.
    type: str
    required: true
  tone_hz:
    description:
      - Frequency of the test tone in Hz (between 100 and 3800).
    type: int
    default: 1000
  duration:
    description:
      - Seconds of audio to send (between 0.2 and 60).
    type: float
    default: 3
  timeout:
    description:
      - Seconds to wait for the final response to C(INVITE) (including authentication) and, separately, for the
        response to C(BYE). UDP requests are retransmitted as RFC 3261 describes until then.
      - When only provisional responses arrived the call is cancelled with C(CANCEL).
    type: float
    default: 10
  local_address:
    description:
      - Local IP address that the RTP socket binds to and that the SDP offer announces in C(c=).
      - Must be reachable from the SIP server's media, so use the node's own address when O(host) is not local.
    type: str
    default: 127.0.0.1
  min_snr_db:
    description:
      - Minimum ratio (dB) of the tone's energy to the rest of the returned audio for RV(tone_detected).
      - G.711 round trips of a clean echo give about 35 dB; silence gives 0 dB.
    type: float
    default: 15
  expect_echo:
    description:
      - Fail when the tone is not detected in the returned audio.
      - With V(false) only the call itself and the arrival of RTP are checked.
    type: bool
    default: true
notes:
  - Set-up time is measured from the first C(INVITE) to the C(200 OK), so an authentication round trip is included.
  - Loss is computed from the sequence numbers of the received packets (RFC 3550 A.3); packets lost after the last
    one received are not counted.
  - Telephone-event is offered so that the far end may keep it, but no DTMF is sent.
  - Problems ending the call (no answer to C(BYE)) are reported as warnings and RV(bye_status_code).
"""

EXAMPLES = r"""
- name: Synthetic call to the Asterisk echo test
  voiceops.webrtc_pbx.sip_echo_call:
    host: 127.0.0.1
    target: "600"
    username: health
    password: "{{ asterisk_health_secret }}"
  register: call

- name: Show the call quality
  ansible.builtin.debug:
    msg: >-
      set-up {{ call.setup_ms }} ms, audio back after {{ call.first_audio_ms }} ms,
      loss {{ call.loss_pct }} %, jitter {{ call.jitter_ms }} ms, tone SNR {{ call.tone_snr_db }} dB

- name: Call a remote PBX over TCP, announcing this node's address for RTP
  voiceops.webrtc_pbx.sip_echo_call:
    host: pbx.example.com
    transport: tcp
    target: "600"
    username: health
    password: "{{ health_password }}"
    local_address: "{{ ansible_facts['default_ipv4']['address'] }}"
    duration: 5
    tone_hz: 800
"""

RETURN = r"""
request_uri:
  description: Request-URI of the C(INVITE).
  returned: always
  type: str
  sample: sip:600@127.0.0.1:5060
status_code:
  description: Status code of the final response to the (last) C(INVITE).
  returned: when a final response was received
  type: int
  sample: 200
reason:
  description: Reason phrase of that response.
  returned: when a final response was received
  type: str
  sample: OK
provisional:
  description: Status codes of provisional responses to the C(INVITE)s.
  returned: when the INVITE was sent
  type: list
  elements: int
  sample: [100]
setup_ms:
  description: Milliseconds from the first C(INVITE) to the C(200 OK).
  returned: when the call was answered
  type: float
  sample: 12.345
remote_rtp:
  description: Address and port of the far end's RTP from the SDP answer.
  returned: when the call was answered
  type: dict
  sample: {address: 127.0.0.1, port: 10042}
local_rtp:
  description: Address and port of the local RTP socket.
  returned: when the call was answered
  type: dict
  sample: {address: 127.0.0.1, port: 40002}
first_audio_ms:
  description: Milliseconds from the first RTP packet sent to the first RTP packet received; null when none came.
  returned: when the call was answered
  type: float
  sample: 20.512
packets_sent:
  description: RTP packets sent.
  returned: when the call was answered
  type: int
  sample: 150
packets_received:
  description: RTP packets received.
  returned: when the call was answered
  type: int
  sample: 149
loss_pct:
  description: Percentage of packets lost, from the sequence numbers of the received packets.
  returned: when the call was answered
  type: float
  sample: 0.0
jitter_ms:
  description: RFC 3550 interarrival jitter of the received RTP at the end of the call, in milliseconds.
  returned: when the call was answered
  type: float
  sample: 0.42
tone_snr_db:
  description: Energy of the tone in the returned audio relative to the rest of that audio, in dB.
  returned: when the call was answered
  type: float
  sample: 36.8
audio_level_dbfs:
  description: RMS level of the returned audio relative to a full-scale sine (-120 for silence). The tone is sent at -6.
  returned: when the call was answered
  type: float
  sample: -6.0
tone_detected:
  description: Whether RV(tone_snr_db) reached O(min_snr_db).
  returned: when the call was answered
  type: bool
  sample: true
remote_hangup:
  description: Whether the far end ended the call with C(BYE) before the audio was over.
  returned: when the call was answered
  type: bool
  sample: false
bye_status_code:
  description: Status code of the response to our C(BYE); null when the far end hung up first or it did not answer.
  returned: when the call was answered
  type: int
  sample: 200
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils import rtp
from ansible_collections.voiceops.webrtc_pbx.plugins.module_utils.sip import (
    SIPCall,
    SIPConnection,
    SIPError,
    SIPParseError,
    SIPTimeout,
    build_sdp,
    format_host,
    parse_sdp,
)


class CallFailed(Exception):
    """The call did not pass; ``msg`` is safe to show (no password)."""

    def __init__(self, msg):
        super().__init__(msg)
        self.msg = msg


def build_uris(p):
    domain = p["domain"] or p["host"]
    hostport = format_host(domain) + (f":{p['port']}" if not p["domain"] else "")
    params = "" if p["transport"] == "udp" else f";transport={p['transport']}"
    request_uri = f"sip:{p['target']}@{hostport}{params}"
    to_uri = f"sip:{p['target']}@{hostport}"
    from_uri = f"sip:{p['username']}@{format_host(domain)}"
    return request_uri, to_uri, from_uri


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000.0, 3)


def remote_media(body):
    """``(address, port)`` of the PCMU audio stream of an SDP answer."""
    if not body or not body.strip():
        raise CallFailed("the 200 OK carried no SDP answer")
    try:
        sdp = parse_sdp(body)
    except SIPParseError as exc:
        raise CallFailed(f"the SDP answer is malformed: {exc}") from None
    audio = [media for media in sdp["media"] if media["media"] == "audio"]
    if not audio or audio[0]["port"] == 0:
        raise CallFailed("the SDP answer rejected the audio stream")
    media = audio[0]
    if str(rtp.PT_PCMU) not in media["formats"]:
        raise CallFailed(f"the SDP answer did not accept PCMU (payload types: {' '.join(media['formats'])})")
    if not media["connection"]:
        raise CallFailed("the SDP answer has no connection address (c=)")
    return media["connection"], media["port"]


def place_call(p, result, warnings):
    """Run the call and fill ``result``; raises ``CallFailed`` (or SIP/RTP/OS errors)."""
    request_uri, to_uri, from_uri = build_uris(p)
    rtp_sock, rtcp_sock = rtp.open_rtp_socket(p["local_address"])
    try:
        local_port = rtp_sock.getsockname()[1]
        with SIPConnection(p["host"], p["port"], p["transport"], timeout=p["timeout"]) as conn:
            call = SIPCall(conn, request_uri, to_uri, from_uri, p["username"], p["password"])
            sdp = build_sdp(p["local_address"], local_port)
            try:
                response = call.invite(sdp, p["timeout"])
            except SIPTimeout as exc:
                result["provisional"] = call.provisional
                raise CallFailed(f"{exc}" + ("; the call was cancelled" if call.provisional else "")) from None
            result.update(status_code=response["status_code"], reason=response["reason"], provisional=call.provisional)
            if response["status_code"] >= 300 or not call.established:
                text = f"{response['status_code']} {response['reason']}"
                if call.auth_error and response["status_code"] in (401, 407):
                    text += f" - {call.auth_error}"
                raise CallFailed(f"the call was not answered: {text}")
            result["setup_ms"] = _ms(call.answered_at - call.invite_sent_at)
            media = None
            try:
                remote = remote_media(response["body"])
                result["remote_rtp"] = {"address": remote[0], "port": remote[1]}
                result["local_rtp"] = {"address": p["local_address"], "port": local_port}
                media = rtp.exchange(
                    rtp_sock,
                    (remote[0].strip("[]"), remote[1]),
                    p["duration"],
                    p["tone_hz"],
                    readers={conn: lambda: call.poll(0)},
                    stop=lambda: call.remote_bye,
                    rtcp_sock=rtcp_sock,
                )
            finally:
                result["remote_hangup"] = call.remote_bye
                result["bye_status_code"] = None
                if call.established:
                    try:
                        bye = call.bye(p["timeout"])
                        result["bye_status_code"] = bye["status_code"]
                        if bye["status_code"] >= 300:
                            warnings.append(f"BYE was answered with {bye['status_code']} {bye['reason']}")
                    except (SIPError, OSError) as exc:
                        warnings.append(f"BYE failed: {exc}")
    finally:
        rtp_sock.close()
        if rtcp_sock is not None:
            rtcp_sock.close()

    analysis = rtp.tone_analysis(media["frames"], p["tone_hz"])
    detected = media["packets_received"] > 0 and analysis["snr_db"] >= p["min_snr_db"]
    result.update(
        first_audio_ms=None if media["first_audio_ms"] is None else round(media["first_audio_ms"], 3),
        packets_sent=media["packets_sent"],
        packets_received=media["packets_received"],
        loss_pct=round(media["loss_pct"], 2),
        jitter_ms=round(media["jitter_ms"], 3),
        tone_snr_db=round(analysis["snr_db"], 2),
        audio_level_dbfs=round(analysis["level_dbfs"], 2),
        tone_detected=detected,
    )
    remote_text = f"{result['remote_rtp']['address']}:{result['remote_rtp']['port']}"
    if media["packets_received"] == 0:
        raise CallFailed(
            f"the call was answered but no RTP came back from {remote_text} "
            f"({media['packets_sent']} packets sent to it from {p['local_address']}:{local_port})"
        )
    if p["expect_echo"] and not detected:
        raise CallFailed(
            f"the {p['tone_hz']} Hz tone was not detected in the returned audio: SNR {result['tone_snr_db']} dB "
            f"(min_snr_db {p['min_snr_db']:g}), level {result['audio_level_dbfs']} dBFS, "
            f"{media['packets_received']} packets received"
        )


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type="str", default="127.0.0.1"),
            port=dict(type="int", default=5060),
            transport=dict(type="str", default="udp", choices=["udp", "tcp"]),
            target=dict(type="str", required=True),
            domain=dict(type="str"),
            username=dict(type="str", required=True),
            password=dict(type="str", required=True, no_log=True),
            tone_hz=dict(type="int", default=1000),
            duration=dict(type="float", default=3.0),
            timeout=dict(type="float", default=10.0),
            local_address=dict(type="str", default="127.0.0.1"),
            min_snr_db=dict(type="float", default=15.0),
            expect_echo=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["timeout"] <= 0:
        module.fail_json(msg="timeout must be greater than 0")
    if not 0.2 <= p["duration"] <= 60:
        module.fail_json(msg="duration must be between 0.2 and 60 seconds")
    if not 100 <= p["tone_hz"] <= 3800:
        module.fail_json(msg="tone_hz must be between 100 and 3800")
    if not 1 <= p["port"] <= 65535:
        module.fail_json(msg="port must be between 1 and 65535")
    for name in ("target", "username"):
        if not p[name] or any(char in p[name] for char in " \t\r\n<>@;:\"'"):
            module.fail_json(msg=f"{name} must be a non-empty SIP user part without spaces or <>@;:\"'")

    request_uri = build_uris(p)[0]
    where = f"{p['host']}:{p['port']} over {p['transport']}"
    result = dict(changed=False, request_uri=request_uri)
    warnings = []
    error = None
    try:
        place_call(p, result, warnings)
    except CallFailed as exc:
        error = f"Call to {request_uri} via {where}: {exc.msg}"
    except SIPError as exc:
        error = f"Call to {request_uri} via {where} failed: {exc}"
    except rtp.RTPError as exc:
        error = f"Call to {request_uri} via {where} failed: {exc}"
    except OSError as exc:
        error = f"Call to {request_uri} via {where} failed: {exc.strerror or exc}"
    for warning in warnings:
        module.warn(warning)
    if error is not None:
        if p["password"]:
            error = error.replace(p["password"], "********")
        module.fail_json(msg=error, **result)
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()
