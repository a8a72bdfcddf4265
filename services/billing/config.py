from services.common.settings import CommonSettings


class BillingSettings(CommonSettings):
    database_url: str = "sqlite:///var/billing.db"
    grpc_listen: str = "127.0.0.1:50051"
    metrics_port: int = 9101
