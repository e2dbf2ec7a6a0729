"""testinfra checks of the converged lab host (run by molecule verify)."""

import json

import pytest

CONTAINERS = {
    "webrtc-asterisk": "voiceops/asterisk:22",
    "webrtc-nginx": "voiceops/nginx:stable",
    "webrtc-coturn": "voiceops/coturn:4.6",
}


def _inspect(host, name):
    out = host.check_output(f"docker inspect {name}")
    return json.loads(out)[0]


@pytest.mark.parametrize("name,image", sorted(CONTAINERS.items()))
def test_container_running_on_host_network(host, name, image):
    info = _inspect(host, name)
    assert info["State"]["Running"], f"{name} is not running"
    assert info["Config"]["Image"] == image
    assert info["HostConfig"]["NetworkMode"] == "host"
    assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"


@pytest.mark.parametrize(
    "spec",
    [
        "tcp://0.0.0.0:443",
        "tcp://0.0.0.0:80",
        "tcp://0.0.0.0:8089",
        "udp://0.0.0.0:5060",
        "tcp://0.0.0.0:5060",
        "tcp://127.0.0.1:8088",
        "tcp://127.0.0.1:5038",
        "tcp://127.0.0.1:8091",
    ],
)
def test_ports_listening(host, spec):
    assert host.socket(spec).is_listening, f"nothing listens on {spec}"


@pytest.mark.parametrize("spec", ["udp://{ip}:3478", "tcp://{ip}:3478", "tcp://{ip}:5349"])
def test_turn_ports_listening(host, spec):
    # coturn binds each address separately rather than 0.0.0.0.
    ip = host.check_output("ip -4 -o addr show scope global").split()[3].split("/")[0]
    assert host.socket(spec.format(ip=ip)).is_listening, f"coturn does not listen on {spec.format(ip=ip)}"


@pytest.mark.parametrize("port", [5038, 8088, 8091])
def test_internal_ports_loopback_only(host, port):
    assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening


def test_firewalld_rules(host):
    ports = host.check_output("firewall-cmd --zone=public --list-ports").split()
    assert "10082-20000/udp" in ports
    assert "3478/udp" in ports and "5349/tcp" in ports and "8089/tcp" in ports
    assert not any(p.startswith(("5038", "8088", "5060")) for p in ports)
    services = host.check_output("firewall-cmd --zone=public --list-services").split()
    assert "https" in services


@pytest.mark.parametrize(
    "path",
    [
        "/etc/voiceops/asterisk/pjsip.conf",
        "/etc/voiceops/asterisk/extensions.conf",
        "/etc/voiceops/asterisk/http.conf",
        "/etc/voiceops/asterisk/rtp.conf",
        "/etc/voiceops/asterisk/manager.conf",
        "/etc/voiceops/nginx/conf.d/webrtc.conf",
        "/etc/voiceops/coturn/turnserver.conf",
        "/srv/voiceops/softphone/index.html",
        "/srv/voiceops/softphone/app.js",
        "/srv/voiceops/softphone/config.json",
    ],
)
def test_rendered_files(host, path):
    assert host.file(path).exists


def test_secret_files_are_private(host):
    for path in ("/etc/voiceops/asterisk/pjsip.conf", "/etc/voiceops/asterisk/manager.conf"):
        assert host.file(path).mode == 0o640
    assert host.file("/etc/voiceops/tls/server.key").mode == 0o600
    assert host.file("/etc/voiceops/turn-credentials/config.json").mode == 0o600


def test_rtp_range_avoids_port_10080(host):
    rtp = host.file("/etc/voiceops/asterisk/rtp.conf").content_string
    assert "rtpstart = 10082" in rtp


def test_http_sessionlimit_sized(host):
    http = host.file("/etc/voiceops/asterisk/http.conf").content_string
    assert "bindaddr = 127.0.0.1" in http
    limit = int(http.split("sessionlimit = ")[1].split()[0])
    assert limit > 100


def test_asterisk_modules_loaded(host):
    out = host.check_output("docker exec webrtc-asterisk asterisk -rx 'module show like res_pjsip_transport_websocket'")
    assert "Running" in out
    out = host.check_output("docker exec webrtc-asterisk asterisk -rx 'module show like opus'")
    assert "codec_opus" in out
    out = host.check_output("docker exec webrtc-asterisk asterisk -rx 'pjsip show endpoints'")
    assert "1000" in out and "1001" in out


def test_asterisk_runs_as_asterisk_uid_1000(host):
    out = host.check_output("docker exec webrtc-asterisk ps -o user=,uid= -C asterisk")
    assert "1000" in out


def test_sound_files_present(host):
    host.run_test("docker exec webrtc-asterisk ls /usr/share/asterisk/sounds/en/ /var/lib/asterisk/sounds/en/")
    out = host.run("docker exec webrtc-asterisk sh -c 'ls /var/lib/asterisk/sounds/en/ | head'")
    assert out.stdout.strip(), "no English prompts in the Asterisk image"


@pytest.mark.parametrize("proto", ["-tls1_2", "-tls1_3"])
def test_tls_modern_protocols_offered(host, proto):
    res = host.run(f"echo | timeout 5 openssl s_client -connect 127.0.0.1:443 {proto} 2>&1")
    assert "Cipher is (NONE)" not in res.stdout and "Cipher is" in res.stdout, res.stdout[-500:]


@pytest.mark.parametrize("proto", ["-tls1_1", "-tls1"])
def test_tls_old_protocols_refused_by_server(host, proto):
    # SECLEVEL=0 lets the client offer the old protocol, so a refusal is the server's.
    res = host.run(f"echo | timeout 5 openssl s_client -connect 127.0.0.1:443 {proto} -cipher DEFAULT@SECLEVEL=0 2>&1")
    assert "alert protocol version" in res.stdout, res.stdout[-500:]


def test_security_headers(host):
    out = host.check_output("curl -sk -D - -o /dev/null https://127.0.0.1/")
    lower = out.lower()
    for header in (
        "strict-transport-security",
        "content-security-policy",
        "x-frame-options",
        "x-content-type-options",
        "referrer-policy",
    ):
        assert header in lower, f"{header} missing"


def test_http_redirects_to_https(host):
    out = host.check_output("curl -s -o /dev/null -w '%{http_code} %{redirect_url}' http://127.0.0.1/")
    assert out.startswith("301 https://")


def test_sipguard_running_and_bans_go_to_the_drop_zone(host):
    assert host.service("voiceops-sipguard").is_running
    assert host.service("voiceops-sipguard").is_enabled
    assert "ipset:voiceops-banned" in host.check_output("firewall-cmd --zone=drop --list-sources")
    assert "hash:ip" in host.check_output("firewall-cmd --info-ipset=voiceops-banned")


def test_agents_accepted_only_from_loopback(host):
    conf = host.file("/etc/voiceops/asterisk/pjsip.conf").content_string
    agent_template = conf.split("[webrtc-agent](!)", 1)[1].split("\n[", 1)[0]
    assert "deny = 0.0.0.0/0.0.0.0" in agent_template and "permit = 127.0.0.0/255.0.0.0" in agent_template
