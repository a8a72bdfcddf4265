"""A test pipeline for the model-server restart test: ten steps, each a real model call.

Registered in place of the product's ``enhance`` pipeline by the test's worker
(``TIMBR_WORKER_EXTRA_PIPELINES``). Each step sends the input, at 16 kHz, to ``vad_silero``
through ``self.models`` (the worker's ModelClient, remote in that test) and sleeps
``TEST_PIPELINE_STEP_S`` so the test can stop the model server mid-job.
"""

from __future__ import annotations

import json
import os
import time

from services.common.audio import read_audio, resample
from services.inference.pipeline import JobContext, Pipeline, ResultFile

STEPS = 10


class ModelStepsPipeline(Pipeline):
    job_type = "enhance"
    steps = ("process",)

    def run(self, ctx: JobContext) -> list[ResultFile]:
        audio, rate = read_audio(ctx.input_path)
        mono16 = resample(audio.mean(axis=0, keepdims=True), rate, 16000)[0]
        step_s = float(os.environ.get("TEST_PIPELINE_STEP_S", "0"))
        speech_frames = []
        for i in range(STEPS):
            probs = self.models.infer("vad_silero", {"audio": mono16})["probs"]
            speech_frames.append(int((probs > 0.5).sum()))
            time.sleep(step_s)
            ctx.hook("process", completed=i + 1, total=STEPS)
        report = ctx.workdir / "report.json"
        report.write_text(json.dumps({"model_calls": STEPS, "speech_frames": speech_frames,
                                      "frames": int(probs.size), "worker_pid": os.getpid()}))
        return [ResultFile("report.json", report, "application/json")]
