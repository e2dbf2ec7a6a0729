"""Every module's documentation renders with ansible-doc (as users read it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders(module):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".lab" / "collections"), ANSIBLE_NOCOLOR="1")
    exe = Path(sys.executable).parent / "ansible-doc"
    res = subprocess.run(
        [str(exe), "--json", f"voiceops.webrtc_pbx.{module}"], capture_output=True, text=True, env=env, timeout=120
    )
    assert res.returncode == 0, res.stderr[-2000:]
    doc = json.loads(res.stdout)[f"voiceops.webrtc_pbx.{module}"]
    assert doc["doc"]["short_description"]
    assert doc["examples"].strip()
    assert doc["return"]
    src = (ROOT / "plugins" / "modules" / f"{module}.py").read_text()
    for opt in ("ami_secret", "password", "rest_secret"):
        if opt in doc["doc"]["options"]:
            line = next(ln for ln in src.splitlines() if ln.strip().startswith(f"{opt}=dict("))
            assert "no_log=True" in line, f"{module}: option {opt} must be no_log"
