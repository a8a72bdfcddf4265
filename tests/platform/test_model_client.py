"""The in-process ModelClient: models loaded once, by name, with one error tree."""

from __future__ import annotations

import numpy as np
import pytest

from services.inference.model_client import (
    InProcessModelClient,
    Model,
    ModelError,
    ModelNotFound,
    json_output,
    parse_json_output,
)


class Doubler(Model):
    name = "doubler"
    loads = 0

    def load(self) -> None:
        Doubler.loads += 1

    def predict(self, inputs, parameters):
        if "x" not in inputs:
            raise KeyError("x")
        return {"y": inputs["x"] * parameters.get("factor", 2), "info": json_output({"n": int(inputs["x"].size)})}


def test_loads_once_and_runs_by_name():
    client = InProcessModelClient({"doubler": f"{__name__}:Doubler"})
    Doubler.loads = 0
    assert not client.is_ready("missing")
    for _ in range(3):
        out = client.infer("doubler", {"x": np.arange(3, dtype=np.float32)}, {"factor": 3})
    assert Doubler.loads == 1 and client.is_ready("doubler")
    np.testing.assert_array_equal(out["y"], [0, 3, 6])
    assert parse_json_output(out["info"]) == {"n": 3}


def test_errors_are_wrapped():
    client = InProcessModelClient({"doubler": f"{__name__}:Doubler"})
    with pytest.raises(ModelNotFound):
        client.infer("nope", {})
    with pytest.raises(ModelError, match="doubler"):
        client.infer("doubler", {"z": np.zeros(1)})
