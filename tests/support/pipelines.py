"""A pipeline the platform tests register in place of the product's, to drive the lifecycle.

It does real (tiny) audio work so results can be checked: halves the gain and reports peaks.
Behaviour by ``eq_preset`` (an enhance parameter the gateway validates): ``balanced`` succeeds,
``vocal`` fails permanently (InvalidAudio), ``bass_boost`` fails transiently every time.
``TEST_PIPELINE_STEP_S`` (env) makes each of its 10 steps sleep, for crash and cancel tests.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from services.common.audio import read_audio, write_audio
from services.common.params import EnhanceParams
from services.inference.errors import InvalidAudio
from services.inference.pipeline import JobContext, Pipeline, ResultFile


class HalfGainPipeline(Pipeline):
    job_type = "enhance"
    steps = ("decode", "process", "encode")

    def run(self, ctx: JobContext[EnhanceParams]) -> list[ResultFile]:
        preset = ctx.params.eq_preset
        if preset == "vocal":
            raise InvalidAudio("test pipeline refuses vocal")
        if preset == "bass_boost":
            raise RuntimeError("test pipeline transient failure")
        ctx.hook("decode", completed=0, total=1)
        audio, rate = read_audio(ctx.input_path)
        step_s = float(os.environ.get("TEST_PIPELINE_STEP_S", "0"))
        for i in range(10):
            time.sleep(step_s)
            ctx.hook("process", completed=i + 1, total=10)
        out = audio * 0.5
        ctx.hook("encode", completed=0, total=1)
        wav = ctx.workdir / "enhanced.wav"
        write_audio(wav, out, rate, "wav", 32)
        report = ctx.workdir / "report.json"
        report.write_text(json.dumps({"peak_in": float(np.abs(audio).max()), "peak_out": float(np.abs(out).max()),
                                      "worker_pid": os.getpid()}))
        return [ResultFile("enhanced.wav", wav, "audio/wav"), ResultFile("report.json", report, "application/json")]
