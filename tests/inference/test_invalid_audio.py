"""Every pipeline refuses NaN/Inf samples at once with ``invalid_audio`` (issue 11).

Before, separate fed them to the models, failed with a model error and was retried three times
into ``processing_failed``; enhance replaced them with zeros. No model is reached: the decoder
(``services.common.audio.iter_blocks``) refuses the first block that holds one.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from services.inference.errors import InvalidAudio, job_error
from services.inference.model_client import InProcessModelClient
from services.inference.pipeline import JobContext, parse_params
from services.inference.pipelines.diarize import DiarizePipeline
from services.inference.pipelines.enhance import EnhancePipeline
from services.inference.pipelines.separate import SeparatePipeline


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("pipeline_cls", [SeparatePipeline, EnhancePipeline, DiarizePipeline],
                         ids=lambda c: c.job_type)
def test_non_finite_samples_are_invalid_audio(pipeline_cls, value, tmp_path):
    x = 0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * 48000) / 48000)
    x = np.stack([x, x])
    x[1, 50000] = value
    src = tmp_path / "broken.wav"
    sf.write(src, x.T.astype(np.float32), 48000, subtype="FLOAT")
    models = InProcessModelClient(registry={})          # any model call would fail as ModelNotFound
    job_type = pipeline_cls.job_type
    ctx = JobContext("j", "a", job_type, parse_params(job_type, {"file_id": "f"}), {"file": src}, tmp_path)
    with pytest.raises(InvalidAudio) as err:
        pipeline_cls(models).run(ctx)
    failure = job_error(err.value)
    assert (failure.code, failure.retryable) == ("invalid_audio", False)
    assert "NaN or infinite" in failure.message
