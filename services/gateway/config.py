from limits import parse_many
from pydantic import field_validator

from services.common.settings import CommonSettings


class GatewaySettings(CommonSettings):
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = 2 * 1024**3     # 2 GiB
    max_duration_s: float = 4 * 3600.0     # longest audio accepted
    viewer_url_ttl_s: int = 7 * 24 * 3600  # how long a job's results-page link stays valid
    # Rate limits ("limits" strings, ";" between several): per client address (every request but
    # the probes), per account, and failed authentications per address. Counters in Redis when
    # redis_url is set (shared by the replicas), else in the process.
    redis_url: str = ""
    rate_limit_prefix: str = "timbr"
    rate_limit_client: str = "50/second;1200/minute"
    rate_limit_account: str = "20/second;600/minute"
    rate_limit_auth_failures: str = "20/minute"
    # Addresses whose X-Forwarded-For is believed (the ingress controller's), for the client limit.
    forwarded_allow_ips: str = "127.0.0.1"
    # 0: /metrics on the API port (make run). A port: /metrics only there, off the public API
    # and its ingress (the chart's default).
    metrics_port: int = 0
    # Swagger UI (/docs) and /openapi.json on the API; false keeps them off a public ingress.
    docs_enabled: bool = True

    @field_validator("rate_limit_client", "rate_limit_account", "rate_limit_auth_failures")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse_many(value)  # ValueError on a malformed limit: refused at start-up, not at the first request
        return value
