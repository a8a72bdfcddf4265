"""Where install-time model artefacts live: ``var/models/`` under the repository (gitignored),
or ``$TIMBR_MODELS_DIR`` when a deployment mounts them elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def models_dir() -> Path:
    return Path(os.environ.get("TIMBR_MODELS_DIR") or REPO_ROOT / "var" / "models")
