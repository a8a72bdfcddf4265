"""Serving figures: in-process models vs the same models through the KServe ModelServer.

Generates its own material (espeak-ng speech, white noise), starts
``python -m services.inference.model_server`` in a subprocess on free ports, and reaches it
with ``TritonModelClient`` (tritonclient.grpc, the same client that talks to Triton). Prints

* per model: median latency of one request in-process and remote, the remote overhead, and
  the realtime factor (processing time / audio duration) of each;
* "batching several requests": 4 requests sent one after another vs 4 sent at once, remote
  (the server runs TIMBR_MODEL_SERVER_MAX_CONCURRENCY=2 requests per model at once);
* the enhance and diarize pipelines end to end, in-process vs remote: realtime factors and the
  overhead of the remote path (goal: < 15 %).

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
    from services.inference.pipeline import JobContext, parse_params
    from services.inference.pipelines.diarize import DiarizePipeline
    from services.inference.pipelines.enhance import EnhancePipeline
    from services.inference.remote_client import TritonModelClient
    from tests.serving.support import ModelServerProcess, example_requests, noisy, speech

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

        print("\npipelines end to end (in-process vs remote; median of 3, interleaved)")
        work = root / "jobs"
        counter = iter(range(10_000))

        def job(pipeline_cls, models, src, job_type, params):
            wd = work / f"{job_type}{next(counter)}"
            wd.mkdir(parents=True)
            ctx = JobContext("bench", "bench", job_type, parse_params(job_type, {"file_id": "f", **params}),
                             {"file": src}, wd)
            return pipeline_cls(models).run(ctx)

        if "speech_enhancer" in served:
            src = root / "noisy.wav"
            x = np.tile(noisy(s48, 5.0), 3)
            sf.write(src, x, 48000, subtype="FLOAT")
            length = x.size / 48000
            lt, rt = _interleaved(lambda: job(EnhancePipeline, local, src, "enhance", {}),
                                  lambda: job(EnhancePipeline, remote, src, "enhance", {}))
            print(f"  enhance ({length:.0f} s, 48 kHz mono): RTF in-process {lt / length:.3f}, "
                  f"remote {rt / length:.3f}, overhead {(rt / lt - 1) * 100:+.1f} %")
        if {"whisper", "speaker_embedding", "vad_ten"} <= set(served):
            src, length = _dialogue(root)
            params = {"language": "en"}
            lt, rt = _interleaved(lambda: job(DiarizePipeline, local, src, "diarize", params),
                                  lambda: job(DiarizePipeline, remote, src, "diarize", params))
            print(f"  diarize ({length:.0f} s, 2 voices): RTF in-process {lt / length:.3f}, "
                  f"remote {rt / length:.3f}, overhead {(rt / lt - 1) * 100:+.1f} %")
    finally:
        remote.close()
        server.stop()


if __name__ == "__main__":
    main()
