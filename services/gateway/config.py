from services.common.settings import CommonSettings


class GatewaySettings(CommonSettings):
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = 2 * 1024**3     # 2 GiB
    max_duration_s: float = 4 * 3600.0     # longest audio accepted
    viewer_url_ttl_s: int = 7 * 24 * 3600  # how long a job's results-page link stays valid
