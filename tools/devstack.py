"""python -m tools.devstack (``make run``): the whole stack on one machine, embedded defaults.

Starts the development Kafka broker (tansu, on a local S3 server that keeps its files under
var/broker/, so that neither a broker restart nor stopping the stack loses a queued job;
tools/devbroker.py), billing, jobs, the webhook
dispatcher, one inference worker and the gateway (and, with TIMBR_MODEL_BACKEND=remote, the KServe ModelServer, or with
TIMBR_MODEL_BACKEND=triton, a real Triton Inference Server on ``triton_models/`` (tools/triton.py), that
the worker then reaches over gRPC), each as its own process with JSON logs under var/logs/. SQLite
databases (migrated to head first) and local storage live under var/. Ctrl-C stops everything. The tests use
``Stack`` to run the same processes on free ports.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.common import migrate
from tools.devbroker import free_port, start_broker, start_object_store, stop_object_store, wait_for_port


@dataclass
class Stack:
    root: Path = Path("var")
    gateway_port: int = 8000
    billing_port: int = 50051
    jobs_port: int = 50052
    kafka_port: int = 9092
    # "memory": tansu keeps topics in its process; "s3": in a local S3 server on s3_port whose
    # files under root/broker outlive a broker restart and the stack's stop (tools/devbroker.py).
    broker_storage: str = "memory"
    s3_port: int = 9094
    billing_db: str = ""
    jobs_db: str = ""
    metrics_ports: tuple[int, int, int] = (9101, 9102, 9103)  # billing, jobs, first worker
    webhooks_metrics_port: int = 9104
    # "remote": also start the KServe ModelServer; "triton": Triton Inference Server (make triton);
    # either way the workers reach it over gRPC (KServe v2 protocol).
    model_backend: str = "inprocess"
    model_http_port: int = 8080
    model_grpc_port: int = 8081
    model_metrics_port: int = 8082
    worker_env: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @classmethod
    def on_free_ports(cls, root: Path, **kw) -> Stack:
        return cls(root=root, gateway_port=free_port(), billing_port=free_port(), jobs_port=free_port(),
                   kafka_port=free_port(), s3_port=free_port(), metrics_ports=(free_port(), free_port(), free_port()),
                   webhooks_metrics_port=free_port(), **kw)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIMBR_")}
        env.update({
            "TIMBR_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.kafka_port}",
            "TIMBR_BILLING_ADDR": f"127.0.0.1:{self.billing_port}",
            "TIMBR_JOBS_ADDR": f"127.0.0.1:{self.jobs_port}",
            "TIMBR_STORAGE_ROOT": str(self.root / "storage"),
            "TIMBR_PUBLIC_URL": self.url,
            # A development stack calls webhook receivers on this machine (127.0.0.1).
            "TIMBR_WEBHOOK_ALLOW_PRIVATE": "true",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, module: str, env: dict[str, str]) -> subprocess.Popen:
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        out = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen([sys.executable, "-m", module], env={**self.env, **env}, stdout=out,
                                stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def start(self, worker: bool = True) -> Stack:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "logs").mkdir(exist_ok=True)
        if self.broker_storage == "s3":
            self.procs["s3"] = start_object_store(self.s3_port, self.root / "broker", self.root / "logs" / "s3.log")
        self.start_kafka()
        billing_db = self.billing_db or f"sqlite:///{self.root / 'billing.db'}"
        jobs_db = self.jobs_db or f"sqlite:///{self.root / 'jobs.db'}"
        # As the chart's migration hook does before the services start.
        migrate.upgrade("billing", billing_db)
        migrate.upgrade("jobs", jobs_db)
        self._spawn("billing", "services.billing", {
            "TIMBR_GRPC_LISTEN": f"127.0.0.1:{self.billing_port}", "TIMBR_METRICS_PORT": str(self.metrics_ports[0]),
            "TIMBR_DATABASE_URL": billing_db})
        self._spawn("jobs", "services.jobs", {
            "TIMBR_GRPC_LISTEN": f"127.0.0.1:{self.jobs_port}", "TIMBR_METRICS_PORT": str(self.metrics_ports[1]),
            "TIMBR_DATABASE_URL": jobs_db})
        self._spawn("webhooks", "services.webhooks", {
            "TIMBR_METRICS_PORT": str(self.webhooks_metrics_port), "TIMBR_DATABASE_URL": jobs_db})
        self._spawn("gateway", "services.gateway", {"TIMBR_PORT": str(self.gateway_port)})
        ports = [self.billing_port, self.jobs_port, self.gateway_port]
        if self.model_backend == "remote":
            self._spawn("model_server", "services.inference.model_server", {
                "TIMBR_MODEL_SERVER_HTTP_PORT": str(self.model_http_port),
                "TIMBR_MODEL_SERVER_GRPC_PORT": str(self.model_grpc_port)})
            ports.append(self.model_grpc_port)
        elif self.model_backend == "triton":
            self._spawn("triton", "tools.triton", {
                "TIMBR_TRITON_HTTP_PORT": str(self.model_http_port),
                "TIMBR_TRITON_GRPC_PORT": str(self.model_grpc_port),
                "TIMBR_TRITON_METRICS_PORT": str(self.model_metrics_port)})
            ports.append(self.model_grpc_port)
        if worker:
            self.start_worker()
        for port in ports:
            self._wait(port, timeout_s=300 if port == self.model_grpc_port else 60)
        self._check_alive()   # an open port may be another process's: each service must still run
        return self

    def start_kafka(self) -> subprocess.Popen:
        s3_port = self.s3_port if self.broker_storage == "s3" else None
        self.procs["kafka"] = start_broker(self.kafka_port, self.root / "logs" / "kafka.log", s3_port)
        return self.procs["kafka"]

    def start_worker(self, name: str = "worker", **env: str) -> subprocess.Popen:
        remote = ({"TIMBR_MODEL_BACKEND": "remote", "TIMBR_MODEL_URL": f"127.0.0.1:{self.model_grpc_port}"}
                  if self.model_backend in ("remote", "triton") else {})
        return self._spawn(name, "services.inference", {
            "TIMBR_METRICS_PORT": str(self.metrics_ports[2]) if name == "worker" else "0",
            "TIMBR_WORKDIR": str(self.root / "work"), **remote, **self.worker_env, **env})

    def _wait(self, port: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                wait_for_port("127.0.0.1", port, timeout_s=0.5)
                return
            except TimeoutError:
                continue
        raise TimeoutError(f"port {port} did not open")

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.root}/logs/{name}.log")

    def stop(self) -> None:
        # The S3 server last, as the broker may write to it while it stops.
        first = [p for name, p in self.procs.items() if name != "s3"]
        for proc in reversed(first):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in first:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if "s3" in self.procs:
            stop_object_store(self.procs["s3"])
        self.procs.clear()


BANNER = """
Timbr is running: REST API {url} (Swagger UI {url}/docs). Logs: {logs}/.

  Create an account with credits and a token:
    .venv/bin/timbr-admin create-account "me" --credits 3600
  Then:
    curl -H "Authorization: TBR_..." -F file=@speech.wav {url}/v1/upload
    curl -H "Authorization: TBR_..." -H 'content-type: application/json' \\
         -d '{{"file_id": "file_..."}}' {url}/v1/audio/enhance
    curl -H "Authorization: TBR_..." {url}/v1/jobs/job_...

Ctrl-C stops everything.
"""


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)  # stop the children on SIGTERM as on Ctrl-C
    stack = Stack(model_backend=os.environ.get("TIMBR_MODEL_BACKEND", "inprocess"),
                  broker_storage=os.environ.get("TIMBR_DEV_BROKER_STORAGE", "s3"))
    try:
        stack.start()
        print(BANNER.format(url=stack.url, logs=stack.root / "logs"), flush=True)
        while True:
            for name, proc in stack.procs.items():
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; see var/logs/{name}.log", file=sys.stderr)
                    return
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
