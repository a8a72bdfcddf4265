from services.inference.model_server.triton_python import TimbrTritonModel as TritonPythonModel  # noqa: F401
