# serving: the large files of the Triton model repository (triton_models/), made from what the
# other areas' model targets built; never committed (.gitignore). The python-backend entries
# load their weights through the registered Model classes from var/models/ (TIMBR_MODELS_DIR).
#   make models             also copies the CAM++ ONNX graph in as triton_models/speaker_encoder/1/model.onnx
#   make run-model-server   the KServe ModelServer on CPU (gRPC :8081, HTTP :8080; TIMBR_MODEL_SERVER_*)
MODEL_TARGETS += models-serving

.PHONY: models-serving run-model-server

models-serving: triton_models/speaker_encoder/1/model.onnx

triton_models/speaker_encoder/1/model.onnx: var/models/campplus/campplus.onnx
	mkdir -p $(@D)
	cp $< $@

run-model-server: install
	$(PY) -m services.inference.model_server
