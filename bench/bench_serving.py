"""Serving figures: in-process models vs the same models through the KServe ModelServer.

Generates its own material (espeak-ng speech, white noise), starts
``python -m services.inference.model_server`` in a subprocess on free ports, and reaches it
with ``TritonModelClient`` (tritonclient.grpc, the same client that talks to Triton). Prints

* per model: median latency of one request in-process and remote, the remote overhead, and
  the realtime factor (processing time / audio duration) of each;
* "batching several requests": 4 requests sent one after another vs 4 sent at once, remote
  (the server runs TIMBR_MODEL_SERVER_MAX_CONCURRENCY=2 requests per model at once);
* the enhance, diarize and separate pipelines end to end on each backend side by side:
  in-process, the KServe ModelServer and a real Triton Inference Server (tools/triton.py, make
  triton): realtime factor and the share of the wall time the server spent answering
  (KServe: timbr_model_server_predict_seconds; Triton: nv_inference_request_duration_us).

Runs are interleaved (local, remote, local, remote, ...) and the median taken, since the
2-core machine is shared. Everything runs on this machine's CPU.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

REPEATS = 3
MODELS = ("speech_enhancer", "vad_ten", "vad_silero", "speaker_embedding", "whisper", "music_effect_separator")


def _median_times(fn, repeats: int = REPEATS) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _interleaved(local_fn, remote_fn, repeats: int = REPEATS) -> tuple[float, float]:
    local_fn(), remote_fn()  # warm-up both
    lt, rt = [], []
    for _ in range(repeats):
        for fn, acc in ((local_fn, lt), (remote_fn, rt)):
            start = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - start)
    return statistics.median(lt), statistics.median(rt)


def _dialogue(root: Path) -> tuple[Path, float]:
    parts, rate = [], 16000
    lines = [("en+m3", "Good morning, how are you doing today? I wanted to ask about the report."),
             ("en+f4", "I am fine, thank you. The report is nearly finished, I will send it tonight."),
             ("en+m3", "Great. Shall we meet at the station tomorrow at nine to go through it?"),
             ("en+f4", "Nine is good for me. I will bring the printed copies and the charts.")]
    for i, (voice, text) in enumerate(lines):
        wav = root / f"line{i}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), text], check=True)
        x, rate = sf.read(wav, dtype="float32")
        parts += [x, np.zeros(rate // 3, np.float32)]
    audio = np.concatenate(parts)
    src = root / "dialogue.wav"
    sf.write(src, audio, rate)
    return src, audio.size / rate


def main() -> None:
    import services.inference.models  # noqa: F401 - fills MODEL_REGISTRY
    from services.inference.model_client import InProcessModelClient
    from services.inference.remote_client import TritonModelClient
    from tests.serving.support import ModelServerProcess, example_requests, speech

    local = InProcessModelClient()
    served = []
    for name in MODELS:
        try:
            local.get(name)
            served.append(name)
        except Exception as exc:  # noqa: BLE001 - reported, the others still run
            print(f"  {name}: does not load here ({exc}); skipped")
    root = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    server = ModelServerProcess(served, root / "server.log", TIMBR_MODEL_SERVER_MAX_CONCURRENCY="2")
    t0 = time.perf_counter()
    server.start().wait_ready(300)
    print(f"model server: {len(served)} models ready in {time.perf_counter() - t0:.1f} s "
          f"(process start, kserve import, model loads)")
    remote = TritonModelClient(server.url, timeout_s=300)
    try:
        s16, s48 = speech(16000), speech(48000)
        dur = s16.size / 16000
        print(f"\nper request ({dur:.1f} s of speech; median of {REPEATS}, interleaved)")
        print(f"  {'model':<24}{'in-process':>12}{'remote':>10}{'overhead':>10}{'RTF local':>11}{'RTF remote':>12}")
        requests = example_requests(s16, s48)
        for name in served:
            inputs, params = requests[name][-1]
            lt, rt = _interleaved(lambda: local.infer(name, inputs, params),  # noqa: B023
                                  lambda: remote.infer(name, inputs, params))  # noqa: B023
            print(f"  {name:<24}{lt * 1000:>10.0f}ms{rt * 1000:>8.0f}ms{(rt / lt - 1) * 100:>9.0f}%"
                  f"{lt / dur:>11.3f}{rt / dur:>12.3f}")

        print("\nbatching several requests (4 requests, remote)")
        for name in [n for n in ("speech_enhancer", "speaker_embedding", "whisper") if n in served]:
            inputs, params = requests[name][-1]
            one = lambda: remote.infer(name, inputs, params)  # noqa: B023
            seq = _median_times(lambda: [one() for _ in range(4)], 1)  # noqa: B023
            with ThreadPoolExecutor(4) as pool:
                par = _median_times(lambda: list(pool.map(lambda _: one(), range(4))), 1)  # noqa: B023
            print(f"  {name:<24} one after another {seq:6.2f} s ({4 * dur / seq:5.1f} s audio/s), "
                  f"4 at once {par:6.2f} s ({4 * dur / par:5.1f} s audio/s)")

    finally:
        remote.close()
        server.stop()
    pipelines_by_backend(served, root)


def _server_seconds(metrics_url: str, family: str, scale: float) -> float:
    """The server's own cumulative request time, summed over its models."""
    import httpx

    text = httpx.get(metrics_url, timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(family + "{")) * scale


def pipelines_by_backend(served: list[str], root: Path) -> None:
    """Each pipeline end to end on each backend: RTF, and the share of wall time spent in the server."""
    from services.inference.model_client import InProcessModelClient
    from services.inference.pipeline import JobContext, parse_params
    from services.inference.pipelines.diarize import DiarizePipeline
    from services.inference.pipelines.enhance import EnhancePipeline
    from services.inference.pipelines.separate import SeparatePipeline
    from services.inference.remote_client import TritonModelClient
    from tests.serving.support import noisy, speech, start_server

    servers = {b: start_server(b, served, root / b) for b in ("kserve", "triton")}
    for srv in servers.values():
        srv.wait_ready(600)
    clients = {"in-process": InProcessModelClient(),
               **{b: TritonModelClient(srv.url, timeout_s=600) for b, srv in servers.items()}}
    server_time = {"in-process": lambda: 0.0,
                   "kserve": lambda: _server_seconds(f"{servers['kserve'].http}/metrics",
                                                     "timbr_model_server_predict_seconds_sum", 1.0),
                   "triton": lambda: _server_seconds(servers["triton"].metrics,
                                                     "nv_inference_request_duration_us", 1e-6)}
    s48 = speech(48000)
    noisy_src = root / "noisy.wav"
    sf.write(noisy_src, np.tile(noisy(s48, 5.0), 3), 48000, subtype="FLOAT")
    dialogue, _ = _dialogue(root)
    cases = [("enhance", EnhancePipeline, noisy_src, {}),
             ("diarize", DiarizePipeline, dialogue, {"language": "en"}),
             ("separate", SeparatePipeline, noisy_src, {"separation_type": "dialogue-music-effect"})]
    counter = iter(range(10_000))
    print("\npipelines end to end by backend (median of 2 after a warm-up; RTF = time / audio; "
          "server = share of the wall time the server spent on requests)")
    print(f"  {'pipeline':<10}" + "".join(f"{b:>28}" for b in clients))
    try:
        for job_type, cls, src, params in cases:
            length = sf.info(src).duration
            walls: dict[str, list[float]] = {b: [] for b in clients}
            shares: dict[str, list[float]] = {b: [] for b in clients}
            for rep in range(3):
                for backend, client in clients.items():
                    wd = root / "jobs" / f"{job_type}{next(counter)}"
                    wd.mkdir(parents=True)
                    ctx = JobContext("bench", "bench", job_type, parse_params(job_type, {"file_id": "f", **params}),
                                     {"file": src}, wd)
                    before, start = server_time[backend](), time.perf_counter()
                    cls(client).run(ctx)
                    wall = time.perf_counter() - start
                    if rep:  # the first round warms each backend up
                        walls[backend].append(wall)
                        shares[backend].append((server_time[backend]() - before) / wall)
            cells = [f"RTF {statistics.median(walls[b]) / length:.3f}"
                     + (f", server {statistics.median(shares[b]) * 100:3.0f} %" if b != "in-process" else "")
                     for b in clients]
            print(f"  {job_type:<10}" + "".join(f"{c:>28}" for c in cells) + f"   ({length:.0f} s)")
    finally:
        for backend in ("kserve", "triton"):
            clients[backend].close()
            servers[backend].stop()


if __name__ == "__main__":
    main()
