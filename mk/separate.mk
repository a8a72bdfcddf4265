# Separation: the music/effect mask network is trained by the project itself (no model for
# cinematic separation ships offline). Its ONNX weights are committed, so `make install` needs
# nothing here; `make train-separation` regenerates the data and retrains from the fixed seed
# (on 2 shared CPU cores: ~6 min of data, 26 min of training, 1 min of DeepFilterNet residuals,
# 11 min of fine-tuning on them, 2 min of evaluation against the DSP baseline), then stage 3,
# `train-separation-recorded` (~5 min of data, 44 min of fine-tuning): the weights that shipped
# until 2026-12-04, left in $(SEPARATION_DIR)/recorded/. What ships now is stage 4 (end of this
# file), trained from scratch on a GPU; it does not start from stages 1-3.
.PHONY: train-separation separation-data

SEPARATION_DIR := var/separation

separation-data: $(SEPARATION_DIR)/pools.npz
$(SEPARATION_DIR)/pools.npz: training/separation/data.py | venv apt apt-train
	$(PIP) install -q -e ".[separate-train]"
	mkdir -p $(SEPARATION_DIR)
	$(PY) -m training.separation.data $@

train-separation: $(SEPARATION_DIR)/pools.npz
	$(PIP) install -q -e ".[separate-train]"
	$(PY) -m training.separation.train --pools $< --steps 3600 --max-minutes 33 --log $(SEPARATION_DIR)/train_log_v1.json \
	  --out $(SEPARATION_DIR)/stage1.onnx
	$(PY) -m training.separation.residuals $< $(SEPARATION_DIR)/residuals.npz
	$(PY) -m training.separation.train --pools $< --init $(SEPARATION_DIR)/stage1.pt --out $(SEPARATION_DIR)/stage2.onnx \
	  --residuals $(SEPARATION_DIR)/residuals.npz --steps 1400 --stop-step 1200 --max-lr 7e-4 --seed 20260102
	$(PY) -m training.separation.evaluate --pools $< --weights $(SEPARATION_DIR)/stage2.onnx
	rm -rf $(SEPARATION_REC) && $(MAKE) train-separation-recorded

# Stage 3: fine-tuning on recorded music and effects of the calibration packages (bench/heldout,
# role calib) plus the generated material, from stage 2 ($(STAGE3_INIT)), resumable (checkpoint every 100 steps, a state dict every 100
# steps to choose from on the calibration set: `python -m bench.separate_heldout --role calib`).
# Its last step shipped until stage 4 (model card).
.PHONY: train-separation-recorded
SEPARATION_REC := $(SEPARATION_DIR)/recorded
STAGE3_INIT ?= $(SEPARATION_DIR)/stage2.onnx
train-separation-recorded: heldout-data | venv apt apt-train
	$(PIP) install -q -e ".[separate-train]"
	mkdir -p $(SEPARATION_REC)
	test -f $(SEPARATION_REC)/pools.npz || $(PY) -m training.separation.data $(SEPARATION_REC)/pools.npz --recorded --budget-s 240
	nice -n 5 $(PY) -m training.separation.train --pools $(SEPARATION_REC)/pools.npz \
	  --init $(STAGE3_INIT) --out $(SEPARATION_REC)/music_effect.onnx \
	  --steps 1500 --max-lr 1e-3 --max-minutes 80 --threads 2 --seed 20261203 \
	  --checkpoint $(SEPARATION_REC)/ckpt.pt --snapshots $(SEPARATION_REC) --snapshot-every 100 \
	  --log $(SEPARATION_REC)/train_log.json

# Stage 4 (the shipped weights since 2026-12-04): the mean of the stage-3 network and a wider one
# (hidden 256) trained from scratch on a GPU, on the calibration packages plus the `train` packages of bench/heldout (more recorded
# scores and game sounds; fetched on demand) and 300 x 6 s pipeline residuals. The pools and
# residuals are packed as 16 kHz Vorbis (pack.py) so that they travel to a GPU machine that has no
# Debian audio packages; `gpu.sh` there trains for a fixed wall time (7.6 min on one H200, model
# card). `make separation-gpu-pack` builds the pack here; then, on a CUDA machine with this tree:
#   bash training/separation/gpu.sh var/separation/gpu/pack.npz OUTDIR 7.6
# then, here: python -m training.separation.ensemble services/inference/models/weights/music_effect.onnx \
#   $(SEPARATION_REC)/music_effect.onnx OUTDIR/wide.onnx          (stage 3 and `wide`, model card)
# (DEVICE=cpu runs gpu.sh on the CPU: the same minutes then give far fewer steps.) The pack and the
# tree must fit in 64 MiB together: stage 4 used Vorbis compression 0.6 and 200 residuals (49 MiB)
# when the tree was smaller; with stage 4's 17.8 MB weights tracked the pack is 0.75 / 170 (41 MiB).
# `gpu.sh` also trains the shipped `wide` member on (`wide_more`) when
# `python -m training.separation.ensemble --split var/separation/shipped <shipped onnx>` ran first.
.PHONY: separation-gpu-pack
SEPARATION_GPU := $(SEPARATION_DIR)/gpu
# as many residuals as fit beside the tree (above): no more are made than are packed
SEPARATION_GPU_RESIDUALS := 170
separation-gpu-pack: | venv apt apt-train
	$(PIP) install -q -e ".[separate-train]"
	mkdir -p $(SEPARATION_GPU)
	test -f $(SEPARATION_GPU)/pools.npz || $(PY) -m training.separation.data $(SEPARATION_GPU)/pools.npz --recorded --budget-s 150
	test -f $(SEPARATION_GPU)/residuals.npz || $(PY) -m training.separation.residuals $(SEPARATION_GPU)/pools.npz $(SEPARATION_GPU)/residuals.npz $(SEPARATION_GPU_RESIDUALS) 6
	$(PY) -m training.separation.pack $(SEPARATION_GPU)/pools.npz $(SEPARATION_GPU)/residuals.npz $(SEPARATION_GPU)/pack.npz --quality 0.75 --residuals $(SEPARATION_GPU_RESIDUALS)

# The speech mask network (shipped since 2026-12-04, late; SPEECH_MASK_CARD.md): three sets of
# 6 s mixtures (festival, espeak-ng and flite voices; the `train` packages' scores and sounds, the
# third set half generated), each through the pipeline's DeepFilterNet3, then 2000 steps on 2 CPU
# cores (about 40 min of data and 20 min of training). Writes $(SPEECH_MASK_DIR)/speech_mask.onnx;
# copy it to services/inference/models/weights/ to ship it.
.PHONY: train-speech-mask
SPEECH_MASK_DIR := $(SEPARATION_DIR)/speech_mask
SPEECH_MASK_SETS := $(SPEECH_MASK_DIR)/set1.npz $(SPEECH_MASK_DIR)/set2.npz $(SPEECH_MASK_DIR)/set3.npz
train-speech-mask: heldout-data | venv apt apt-train
	$(PIP) install -q -e ".[separate-train]"
	mkdir -p $(SPEECH_MASK_DIR)
	test -f $(SPEECH_MASK_DIR)/set1.npz || $(PY) -m training.separation.speech_mask build $(SPEECH_MASK_DIR)/set1.npz 320 --seed 4242
	test -f $(SPEECH_MASK_DIR)/set2.npz || $(PY) -m training.separation.speech_mask build $(SPEECH_MASK_DIR)/set2.npz 640 --seed 4343
	test -f $(SPEECH_MASK_DIR)/set3.npz || $(PY) -m training.separation.speech_mask build $(SPEECH_MASK_DIR)/set3.npz 640 --seed 4444 \
	  --synthetic-share 0.5
	$(PY) -m training.separation.speech_mask train $(SPEECH_MASK_SETS) $(SPEECH_MASK_DIR)/speech_mask.pt --steps 2000
	$(PY) -m training.separation.speech_mask export $(SPEECH_MASK_DIR)/speech_mask.pt $(SPEECH_MASK_DIR)/speech_mask.onnx
