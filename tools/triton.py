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
import sys
import tempfile
from pathlib import Path

from tools.server_process import REPO, ServerProcess

TRITON = REPO / "var" / "triton"
SERVER = TRITON / "server"
ENV_SITE = TRITON / "env" / "lib" / "python3.11" / "site-packages"
ONNX_RUNNER = REPO / "services" / "inference" / "model_server" / "triton_onnx.py"
STUB_TIMEOUT_S = 120   # python backend stub start-up: ten stubs on two loaded cores outran its default 30 s


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
            # CTranslate2's int8 Whisper gives other probabilities (and at times other words) under
            # another OpenMP thread count: the models' own thread setting, as in-process.
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", os.environ.get("TIMBR_CPU_THREADS", "2"))}


class TritonServer(ServerProcess):
    """``tritonserver`` serving ``repository`` on the given ports."""

    def __init__(self, repository: Path, log_path: Path, http_port: int, grpc_port: int,
                 metrics_port: int) -> None:
        super().__init__(log_path, http_port, grpc_port)
        self.repository, self.metrics_port = repository, metrics_port
        self.models = sorted(p.name for p in repository.iterdir())

    @property
    def metrics(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def command(self) -> list[str]:
        return [str(SERVER / "bin" / "tritonserver"), f"--model-repository={self.repository}",
                f"--backend-directory={SERVER / 'backends'}", f"--http-port={self.http_port}",
                f"--grpc-port={self.grpc_port}", f"--metrics-port={self.metrics_port}",
                "--allow-gpu-metrics=false", "--log-verbose=0", "--exit-timeout-secs=10",
                f"--backend-config=python,stub-timeout-seconds={STUB_TIMEOUT_S}"]

    def environment(self) -> dict[str, str]:
        return server_env()


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
