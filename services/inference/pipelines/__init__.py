"""The product's pipelines by job type: "module:Class", imported when a worker starts."""

PIPELINES: dict[str, str] = {
    "enhance": "services.inference.pipelines.enhance:EnhancePipeline",
    "diarize": "services.inference.pipelines.diarize:DiarizePipeline",
    "separate": "services.inference.pipelines.separate:SeparatePipeline",
}
