# Triton Inference Server on this machine's CPU (tools/triton.py), for the serving tests, the bench
# and `TIMBR_MODEL_BACKEND=triton make run`:
#   var/triton/server  tritonserver 2.51, its python backend and the stub for the system Python 3.11,
#                      unpacked from the nvidia-pytriton wheel (a zip: nothing is installed system-wide)
#   var/triton/env     the models' environment (system Python 3.11, triton_models/requirements.txt:
#                      numpy < 2, which that python backend needs)
MODEL_TRITON ?= triton
MODEL_TARGETS += $(MODEL_TRITON)
PYTRITON_WHEEL := nvidia-pytriton==0.7.0
TRITON_DIR := var/triton

.PHONY: triton

triton: $(TRITON_DIR)/server/bin/tritonserver $(TRITON_DIR)/env/.stamp

$(TRITON_DIR)/server/bin/tritonserver: | venv
	rm -rf $(TRITON_DIR)/wheel $(TRITON_DIR)/server && mkdir -p $(TRITON_DIR)/wheel $(TRITON_DIR)/server
	$(PIP) download -q --no-deps $(PYTRITON_WHEEL) -d $(TRITON_DIR)/wheel
	cd $(TRITON_DIR)/wheel && $(abspath $(PY)) -m zipfile -e nvidia_pytriton-*.whl unpacked
	cp -r $(TRITON_DIR)/wheel/unpacked/pytriton/tritonserver/. $(TRITON_DIR)/server/
	cp -r $(TRITON_DIR)/wheel/unpacked/nvidia_pytriton.libs $(TRITON_DIR)/server/lib
	cp $(TRITON_DIR)/server/python_backend_stubs/3.11/triton_python_backend_stub $(TRITON_DIR)/server/backends/python/
	chmod +x $(TRITON_DIR)/server/bin/tritonserver $(TRITON_DIR)/server/backends/python/triton_python_backend_stub
	rm -rf $(TRITON_DIR)/wheel
	touch $@

$(TRITON_DIR)/env/.stamp: triton_models/requirements.txt | apt
	test -x $(TRITON_DIR)/env/bin/python || /usr/bin/python3.11 -m venv $(TRITON_DIR)/env
	$(TRITON_DIR)/env/bin/pip install -q --upgrade "pip>=24"
	$(TRITON_DIR)/env/bin/pip install -q -r triton_models/requirements.txt
	touch $@
