# Separation: the music/effect mask network is trained by the project itself (no model for
# cinematic separation ships offline). Its ONNX weights are committed, so `make install` needs
# nothing here; `make train-separation` regenerates the data and retrains from the fixed seed
# (on 2 shared CPU cores: ~6 min of data, 26 min of training, 1 min of DeepFilterNet residuals,
# 11 min of fine-tuning on them, 2 min of evaluation against the DSP baseline), then stage 3,
# `train-separation-recorded` (~5 min of data, 44 min of fine-tuning), whose output ships.
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
	rm -rf $(SEPARATION_REC) && $(MAKE) train-separation-recorded
	cp $(SEPARATION_REC)/music_effect.onnx services/inference/models/weights/music_effect.onnx

# Stage 3: fine-tuning on recorded music and effects of the calibration packages (bench/heldout,
# role calib) plus the generated material, from the weights at the shipped path (stage 2 when
# `train-separation` calls it), resumable (checkpoint every 100 steps, a state dict every 100
# steps to choose from on the calibration set: `python -m bench.separate_heldout --role calib`).
# Its last step is what ships (model card).
.PHONY: train-separation-recorded
SEPARATION_REC := $(SEPARATION_DIR)/recorded
train-separation-recorded: heldout-data | venv apt apt-train
	$(PIP) install -q -e ".[separate-train]"
	mkdir -p $(SEPARATION_REC)
	test -f $(SEPARATION_REC)/pools.npz || $(PY) -m training.separation.data $(SEPARATION_REC)/pools.npz --recorded --budget-s 240
	nice -n 5 $(PY) -m training.separation.train --pools $(SEPARATION_REC)/pools.npz \
	  --init services/inference/models/weights/music_effect.onnx --out $(SEPARATION_REC)/music_effect.onnx \
	  --steps 1500 --max-lr 1e-3 --max-minutes 80 --threads 2 --seed 20261203 \
	  --checkpoint $(SEPARATION_REC)/ckpt.pt --snapshots $(SEPARATION_REC) --snapshot-every 100 \
	  --log $(SEPARATION_REC)/train_log.json
