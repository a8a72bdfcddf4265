"""Model server metrics, declared once; exposed on the HTTP port at ``/metrics``.

KServe adds its own ``request_predict_seconds{model_name}`` beside these.
"""

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "timbr_model_server_requests_total", "Inference requests by model and outcome", ["model", "outcome"]
)
PREDICT_SECONDS = Histogram(
    "timbr_model_server_predict_seconds",
    "Time in Model.predict (queueing excluded)",
    ["model"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
QUEUE_SECONDS = Histogram(
    "timbr_model_server_queue_seconds",
    "Time a request waited for a free model slot",
    ["model"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60),
)
INFLIGHT = Gauge("timbr_model_server_inflight_requests", "Requests queued or running", ["model"])
MODEL_READY = Gauge("timbr_model_server_model_ready", "1 once the model is loaded", ["model"])
LOAD_SECONDS = Gauge("timbr_model_server_load_seconds", "Time Model.load took", ["model"])
