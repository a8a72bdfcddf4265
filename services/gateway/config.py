from services.common.settings import CommonSettings


class GatewaySettings(CommonSettings):
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = 2 * 1024**3     # 2 GiB
    max_duration_s: float = 4 * 3600.0     # longest audio accepted
    viewer_url_ttl_s: int = 7 * 24 * 3600  # how long a job's results-page link stays valid
    # 0: /metrics on the API port (make run). A port: /metrics only there, off the public API
    # and its ingress (the chart's default).
    metrics_port: int = 0
    # Swagger UI (/docs) and /openapi.json on the API; false keeps them off a public ingress.
    docs_enabled: bool = True
