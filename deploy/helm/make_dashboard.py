"""Write deploy/helm/timbr/dashboards/timbr.json, the Grafana dashboard the chart ships.

The panels query the metrics the services declare (services/*/metrics.py):
timbr_http_request_duration_seconds{method,route,status}, timbr_jobs_total{job_type,status},
timbr_kafka_consumer_lag{topic}, timbr_pipeline_realtime_factor{job_type},
timbr_credits_total{kind}, timbr_queue_lag_messages{group,partition}, plus worker outcomes, gRPC
latency, the jobs outbox, the model server and Triton's own GPU metrics, the webhook dispatcher
(timbr_webhook_attempts_total{outcome}, timbr_webhook_pending, timbr_webhook_consumer_lag,
timbr_webhook_attempt_seconds) and removed objects (timbr_objects_removed_total{kind,reason}).

    python deploy/helm/make_dashboard.py
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "timbr" / "dashboards" / "timbr.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
H = "timbr_http_request_duration_seconds"
RATE = "[$__rate_interval]"


class Layout:
    """Panels on Grafana's 24-column grid, filled row by row."""

    def __init__(self) -> None:
        self.panels: list[dict] = []
        self.x = 0
        self.y = 0

    def _next_id(self) -> int:
        return len(self.panels) + 1

    def row(self, title: str) -> None:
        self._wrap(24)
        self.panels.append({"id": self._next_id(), "type": "row", "title": title, "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})
        self.y += 1

    def _wrap(self, width: int) -> None:
        if self.x and self.x + width > 24:
            self.x = 0
            self.y += 8

    def panel(self, title: str, targets: list[tuple[str, str]], unit: str, *, width: int = 12,
              description: str = "", stack: bool = False, kind: str = "timeseries") -> None:
        self._wrap(width)
        panel = {
            "id": self._next_id(), "type": kind, "title": title, "description": description, "datasource": DS,
            "gridPos": {"h": 8, "w": width, "x": self.x, "y": self.y},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": chr(65 + i), "datasource": DS, "expr": expr, "legendFormat": legend}
                        for i, (expr, legend) in enumerate(targets)],
        }
        if kind == "timeseries":
            panel["fieldConfig"]["defaults"]["custom"] = {
                "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                "stacking": {"mode": "normal" if stack else "none"}}
            panel["options"] = {
                "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max", "lastNotNull"]},
                "tooltip": {"mode": "multi", "sort": "desc"}}
        else:
            panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                                "colorMode": "value", "graphMode": "area", "textMode": "auto"}
        self.panels.append(panel)
        self.x += width
        if self.x >= 24:
            self.x = 0
            self.y += 8


def quantiles(metric: str, by: str, qs=(0.5, 0.95), selector: str = "") -> list[tuple[str, str]]:
    legend = " ".join(f"{{{{{label.strip()}}}}}" for label in by.split(","))
    return [(f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{selector}{RATE})))",
             f"p{round(q * 100)} {legend}") for q in qs]


def build() -> dict:
    g = Layout()
    g.row("API gateway")
    g.panel("HTTP request latency by route (p50 / p95 / p99)",
            quantiles(H, "route", (0.5, 0.95, 0.99), '{route=~"$route"}'), "s",
            description=f"{H}{{method,route,status}}")
    g.panel("HTTP requests by method / route / status",
            [(f'sum by (method, route, status) (rate({H}_count{{route=~"$route"}}{RATE}))',
              "{{method}} {{route}} {{status}}")], "reqps", stack=True)
    g.panel("HTTP 5xx ratio",
            [(f'sum(rate({H}_count{{status=~"5.."}}{RATE})) / clamp_min(sum(rate({H}_count{RATE})), 1e-9)',
              "5xx")], "percentunit", width=6, kind="stat")
    g.panel("HTTP 4xx ratio",
            [(f'sum(rate({H}_count{{status=~"4.."}}{RATE})) / clamp_min(sum(rate({H}_count{RATE})), 1e-9)',
              "4xx")], "percentunit", width=6, kind="stat")
    g.panel("gRPC latency by service / method (p95)",
            quantiles("timbr_grpc_request_duration_seconds", "service, method", (0.95,)), "s",
            description="timbr_grpc_request_duration_seconds{service,method,code}: jobs and billing")

    g.row("Jobs and queue")
    g.panel("Jobs by type and status (per minute)",
            [(f'sum by (job_type, status) (rate(timbr_jobs_total{{job_type=~"$job_type"}}{RATE})) * 60',
              "{{job_type}} {{status}}")], "short", stack=True, description="timbr_jobs_total{job_type,status}")
    failed = f'sum by (job_type) (rate(timbr_jobs_total{{job_type=~"$job_type", status="failed"}}{RATE}))'
    ended = f'sum by (job_type) (rate(timbr_jobs_total{{job_type=~"$job_type", status=~"completed|failed"}}{RATE}))'
    g.panel("Job failure ratio by type", [(f"{failed} / clamp_min({ended}, 1e-9)", "{{job_type}}")], "percentunit")
    g.panel("Kafka consumer lag by topic", [("max by (topic) (timbr_kafka_consumer_lag)", "{{topic}}")], "short",
            description="timbr_kafka_consumer_lag{topic}: messages behind the end of the topic")
    g.panel("Work queue lag by worker group", [("sum by (group) (timbr_queue_lag_messages)", "{{group}}")],
            "short", description="timbr_queue_lag_messages{group,partition}: jobs on audio.jobs.requested a "
                                 "worker group has not committed (what KEDA scales on)")
    g.panel("Outbox messages not yet published", [("sum(timbr_outbox_pending)", "jobs"),
                                                  ("sum(timbr_billing_outbox_pending)", "credits")], "short")
    g.panel("Credits by kind (per hour)",
            [("sum by (kind) (increase(timbr_credits_total[1h]))", "{{kind}}")], "short",
            description="timbr_credits_total{kind}: reserved, confirmed, released")
    g.panel("Worker outcomes by job type (per minute)",
            [(f'sum by (job_type, outcome) (rate(timbr_worker_jobs_total{{job_type=~"$job_type"}}{RATE})) * 60',
              "{{job_type}} {{outcome}}")], "short", stack=True)

    g.row("Pipelines and models")
    g.panel("Realtime factor per pipeline (p50 / p95, lower is faster)",
            quantiles("timbr_pipeline_realtime_factor", "job_type", selector='{job_type=~"$job_type"}'), "x",
            description="timbr_pipeline_realtime_factor{job_type}: processing seconds per second of audio")
    g.panel("Model server predict time and queue wait (p95)",
            quantiles("timbr_model_server_predict_seconds", "model", (0.95,))
            + quantiles("timbr_model_server_queue_seconds", "model", (0.95,)), "s",
            description="KServe ModelServer (CPU); empty when models run in process or on Triton")
    g.panel("Triton GPU utilisation", [("avg by (gpu_uuid) (nv_gpu_utilization)", "{{gpu_uuid}}")],
            "percentunit", description="Triton's own metrics (port 8002); empty without Triton")
    g.panel("Triton inference requests by model",
            [(f"sum by (model) (rate(nv_inference_request_success{RATE}))", "ok {{model}}"),
             (f"sum by (model) (rate(nv_inference_request_failure{RATE}))", "failed {{model}}")], "reqps")

    g.row("Webhooks and file lifecycle")
    g.panel("Webhook attempts by outcome (per minute)",
            [(f"sum by (outcome) (rate(timbr_webhook_attempts_total{RATE})) * 60", "{{outcome}}")], "short",
            stack=True, description="delivered (2xx), retry (timeout, connection error, 429, 5xx), failed "
            "(other answers, refused targets, 24 h of retries)")
    g.panel("Webhook deliveries pending and dispatcher lag",
            [("sum(timbr_webhook_pending)", "pending deliveries"),
             ("max(timbr_webhook_consumer_lag)", "events behind audio.jobs.events")], "short")
    g.panel("Webhook attempt duration (p50 / p95)",
            [(f"histogram_quantile({q}, sum by (le) (rate(timbr_webhook_attempt_seconds_bucket{RATE})))",
              f"p{round(q * 100)}") for q in (0.5, 0.95)], "s")
    g.panel("Uploads and results removed (per hour)",
            [(f"sum by (kind, reason) (rate(timbr_objects_removed_total{RATE})) * 3600", "{{kind}} {{reason}}")],
            "short", stack=True, description="deleted on request, or expired by the retention sweeper")

    def variable(name: str, label: str, metric: str) -> dict:
        query = f"label_values({metric}, {name})"
        return {"name": name, "label": label, "type": "query", "datasource": DS,
                "query": {"query": query, "refId": "StandardVariableQuery"}, "definition": query,
                "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
                "current": {"text": "All", "value": "$__all"}, "sort": 1}

    return {
        "title": "Timbr",
        "uid": "timbr-overview",
        "description": "Timbr audio API: gateway latency, jobs, queue lag, pipeline realtime factor, "
                       "credits, model latency",
        "tags": ["timbr"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0, "refresh": 1},
            variable("job_type", "Job type", "timbr_jobs_total"),
            variable("route", "Route", f"{H}_count"),
        ]},
        "annotations": {"list": []},
        "panels": g.panels,
    }


def main() -> None:
    OUT.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
