"""Object storage behind one interface.

Keys: ``bronze/{account}/{file_id}/{name}`` for uploads, ``silver/{account}/{job_id}/{name}``
for results. ``LocalStorage`` (embedded default) keeps objects on disk and signs download
URLs with HMAC-SHA256 over key and expiry; the gateway verifies them and serves the bytes.
``GCSStorage`` uses google-cloud-storage and V4 signed URLs: signed with the key file's private
key when there is one, else through the IAM Credentials ``signBlob`` API with the pod's access
token (GKE Workload Identity, where no private key exists). ``TIMBR_GCS_ENDPOINT`` points the
client at an emulator or a private endpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import shutil
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from google.auth.credentials import Signing

from services.common.digests import same_digest

CHUNK = 1 << 20


class StorageError(Exception):
    """Storage backend failure."""


class ObjectNotFound(StorageError):
    pass


class BadSignature(StorageError):
    """A download URL whose signature is wrong or whose time is up."""


class StorageUnavailable(StorageError):
    """The backend cannot serve this now (bucket or signing service unreachable, no credentials
    that can sign): the API answers 503 ``storage_unavailable``, never 500."""


class Storage(ABC):
    @abstractmethod
    def put_stream(self, key: str, stream: BinaryIO, content_type: str = "application/octet-stream") -> int:
        """Copy a file object to ``key`` in chunks (constant memory); returns the size in bytes."""

    @abstractmethod
    def download_to(self, key: str, path: Path) -> Path: ...

    @abstractmethod
    def read_range(self, key: str, start: int, end: int | None = None) -> bytes:
        """Bytes ``start`` to ``end`` inclusive (to the end of the object when ``end`` is None)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def signed_url(self, key: str, ttl_s: int, filename: str | None = None) -> str: ...

    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> int:
        with open(path, "rb") as f:
            return self.put_stream(key, f, content_type)

    def local_path(self, key: str) -> Path | None:
        """A path readable in place, when the backend has one (saves a copy)."""
        return None


def _safe_key(key: str) -> str:
    """Keys are made by Timbr from sanitised names: printable ASCII, no empty or dot segments."""
    parts = key.split("/")
    if (not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts)
            or not (key.isascii() and key.isprintable())):
        raise StorageError(f"invalid object key {key!r}")
    return key


class LocalStorage(Storage):
    def __init__(self, root: Path, secret: str, public_url: str) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._secret = secret.encode()
        self._public_url = public_url.rstrip("/")

    def _path(self, key: str) -> Path:
        return self.root / _safe_key(key)

    def put_stream(self, key, stream, content_type="application/octet-stream"):
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        with open(tmp, "wb") as out:
            shutil.copyfileobj(stream, out, CHUNK)
        os.replace(tmp, path)  # atomic: a reader never sees half an object, a rewrite is idempotent
        return path.stat().st_size

    def download_to(self, key, path):
        src = self._path(key)
        if not src.is_file():
            raise ObjectNotFound(key)
        shutil.copyfile(src, path)
        return path

    def read_range(self, key, start, end=None):
        src = self._path(key)
        if not src.is_file():
            raise ObjectNotFound(key)
        with open(src, "rb") as f:
            f.seek(start)
            return f.read(-1 if end is None else max(0, end - start + 1))

    def exists(self, key):
        return self._path(key).is_file()

    def size(self, key):
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as exc:
            raise ObjectNotFound(key) from exc

    def delete(self, key):
        self._path(key).unlink(missing_ok=True)

    def local_path(self, key):
        path = self._path(key)
        return path if path.is_file() else None

    def _signature(self, key: str, expires: int) -> str:
        return hmac.new(self._secret, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def signed_url(self, key, ttl_s, filename=None):
        expires = int(time.time()) + int(ttl_s)
        query = {"expires": expires, "signature": self._signature(_safe_key(key), expires)}
        return f"{self._public_url}/v1/objects/{quote(key)}?{urlencode(query)}"

    def verify(self, key: str, expires: int, signature: str) -> Path:
        """Check a signed URL's parts; returns the object's path or raises."""
        expected = self._signature(_safe_key(key), expires)
        if not same_digest(expected, signature):
            raise BadSignature("the download URL signature is invalid")
        if expires < time.time():
            raise BadSignature("the download URL has expired")
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        return path


class IamSigner(Signing):
    """Signs bytes with the IAM Credentials ``signBlob`` API, authorised by an access token.

    On GKE with Workload Identity the pod has tokens but no private key; the Google service
    account it runs as needs ``roles/iam.serviceAccountTokenCreator`` on itself.
    """

    def __init__(self, credentials, service_account_email: str = "",
                 endpoint: str = "https://iamcredentials.googleapis.com", timeout_s: float = 10.0) -> None:
        self._credentials = credentials
        self._email = service_account_email
        self._endpoint = endpoint.rstrip("/")
        self._timeout_s = timeout_s

    def _token(self) -> str:
        from google.auth.transport.requests import Request

        if not self._credentials.valid:
            self._credentials.refresh(Request())
        return self._credentials.token

    @property
    def signer_email(self) -> str:
        if not self._email:
            self._token()  # compute-engine credentials learn their email on refresh
            self._email = getattr(self._credentials, "service_account_email", "") or ""
            if not self._email or self._email == "default":
                raise StorageUnavailable("no service account to sign as: set TIMBR_GCS_SIGNING_EMAIL")
        return self._email

    @property
    def signer(self):
        return self

    def sign_bytes(self, message: bytes) -> bytes:
        import base64

        import httpx

        url = f"{self._endpoint}/v1/projects/-/serviceAccounts/{self.signer_email}:signBlob"
        response = httpx.post(url, json={"payload": base64.b64encode(message).decode()},
                              headers={"Authorization": f"Bearer {self._token()}"}, timeout=self._timeout_s)
        if response.status_code != 200:
            raise StorageUnavailable(f"IAM signBlob answered {response.status_code}: {response.text[:200]}")
        return base64.b64decode(response.json()["signedBlob"])


class GCSStorage(Storage):
    """Google Cloud Storage through google-cloud-storage.

    ``signer``: signs URLs when the client's credentials cannot (``IamSigner``); None signs
    with the credentials' own private key. ``endpoint``: an emulator or private endpoint, for
    the API and for the signed URLs alike.
    """

    def __init__(self, bucket: str, client=None, signer: Signing | None = None, endpoint: str = "") -> None:
        if client is None:
            client = gcs_client(endpoint)
        self._bucket = client.bucket(bucket)
        self._signer = signer
        self._endpoint = endpoint.rstrip("/")

    def put_stream(self, key, stream, content_type="application/octet-stream"):
        blob = self._bucket.blob(_safe_key(key), chunk_size=8 * CHUNK)  # resumable, chunked upload
        if not hasattr(stream, "tell"):
            stream = _Position(stream)
        with _unavailable("upload"):
            blob.upload_from_file(stream, content_type=content_type, rewind=False)
        return int(blob.size or 0)

    def download_to(self, key, path):
        from google.api_core.exceptions import NotFound

        with _unavailable("download"):
            try:
                self._bucket.blob(_safe_key(key)).download_to_filename(str(path))
            except NotFound as exc:
                Path(path).unlink(missing_ok=True)
                raise ObjectNotFound(key) from exc
        return path

    def read_range(self, key, start, end=None):
        from google.api_core.exceptions import NotFound

        with _unavailable("download"):
            try:
                return self._bucket.blob(_safe_key(key)).download_as_bytes(start=start, end=end)
            except NotFound as exc:
                raise ObjectNotFound(key) from exc

    def exists(self, key):
        with _unavailable("lookup"):
            return self._bucket.blob(_safe_key(key)).exists()

    def size(self, key):
        with _unavailable("lookup"):
            blob = self._bucket.get_blob(_safe_key(key))
        if blob is None:
            raise ObjectNotFound(key)
        return int(blob.size)

    def delete(self, key):
        from google.api_core.exceptions import NotFound

        with _unavailable("delete"), contextlib.suppress(NotFound):
            self._bucket.blob(_safe_key(key)).delete()

    def signed_url(self, key, ttl_s, filename=None):
        import datetime as dt

        disposition = f'attachment; filename="{filename}"' if filename else None
        extra = {"api_access_endpoint": self._endpoint} if self._endpoint else {}
        with _unavailable("signing"):
            return self._bucket.blob(_safe_key(key)).generate_signed_url(
                version="v4", expiration=dt.timedelta(seconds=ttl_s), method="GET",
                response_disposition=disposition, credentials=self._signer, **extra)


class _Position:
    """A read-only stream that counts what was read: the resumable upload asks ``tell()``,
    which a streamed request body (the gateway's hashing reader) does not have."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._position += len(data)
        return data

    def tell(self) -> int:
        return self._position


@contextlib.contextmanager
def _unavailable(action: str):
    """Backend failures (transport, auth, server, a missing bucket) become ``StorageUnavailable``;
    callers turn a missing object into ``ObjectNotFound`` inside the block."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:  # transport, auth and server errors of the client library
        raise StorageUnavailable(f"storage {action} failed: {type(exc).__name__}: {str(exc)[:300]}") from exc


def gcs_client(endpoint: str = "", credentials=None):
    """A client on the environment's credentials; with an endpoint and none found (an emulator),
    anonymous ones."""
    import google.auth
    from google.auth.credentials import AnonymousCredentials
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import storage as gcs

    project = None
    if credentials is None:
        try:
            credentials, project = google.auth.default(
                scopes=["https://www.googleapis.com/auth/devstorage.read_write"])
        except DefaultCredentialsError:
            if not endpoint:
                raise
            credentials = AnonymousCredentials()
    options = {"api_endpoint": endpoint} if endpoint else None
    return gcs.Client(project=project or "timbr", credentials=credentials, client_options=options)


def make_storage(settings) -> Storage:
    """Storage from ``CommonSettings``."""
    if settings.storage_backend == "gcs":
        client = gcs_client(settings.gcs_endpoint)
        credentials = client._credentials
        signer = None
        if not isinstance(credentials, Signing):  # no private key: Workload Identity, user or anonymous
            signer = IamSigner(credentials, settings.gcs_signing_email, settings.gcs_iam_endpoint)
        return GCSStorage(settings.gcs_bucket, client=client, signer=signer, endpoint=settings.gcs_endpoint)
    return LocalStorage(settings.storage_root, settings.signing_secret, settings.public_url)
