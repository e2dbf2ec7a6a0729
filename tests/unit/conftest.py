# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared fixtures (import paths are set up by tests/conftest.py)."""

from __future__ import annotations

import pytest
from ansible_collections.voiceops.webrtc_pbx.tests.unit.helpers.fake_ami import FakeAMIServer, load_fixture


@pytest.fixture
def ami_server():
    """Factory: ``ami_server("normal")`` or ``ami_server(transcript_dict)`` -> started FakeAMIServer."""
    servers = []

    def start(transcript):
        server = FakeAMIServer(transcript).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def transcript():
    """Load a transcript for modification: ``transcript("normal")``."""
    return load_fixture
