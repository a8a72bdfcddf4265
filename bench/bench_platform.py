"""Platform figures: upload throughput and gateway memory, job-creation latency, and the
end-to-end overhead of a job (create -> worker -> completed) with a trivial pipeline.

Runs the real stack (tansu, billing, jobs, gateway, one worker) on SQLite and local storage,
the embedded defaults, on free ports in a temporary folder.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

from services.common.pb.timbr.v1 import billing_pb2, billing_pb2_grpc
from tools.devstack import Stack


def _rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _wav(path: Path, seconds: float, rate: int = 48000, channels: int = 2) -> Path:
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", rate, channels, "PCM_16") as f:
        for _ in range(int(seconds // 10)):
            f.write((0.1 * rng.standard_normal((rate * 10, channels))).astype(np.float32))
    return path


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


# The bench times the platform, not the rate limiter: one client sends requests back to back.
BENCH_LIMITS = {"TIMBR_RATE_LIMIT_CLIENT": "100000/second", "TIMBR_RATE_LIMIT_ACCOUNT": "100000/second"}


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="timbr-bench-"))
    stack = Stack.on_free_ports(root, worker_env={
        "TIMBR_WORKER_JOB_TYPES": "", "TIMBR_WORKER_EXTRA_PIPELINES": "enhance=tests.support.pipelines:HalfGainPipeline"},
        extra_env=BENCH_LIMITS)
    stack.start()
    try:
        import grpc

        from services.common.grpc_util import channel

        ch = channel(f"127.0.0.1:{stack.billing_port}")
        grpc.channel_ready_future(ch).result(timeout=30)
        billing = billing_pb2_grpc.BillingStub(ch)
        acc = billing.CreateAccount(billing_pb2.CreateAccountRequest(name="bench"))
        token = billing.IssueToken(billing_pb2.IssueTokenRequest(account_id=acc.account_id)).token
        billing.GrantCredits(billing_pb2.GrantCreditsRequest(account_id=acc.account_id, credits=10_000_000))
        headers = {"Authorization": token}
        api = httpx.Client(base_url=stack.url, timeout=300)

        gateway_pid = stack.procs["gateway"].pid
        rss_before = _rss_peak_mb(gateway_pid)
        print(f"{'upload':<28}{'size MB':>10}{'seconds':>10}{'MB/s':>10}{'gateway peak RSS MB':>22}")
        small_id = None
        for minutes in (1, 10, 30):
            path = _wav(root / f"up{minutes}.wav", minutes * 60)
            size_mb = path.stat().st_size / 1e6
            start = time.perf_counter()
            with open(path, "rb") as f:
                r = api.post("/v1/upload", headers=headers, files={"file": (path.name, f, "audio/wav")})
            elapsed = time.perf_counter() - start
            r.raise_for_status()
            small_id = small_id or r.json()["file_id"]
            print(f"{f'{minutes} min stereo 48 kHz WAV':<28}{size_mb:>10.1f}{elapsed:>10.2f}{size_mb / elapsed:>10.1f}"
                  f"{_rss_peak_mb(gateway_pid):>22.0f}")
            path.unlink()
        print(f"gateway peak RSS before uploads: {rss_before:.0f} MB (constant-memory upload: the peak does "
              "not grow with file size)")

        tiny = api.post("/v1/upload", headers=headers, files={"file": ("t.wav", _tiny(), "audio/wav")}).json()
        latencies = []
        for _ in range(200):
            start = time.perf_counter()
            r = api.post("/v1/audio/enhance", headers=headers, json={"file_id": tiny["file_id"]})
            latencies.append((time.perf_counter() - start) * 1000)
            r.raise_for_status()
        print(f"job creation latency over {len(latencies)} jobs (ms): p50 {_pct(latencies, 50):.1f}  "
              f"p95 {_pct(latencies, 95):.1f}  p99 {_pct(latencies, 99):.1f}  mean {statistics.mean(latencies):.1f}")

        # Drain the queue, then time single jobs end to end with the trivial pipeline.
        _wait_idle(api, headers)
        e2e = []
        for _ in range(10):
            start = time.perf_counter()
            job_id = api.post("/v1/audio/enhance", headers=headers, json={"file_id": tiny["file_id"]}).json()["job_id"]
            while api.get(f"/v1/jobs/{job_id}", headers=headers).json()["status"] not in ("completed", "failed"):
                time.sleep(0.02)
            e2e.append(time.perf_counter() - start)
        print(f"end-to-end platform overhead per job (create -> completed, 1 s audio, trivial pipeline): "
              f"p50 {_pct(e2e, 50):.2f} s  max {max(e2e):.2f} s")
        idempotency_and_webhooks(api, headers, tiny["file_id"])
    finally:
        stack.stop()


def idempotency_and_webhooks(api: httpx.Client, headers: dict, file_id: str, n: int = 100) -> None:
    """Job creation without a key (the baseline), with a fresh Idempotency-Key each time, and
    replays of one key; then the delay from a job's end to its webhook reaching a receiver on
    loopback (the devstack allows it)."""
    import uuid

    from tests.support.receiver import Receiver

    _wait_idle(api, headers)
    body = {"file_id": file_id}
    timed = {}
    for name, key in (("no key (baseline)", lambda i: None), ("fresh key", lambda i: str(uuid.uuid4())),
                      ("replay of one key", lambda i: "bench-replay")):
        latencies = []
        for i in range(n):
            k = key(i)
            start = time.perf_counter()
            r = api.post("/v1/audio/enhance", headers={**headers, **({"Idempotency-Key": k} if k else {})},
                         json=body)
            latencies.append((time.perf_counter() - start) * 1000)
            r.raise_for_status()
        timed[name] = latencies
    for name, latencies in timed.items():
        print(f"job creation, {name}, {n} requests (ms): p50 {_pct(latencies, 50):.1f}  p95 {_pct(latencies, 95):.1f}")

    _wait_idle(api, headers)
    receiver = Receiver()
    try:
        delays = []
        for _ in range(10):
            job_id = api.post("/v1/audio/enhance", headers=headers,
                              json={**body, "webhook_url": receiver.url("/bench")}).json()["job_id"]
            got = receiver.wait("/bench", len(delays) + 1, timeout_s=120)[-1]
            job = api.get(f"/v1/jobs/{job_id}", headers=headers).json()
            import datetime as dt

            finished = dt.datetime.fromisoformat(job["finished_at"]).timestamp()
            delays.append(got.at - finished)
        print(f"webhook delay, job end -> receiver (10 jobs, loopback): p50 {_pct(delays, 50):.2f} s  "
              f"max {max(delays):.2f} s")
    finally:
        receiver.close()


def _tiny() -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, np.zeros(16000, np.float32) + 0.01, 16000, format="WAV")
    return buf.getvalue()


def _wait_idle(api: httpx.Client, headers: dict, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = api.get("/v1/jobs", headers=headers, params={"limit": 500}).json()["jobs"]
        if all(j["status"] in ("completed", "failed", "cancelled") for j in jobs):
            return
        time.sleep(0.5)


if __name__ == "__main__":
    main()
