"""A real Triton Inference Server on this machine's CPU, serving ``triton_models/``.

``make triton`` unpacks ``tritonserver`` 2.51 and its python backend from the ``nvidia-pytriton``
wheel into ``var/triton/server`` and builds the models' environment ``var/triton/env`` (the system
Python 3.11 that the backend stub embeds, ``triton_models/requirements.txt``, numpy < 2). This
module lays out the repository Triton loads and runs the server:

* every entry of ``triton_models/`` is linked as it is, so Triton reads the committed configs;
* an entry on a backend the wheel lacks (``platform: "onnxruntime_onnx"``) is served on the python
  backend from its ``config.cpu.pbtxt`` and ``services/inference/model_server/triton_onnx.py``.

``python -m tools.triton`` runs it in the foreground (``TIMBR_MODEL_BACKEND=triton make run``);
the tests and the bench use :class:`TritonServer`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
TRITON = REPO / "var" / "triton"
SERVER = TRITON / "server"
ENV_SITE = TRITON / "env" / "lib" / "python3.11" / "site-packages"
ONNX_RUNNER = REPO / "services" / "inference" / "model_server" / "triton_onnx.py"


def build_repository(dest: Path, models: list[str] | None = None) -> Path:
    """The repository Triton loads here: ``triton_models/`` linked entry by entry (see module doc)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for entry in sorted((REPO / "triton_models").glob("*/config.pbtxt")):
        name, src = entry.parent.name, entry.parent
        if models is not None and name not in models:
            continue
        if 'platform: "onnxruntime_onnx"' not in entry.read_text():
            (dest / name).symlink_to(src, target_is_directory=True)
            continue
        (dest / name / "1").mkdir(parents=True)
        (dest / name / "config.pbtxt").symlink_to(src / "config.cpu.pbtxt")
        for item in (src / "1").iterdir():
            (dest / name / "1" / item.name).symlink_to(item)
        (dest / name / "1" / "model.py").symlink_to(ONNX_RUNNER)
    return dest


def server_env() -> dict[str, str]:
    """The server's environment: its bundled libraries, and the models' import paths."""
    if not (SERVER / "bin" / "tritonserver").exists() or not ENV_SITE.exists():
        raise RuntimeError("Triton is not unpacked here: run `make triton` (mk/triton.mk)")
    libs = [str(SERVER / "lib"), os.environ.get("LD_LIBRARY_PATH", "")]
    return {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(p for p in libs if p),
            "TIMBR_TRITON_PYTHONPATH": os.pathsep.join([str(REPO), str(ENV_SITE)]),
            "TIMBR_MODELS_DIR": os.environ.get("TIMBR_MODELS_DIR", str(REPO / "var" / "models")),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


class TritonServer:
    """``tritonserver`` as a subprocess on the given ports; restartable on the same ports."""

    def __init__(self, repository: Path, log_path: Path, http_port: int, grpc_port: int,
                 metrics_port: int) -> None:
        self.repository, self.log_path = repository, log_path
        self.http_port, self.grpc_port, self.metrics_port = http_port, grpc_port, metrics_port
        self.models = sorted(p.name for p in repository.iterdir())
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def metrics(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def command(self) -> list[str]:
        return [str(SERVER / "bin" / "tritonserver"), f"--model-repository={self.repository}",
                f"--backend-directory={SERVER / 'backends'}", f"--http-port={self.http_port}",
                f"--grpc-port={self.grpc_port}", f"--metrics-port={self.metrics_port}",
                "--allow-gpu-metrics=false", "--log-verbose=0", "--exit-timeout-secs=10"]

    def start(self) -> TritonServer:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), cwd=REPO, env=server_env(), stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self, timeout_s: float = 300.0) -> TritonServer:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tritonserver exited {self.proc.returncode}: {self.tail()}")
            try:
                if httpx.get(f"{self.http}/v2/health/ready", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"tritonserver not ready after {timeout_s} s: {self.tail()}")

    def stop(self, kill: bool = False) -> None:
        """Stop the server and its python-backend stubs (one process group)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9 if kill else 15)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self.proc = None

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""


def main() -> int:
    """Serve ``triton_models/`` (or the TIMBR_TRITON_MODELS subset, comma-separated) on
    TIMBR_TRITON_{HTTP,GRPC,METRICS}_PORT (8000/8001/8002) until stopped."""
    ports = [int(os.environ.get(f"TIMBR_TRITON_{kind}_PORT", default))
             for kind, default in (("HTTP", 8000), ("GRPC", 8001), ("METRICS", 8002))]
    subset = [m for m in os.environ.get("TIMBR_TRITON_MODELS", "").split(",") if m] or None
    repository = build_repository(Path(tempfile.mkdtemp(prefix="timbr-triton-repo-")), subset)
    server = TritonServer(repository, TRITON / "server.log", *ports)
    os.execve(server.command()[0], server.command(), server_env())
    return 0  # not reached: the process is now tritonserver


if __name__ == "__main__":
    sys.exit(main())
