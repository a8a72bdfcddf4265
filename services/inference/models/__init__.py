"""Models known by name to every ModelClient: name -> "module:Class" (imported lazily)."""

from services.inference.model_client import register_model

# Each entry is owned by the pipeline area that needs it; see each module's docstring.
_MODELS = {
    "speech_enhancer": "services.inference.models.deepfilternet:DeepFilterNet3",
}

for _name, _target in _MODELS.items():
    register_model(_name, _target)
