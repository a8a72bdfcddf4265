"""The root of every domain error that carries an API error code.

A service raises a subclass in its own domain (``InvalidAudio`` here, the inference tree in
``services/inference/errors.py``) and turns it into a transport status (HTTP, gRPC, a job's
``error.code``) at its edge only, from ``code``, never from the message text.
"""

from __future__ import annotations

from typing import ClassVar


class CodedError(Exception):
    """An error whose ``code`` is a documented API error code; ``message`` is for people."""

    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
