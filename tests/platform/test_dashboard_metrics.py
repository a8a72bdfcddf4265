"""Every metric the Grafana dashboard queries is exported by a running Timbr process.

Scrapes /metrics of the running stack (gateway, billing, jobs, worker, webhook dispatcher) and of
a KServe ModelServer, and checks each ``timbr_*`` name in the dashboard's PromQL against what
they expose (a labelled metric shows its ``# TYPE`` line before its first sample). ``nv_*`` are
Triton's own metrics (its port 8002), not a Timbr process's, and are left to Triton.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.serving.support import ModelServerProcess

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "timbr" / "dashboards" / "timbr.json"
# Sample names per metric type; a counter's TYPE line names it with or without _total.
SUFFIXES = {"histogram": ("_bucket", "_count", "_sum", "_created"), "summary": ("_count", "_sum", "_created"),
            "counter": ("", "_total", "_created"), "gauge": ("",), "info": ("_info",), "untyped": ("",)}


def dashboard_metrics() -> set[str]:
    exprs = []

    def walk(panel):
        exprs.extend(t["expr"] for t in panel.get("targets", []))
        for child in panel.get("panels", []):
            walk(child)

    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        walk(panel)
    return {name for e in exprs for name in re.findall(r"\b((?:timbr|nv)_[a-z0-9_]+)\b", e)}


def exported(text: str) -> set[str]:
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        names |= {name + s for s in SUFFIXES.get(kind, ("",))}
    return names


def test_every_dashboard_metric_is_exported(stack, tmp_path):
    ports = [*stack.metrics_ports, stack.webhooks_metrics_port]
    texts = [httpx.get(f"{stack.url}/metrics", timeout=10).text]
    texts += [httpx.get(f"http://127.0.0.1:{p}/metrics", timeout=10).text for p in ports]
    server = ModelServerProcess(["slow_gain"], tmp_path / "model_server.log", TEST_LOAD_S="0",
                                TIMBR_MODEL_SERVER_EXTRA_MODELS="slow_gain=tests.serving.models:SlowLoadingGain")
    server.start()
    try:
        server.wait_ready(120)
        texts.append(httpx.get(f"{server.http}/metrics", timeout=10).text)
    finally:
        server.stop()
    have = set().union(*map(exported, texts))
    wanted = {m for m in dashboard_metrics() if m.startswith("timbr_")}
    assert wanted, "the dashboard queries no timbr_ metric?"
    assert "timbr_queue_lag_messages" in wanted
    assert not wanted - have, f"on the dashboard, exported by no process: {sorted(wanted - have)}"
