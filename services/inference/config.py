from pathlib import Path

from services.common.settings import CommonSettings


class WorkerSettings(CommonSettings):
    # Job types this worker serves; one consumer group per set, so deployments per type scale apart.
    worker_job_types: str = "separate,enhance,diarize"
    # Extra "job_type=module:Class" pipelines, comma separated (plug-ins and tests).
    worker_extra_pipelines: str = ""
    worker_id: str = ""
    workdir: Path = Path("var/work")
    max_attempts: int = 3          # tries of one delivery before the job fails (backoff between)
    max_deliveries: int = 3        # deliveries of one job (worker crashes) before it fails for good
    backoff_base_s: float = 2.0
    heartbeat_s: float = 30.0
    cancel_check_s: float = 5.0
    metrics_port: int = 9103
    model_backend: str = "inprocess"  # inprocess | remote
    model_url: str = "127.0.0.1:8001"

    @property
    def job_types(self) -> list[str]:
        return sorted({t.strip() for t in self.worker_job_types.split(",") if t.strip()})

    @property
    def extra_pipelines(self) -> dict[str, str]:
        pairs = (item.split("=", 1) for item in self.worker_extra_pipelines.split(",") if "=" in item)
        return {k.strip(): v.strip() for k, v in pairs}
