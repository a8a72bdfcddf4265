"""Gateway metrics, declared once."""

from prometheus_client import Counter, Histogram

HTTP_LATENCY = Histogram("timbr_http_request_duration_seconds", "HTTP request latency",
                         ["method", "route", "status"])
UPLOAD_BYTES = Counter("timbr_upload_bytes_total", "Bytes uploaded")
RATE_LIMITED = Counter("timbr_rate_limited_total", "Requests refused with 429", ["scope"])
