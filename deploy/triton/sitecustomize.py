"""Put Timbr's venv in front of the system packages for Triton's python backend.

Triton's python backend stub embeds the image's python3; deploy/Dockerfile.triton builds the
project venv with that same interpreter and sets PYTHONPATH to this folder, so Python imports
this module at start-up. ``site.addsitedir`` honours the venv's .pth files (namespace packages),
and the venv and the repository root go first so that the project's pinned numpy, torch, etc.
win over any copy the base image carries.
"""

import site
import sys

TIMBR_ROOT = "/opt/timbr"
VENV_SITE = "/opt/timbr/site-packages"

_before = list(sys.path)
site.addsitedir(VENV_SITE)
_added = [p for p in sys.path if p not in _before]
sys.path[:] = [TIMBR_ROOT, *_added, *[p for p in _before if p != TIMBR_ROOT]]
