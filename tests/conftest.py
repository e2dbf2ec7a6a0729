# Copyright (c) voiceops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Make ``ansible_collections.voiceops.webrtc_pbx`` importable for plain pytest.

The collection must live at ``<path>/ansible_collections/voiceops/webrtc_pbx``.
For a plain clone this uses ``.lab/collections`` inside the repository, where
``ansible_collections/voiceops/webrtc_pbx`` is a symlink to the repository
(the Makefile creates the same link).  Under ``ansible-test`` the checkout
already is inside such a tree and nothing is changed.
"""

from __future__ import annotations

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS_ROOT = os.path.join(REPO_ROOT, ".lab", "collections")
LINK = os.path.join(COLLECTIONS_ROOT, "ansible_collections", "voiceops", "webrtc_pbx")


def _inside_collection_tree(path):
    parts = os.path.normpath(path).split(os.sep)
    return len(parts) >= 3 and parts[-3:-1] == ["ansible_collections", "voiceops"] and parts[-1] == "webrtc_pbx"


def _bootstrap():
    if _inside_collection_tree(REPO_ROOT):
        root = os.path.dirname(os.path.dirname(os.path.dirname(REPO_ROOT)))
    else:
        if not os.path.islink(LINK) or os.path.realpath(LINK) != os.path.realpath(REPO_ROOT):
            os.makedirs(os.path.dirname(LINK), exist_ok=True)
            if os.path.islink(LINK):
                os.unlink(LINK)
            os.symlink(REPO_ROOT, LINK)
        root = COLLECTIONS_ROOT
    if root not in sys.path:
        sys.path.insert(0, root)


_bootstrap()
