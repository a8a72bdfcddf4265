"""GCS for the tests: the gcp-storage-emulator server, and the two Google endpoints a pod uses
under GKE Workload Identity, served on loopback.

The metadata server (``GCE_METADATA_HOST``) hands out the service account's email and access
tokens, as the GKE metadata server does: no key file exists. The IAM signBlob endpoint checks
the bearer token and signs with an RSA key made here, so a URL's signature can be verified with
its public key. ``fail_signing`` makes signBlob answer 503.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tools.devbroker import free_port, wait_for_port

SIGNER = "timbr-storage@timbr-test.iam.gserviceaccount.com"
TOKEN = "ya29.workload-identity-test-token"


class FakeGoogle:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.signed: list[bytes] = []
        self.fail_signing = False
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_):
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("metadata-flavor", "Google")
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # the metadata server
                path = self.path.split("?", 1)[0]
                if self.headers.get("metadata-flavor") != "Google":
                    return self._reply(403, {"error": "Metadata-Flavor header missing"})
                # google-auth asks for "default" first, then by the email it learnt
                accounts = [f"/computeMetadata/v1/instance/service-accounts/{name}/" for name in ("default", SIGNER)]
                if path in ("/", ""):
                    return self._reply(200, {})
                if path in accounts:
                    return self._reply(200, {"email": SIGNER, "aliases": ["default"],
                                             "scopes": ["https://www.googleapis.com/auth/cloud-platform"]})
                if path in (account + "token" for account in accounts):
                    return self._reply(200, {"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"})
                if path == "/computeMetadata/v1/project/project-id":
                    data = b"timbr-test"
                    self.send_response(200)
                    self.send_header("metadata-flavor", "Google")
                    self.send_header("content-type", "text/plain")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return None
                return self._reply(404, {"error": self.path})

            def do_POST(self):  # IAM Credentials signBlob
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.path == f"/v1/projects/-/serviceAccounts/{SIGNER}:signBlob":
                    if self.headers.get("authorization") != f"Bearer {TOKEN}":
                        return self._reply(401, {"error": "bad token"})
                    if fake.fail_signing:
                        return self._reply(503, {"error": "iamcredentials unavailable"})
                    payload = base64.b64decode(json.loads(body)["payload"])
                    fake.signed.append(payload)
                    sig = fake.key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
                    return self._reply(200, {"keyId": "k1", "signedBlob": base64.b64encode(sig).decode()})
                return self._reply(404, {"error": self.path})

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def verify(self, signature: bytes, message: bytes) -> None:
        """Raises unless ``signature`` is this key's signature of ``message``."""
        self.key.public_key().verify(signature, message, padding.PKCS1v15(), hashes.SHA256())

    def close(self) -> None:
        self.server.shutdown()


@contextmanager
def gcs_emulator(bucket: str):
    """gcp-storage-emulator (PyPI) on a free port, in memory, with ``bucket`` made; yields its URL."""
    port = free_port()
    exe = Path(sys.executable).with_name("gcp-storage-emulator")
    proc = subprocess.Popen([str(exe), "start", "--host", "127.0.0.1", "--port", str(port),
                             "--default-bucket", bucket, "--in-memory", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port, timeout_s=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def gcs_env(endpoint: str, google: FakeGoogle, bucket: str) -> dict[str, str]:
    """The environment of a service on the emulator, on metadata-server credentials (no key
    file, no signing email given: both found as on GKE), signing through IAM."""
    host = f"127.0.0.1:{google.port}"
    return {"TIMBR_STORAGE_BACKEND": "gcs", "TIMBR_GCS_BUCKET": bucket, "TIMBR_GCS_ENDPOINT": endpoint,
            "TIMBR_GCS_IAM_ENDPOINT": google.url, "GCE_METADATA_HOST": host, "GCE_METADATA_IP": host,
            "GOOGLE_APPLICATION_CREDENTIALS": "", "GOOGLE_CLOUD_PROJECT": "timbr-test"}
