# Separation: the music/effect mask network is trained by the project itself (no model for
# cinematic separation ships offline). Its ONNX weights are committed, so `make install` needs
# nothing here; `make train-separation` regenerates the data and retrains from the fixed seed
# (on 2 shared CPU cores: ~6 min of data, 26 min of training, 1 min of DeepFilterNet residuals,
# 11 min of fine-tuning on them, 2 min of evaluation against the DSP baseline).
.PHONY: train-separation separation-data

SEPARATION_DIR := var/separation

separation-data: $(SEPARATION_DIR)/pools.npz
$(SEPARATION_DIR)/pools.npz: training/separation/data.py | venv apt apt-train
	$(PIP) install -q -e ".[separate-train]"
	mkdir -p $(SEPARATION_DIR)
	$(PY) -m training.separation.data $@

train-separation: $(SEPARATION_DIR)/pools.npz
	$(PIP) install -q -e ".[separate-train]"
	$(PY) -m training.separation.train --pools $< --steps 3600 --max-minutes 33 --log $(SEPARATION_DIR)/train_log_v1.json
	$(PY) -m training.separation.residuals $< $(SEPARATION_DIR)/residuals.npz
	$(PY) -m training.separation.train --pools $< --init $(SEPARATION_DIR)/music_effect.pt \
	  --residuals $(SEPARATION_DIR)/residuals.npz --steps 1400 --stop-step 1200 --max-lr 7e-4 --seed 20260102
	$(PY) -m training.separation.evaluate --pools $<
