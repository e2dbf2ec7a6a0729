"""lab/lab.py host-packages: which Debian packages `make lab` and `make test` still need (real dpkg-query)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("lab_tool_packages", ROOT / "lab" / "lab.py")
lab = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lab)

pytestmark = pytest.mark.skipif(not shutil.which("dpkg-query"), reason="needs Debian's dpkg-query")


def test_lists_only_the_packages_not_installed(monkeypatch):
    monkeypatch.setattr(lab, "HOST_PACKAGES", ["dpkg", "voiceops-no-such-package", "coreutils"])
    missing = lab.missing_host_packages()
    assert "voiceops-no-such-package" in missing
    assert "dpkg" not in missing and "coreutils" not in missing


def test_the_list_names_what_the_lab_and_ci_use():
    for name in ("docker.io", "debootstrap", "chromium", "python3-venv", "flite"):
        assert name in lab.HOST_PACKAGES
    assert "host-packages" in (ROOT / ".ci" / "run").read_text()


def test_a_host_without_dpkg_is_refused(monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(lab.shutil, "which", lambda name: None if name == "dpkg-query" else real_which(name))
    with pytest.raises(lab.LabError, match="Debian 12 or 13"):
        lab.missing_host_packages()
