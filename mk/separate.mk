# Separation: the music/effect mask network is trained by the project itself (no model for
# cinematic separation ships offline). Its ONNX weights are committed, so `make install` needs
# nothing here; `make train-separation` regenerates the data and retrains from the fixed seed
# (about 6 min of data generation and 33 min of training on 2 CPU cores).
.PHONY: train-separation separation-data

SEPARATION_DIR := var/separation

separation-data: $(SEPARATION_DIR)/pools.npz
$(SEPARATION_DIR)/pools.npz: training/separation/data.py | venv apt
	$(PIP) install -q -e ".[separate-train]"
	mkdir -p $(SEPARATION_DIR)
	$(PY) -m training.separation.data $@

train-separation: $(SEPARATION_DIR)/pools.npz
	$(PIP) install -q -e ".[separate-train]"
	$(PY) -m training.separation.train --pools $< --steps 3600 --max-minutes 33
	$(PY) -m training.separation.evaluate --pools $<
