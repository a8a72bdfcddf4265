"""The ``model.py`` of every python-backend entry in ``triton_models/`` (each is a link to this file).

Triton's python-backend stub embeds the system Python and ignores ``PYTHONPATH``, so the paths the
models need (the repository root and the models' site-packages) come in ``TIMBR_TRITON_PYTHONPATH``,
set by ``tools/triton.py`` locally and by ``deploy/Dockerfile.triton`` in production. The model
itself is the one registered ``Model`` named by ``config.pbtxt`` (see ``triton_python.py``).
"""

import os
import sys

sys.path[:0] = [p for p in os.environ.get("TIMBR_TRITON_PYTHONPATH", "").split(os.pathsep)
                if p and p not in sys.path]

from services.inference.model_server.triton_python import TimbrTritonModel as TritonPythonModel  # noqa: F401
