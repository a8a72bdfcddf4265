"""Model serving over the KServe v2 / Open Inference Protocol.

- ``server``: a KServe ModelServer hosting the registered ``Model`` classes on CPU (gRPC and
  HTTP, readiness, liveness, Prometheus metrics); ``python -m services.inference.model_server``.
- ``triton_python``: the Triton python-backend adapter used by ``triton_models/*/1/model.py``.

Nothing is imported here on purpose: ``kserve`` and ``tritonclient.grpc`` register the same
protobuf symbols and cannot live in one process, and the worker (which imports
``services.inference.remote_client``) must never pull ``kserve`` in through this package.
"""
