# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/genesys_export.yml writes the Genesys-side trunk configuration.

Each case runs the playbook with ansible-playbook against a temporary inventory
of ``ansible_connection: local`` hosts in ``asterisk_nodes`` and reads the JSON
(Configuration Server objects) and the Markdown document it writes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "playbooks" / "genesys_export.yml"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

INBOUND_SECRET = "In-Vault-Secret-7f3a9c"
OUTBOUND_SECRET = "Out-Vault-Secret-2b8e1d"
DNIS_ROUTES = {
    "5000": {"type": "extension", "target": "1000"},
    "5001": {"type": "ring", "targets": ["1000", "1001"]},
    "5600": {"type": "internal", "target": "600"},
}


def run_export(tmp_path: Path, nodes: dict, group_vars: dict, *extra: str) -> subprocess.CompletedProcess:
    if not ANSIBLE_PLAYBOOK.exists() and not shutil.which("ansible-playbook"):
        pytest.fail("ansible-playbook not found: run the tests from the project venv (make unit)")
    hosts = {name: {"ansible_connection": "local", **hostvars} for name, hostvars in nodes.items()}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        json.dumps({"all": {"children": {"asterisk_nodes": {"hosts": hosts, "vars": group_vars}}}}, indent=2)
    )
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".lab" / "collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
    )
    exe = str(ANSIBLE_PLAYBOOK) if ANSIBLE_PLAYBOOK.exists() else "ansible-playbook"
    return subprocess.run(
        [exe, "-i", str(inventory), str(PLAYBOOK), "-e", f"genesys_trunk_export_dir={tmp_path / 'export'}", *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def ok(res: subprocess.CompletedProcess) -> None:
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


def read_export(tmp_path: Path, name: str = "genesys") -> tuple[dict, str]:
    export = tmp_path / "export"
    return json.loads((export / f"{name}-trunk.json").read_text()), (export / f"{name}-trunk.md").read_text()


def dns_of_type(data: dict, dn_type: str) -> list:
    return [dn for dn in data["dns"] if dn["type"] == dn_type]


DIGEST_VARS = {
    "genesys_trunk_primary": "192.0.2.10",
    "genesys_trunk_backup": "192.0.2.11",
    "genesys_trunk_auth_mode": "digest",
    "genesys_trunk_inbound_password": INBOUND_SECRET,
    "genesys_trunk_outbound_password": OUTBOUND_SECRET,
    "genesys_trunk_dn_prefix": "5",
    "genesys_trunk_dn_priority": 2,
    "genesys_trunk_dn_oos_check": 15,
    "genesys_trunk_dn_oos_force": 4,
    "genesys_trunk_dnis_routes": DNIS_ROUTES,
}
TWO_NODES = {"pbx1": {"genesys_trunk_pbx_address": "192.0.2.21"}, "pbx2": {"genesys_trunk_pbx_address": "192.0.2.22"}}


def test_digest_two_nodes(tmp_path):
    res = run_export(tmp_path, TWO_NODES, DIGEST_VARS)
    ok(res)
    data, doc = read_export(tmp_path)

    (trunk,) = dns_of_type(data, "CFGTrunk")
    assert trunk["number"] == "genesys-voiceops"
    assert trunk["options"]["TServer"] == {
        "contact": "sip:192.0.2.21:5060",
        "contact-backup": "sip:192.0.2.22:5060",
        "prefix": "5",
        "priority": "2",
        "oos-check": "15",
        "oos-force": "4",
        "refer-enabled": "false",
    }
    assert [dn["number"] for dn in dns_of_type(data, "CFGRoutingPoint")] == sorted(DNIS_ROUTES)
    auth = data["voiceops"]["authentication"]
    assert auth["sip_server_to_voiceops"] == {
        "username": "genesys",
        "password": "<from vault: genesys_trunk_inbound_password>",
    }
    assert auth["voiceops_to_sip_server"]["username"] == "voiceops"
    assert data["voiceops"]["options_ping"]["from"] == ["192.0.2.21", "192.0.2.22"]
    assert data["voiceops"]["options_ping"]["to"] == ["sip:192.0.2.10:5060", "sip:192.0.2.11:5060"]
    assert data["voiceops"]["warnings"] == []

    assert "`sip:192.0.2.22:5060`" in doc
    assert "<from vault: genesys_trunk_inbound_password>" in doc
    for text in (json.dumps(data), doc, res.stdout, res.stderr):
        assert INBOUND_SECRET not in text
        assert OUTBOUND_SECRET not in text


def test_tls_single_node(tmp_path):
    group_vars = {
        **DIGEST_VARS,
        "genesys_trunk_auth_mode": "tls",
        "genesys_trunk_tls_cert_file": "/srv/pki/pbx.crt",
        "genesys_trunk_tls_key_file": "/srv/pki/pbx.key",
        "genesys_trunk_tls_ca_file": "/srv/pki/genesys-ca.crt",
        "genesys_trunk_srtp": "sdes",
    }
    res = run_export(tmp_path, {"pbx1": {"genesys_trunk_pbx_address": "pbx1.example.net"}}, group_vars)
    ok(res)
    data, doc = read_export(tmp_path)

    options = dns_of_type(data, "CFGTrunk")[0]["options"]["TServer"]
    assert options["contact"] == "sip:pbx1.example.net:5061;transport=tls"
    assert "contact-backup" not in options
    assert data["voiceops"]["port"] == 5061
    assert data["voiceops"]["transport"] == "tls"
    assert data["voiceops"]["authentication"]["voiceops_certificate"] == "pbx.crt"
    assert data["voiceops"]["options_ping"]["to"][0] == "sip:192.0.2.10:5061;transport=tls"
    assert "none (one Asterisk node)" in doc
    assert "pbx.key" not in json.dumps(data) + doc
    for text in (json.dumps(data), doc):
        assert INBOUND_SECRET not in text
        assert OUTBOUND_SECRET not in text


def test_ip_tcp_warns_about_uncovered_dnis(tmp_path):
    group_vars = {
        "genesys_trunk_primary": "192.0.2.10",
        "genesys_trunk_transport": "tcp",
        "genesys_trunk_dn_prefix": "50",
        "genesys_trunk_dnis_routes": DNIS_ROUTES,
    }
    ok(run_export(tmp_path, TWO_NODES, group_vars))
    data, doc = read_export(tmp_path)

    assert dns_of_type(data, "CFGTrunk")[0]["options"]["TServer"]["contact"] == "sip:192.0.2.21:5060;transport=tcp"
    assert data["voiceops"]["authentication"] == {
        "mode": "ip",
        "sip_server_must_accept_from": ["192.0.2.21", "192.0.2.22"],
    }
    assert data["voiceops"]["warnings"] == [
        "DNIS 5600 does not start with the Trunk DN prefix 50: SIP Server will not send it over this trunk."
    ]
    assert "## Check first" in doc


def test_check_mode_writes_nothing_and_rerun_is_idempotent(tmp_path):
    res = run_export(tmp_path, TWO_NODES, DIGEST_VARS, "--check", "--diff")
    ok(res)
    assert not (tmp_path / "export").exists()
    assert "sip:192.0.2.21:5060" in res.stdout  # the diff shows the content
    assert INBOUND_SECRET not in res.stdout

    ok(run_export(tmp_path, TWO_NODES, DIGEST_VARS))
    again = run_export(tmp_path, TWO_NODES, DIGEST_VARS)
    ok(again)
    assert "changed=0" in again.stdout.split("PLAY RECAP")[-1]


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"genesys_trunk_dn_oos_force": 60}, "genesys_trunk_dn_oos_force must be 0-30"),
        ({"genesys_trunk_dn_oos_check": 301}, "genesys_trunk_dn_oos_check must be 0-300"),
        (
            {"genesys_trunk_dnis_routes": {"5000": {"type": "voicemail", "target": "1000"}}},
            "genesys_trunk_dnis_routes must map",
        ),
    ],
)
def test_bad_input_fails_naming_the_variable(tmp_path, overrides, message):
    res = run_export(tmp_path, TWO_NODES, {**DIGEST_VARS, **overrides})
    assert res.returncode != 0
    assert message in res.stdout + res.stderr
    assert not (tmp_path / "export").exists()


def test_missing_pbx_address_fails(tmp_path):
    res = run_export(tmp_path, {"pbx1": {}}, DIGEST_VARS)
    assert res.returncode != 0
    assert "genesys_trunk_pbx_address is empty or loopback" in res.stdout + res.stderr
