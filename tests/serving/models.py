"""Models the serving tests add to a server (``TIMBR_MODEL_SERVER_EXTRA_MODELS``): real Model
subclasses with a slow or failing ``load()``, to test readiness and load failures."""

from __future__ import annotations

import os
import time

import numpy as np

from services.inference.model_client import Model


class SlowLoadingGain(Model):
    """Loads in ``TEST_LOAD_S`` seconds, then halves its input."""

    name = "slow_gain"

    def load(self) -> None:
        time.sleep(float(os.environ.get("TEST_LOAD_S", "3")))
        self.ready = True

    def predict(self, inputs, parameters):
        return {"audio": (np.asarray(inputs["audio"], np.float32) * 0.5).astype(np.float32)}


class BrokenLoad(Model):
    name = "broken"

    def load(self) -> None:
        raise RuntimeError("weights are missing")

    def predict(self, inputs, parameters):  # pragma: no cover - never loads
        raise AssertionError
