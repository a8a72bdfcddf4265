"""``TIMBR_MODEL_BACKEND=triton make run``: the stack of ``make run`` (tools.devstack.Stack) with
the worker reaching a real Triton Inference Server over tritonclient, as in production.

An enhance job goes through the REST API; its result must equal the same job run in-process on
the same input (within ``AUDIO_ATOL``, as tests/serving/test_pipelines_remote.py), and Triton's own
metrics must show the speech enhancer's executions.
"""

from __future__ import annotations

import io

import httpx
import numpy as np
import soundfile as sf

from services.inference.pipelines.enhance import EnhancePipeline
from tests.conftest import Account
from tests.serving.support import free_port, noisy, speech
from tests.serving.test_pipelines_remote import AUDIO_ATOL, run_job
from tests.support.api import upload_ok, wait_job
from tools.devstack import Stack


def test_enhance_job_end_to_end_on_triton(tmp_path, pg_schemas, inprocess):
    import grpc

    from services.common.grpc_util import channel
    from services.common.pb.timbr.v1 import billing_pb2_grpc

    src = tmp_path / "noisy.wav"
    sf.write(src, noisy(speech(48000), 5.0)[: 48000 * 3], 48000, subtype="FLOAT")
    metrics_port = free_port()
    stack = Stack.on_free_ports(tmp_path / "stack", billing_db=pg_schemas.new(), jobs_db=pg_schemas.new(),
                                model_backend="triton", model_http_port=free_port(),
                                model_grpc_port=free_port(), model_metrics_port=metrics_port,
                                extra_env={"TIMBR_TRITON_MODELS": "speech_enhancer"})
    stack.start()
    try:
        with (channel(f"127.0.0.1:{stack.billing_port}") as ch,
              httpx.Client(base_url=stack.url, timeout=60) as api):
            grpc.channel_ready_future(ch).result(timeout=30)
            acc = Account(billing_pb2_grpc.BillingStub(ch), 100)
            f = upload_ok(api, acc.headers, src.read_bytes())
            r = api.post("/v1/audio/enhance", headers=acc.headers,
                         json={"file_id": f["file_id"], "noise_reduction": 1.0, "bit_depth": 32})
            assert r.status_code in (200, 201, 202), r.text
            job = wait_job(api, acc.headers, r.json()["job_id"], timeout_s=300)
            assert job["status"] == "completed", job
            audio_url = next(x["url"] for x in job["results"] if x["name"].endswith(".wav"))
            got, rate = sf.read(io.BytesIO(api.get(audio_url).content), dtype="float32", always_2d=True)
            executions = [line for line in httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text.splitlines()
                          if line.startswith('nv_inference_exec_count{model="speech_enhancer"')]
    finally:
        stack.stop()
    local = run_job(EnhancePipeline, inprocess[0], src, tmp_path / "local", "enhance",
                    {"noise_reduction": 1.0, "bit_depth": 32})
    want, want_rate = sf.read(next(r.path for r in local.values() if r.content_type.startswith("audio/")),
                              dtype="float32", always_2d=True)
    assert rate == want_rate and got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=AUDIO_ATOL, rtol=0)
    assert executions and float(executions[0].rsplit(" ", 1)[1]) >= 1
