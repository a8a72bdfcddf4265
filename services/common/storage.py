"""Object storage behind one interface.

Keys: ``bronze/{account}/{file_id}/{name}`` for uploads, ``silver/{account}/{job_id}/{name}``
for results. ``LocalStorage`` (embedded default) keeps objects on disk and signs download
URLs with HMAC-SHA256 over key and expiry; the gateway verifies them and serves the bytes.
``GCSStorage`` uses google-cloud-storage and V4 signed URLs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

CHUNK = 1 << 20


class StorageError(Exception):
    """Storage backend failure."""


class ObjectNotFound(StorageError):
    pass


class BadSignature(StorageError):
    """A download URL whose signature is wrong or whose time is up."""


class Storage(ABC):
    @abstractmethod
    def put_stream(self, key: str, stream: BinaryIO, content_type: str = "application/octet-stream") -> int:
        """Copy a file object to ``key`` in chunks (constant memory); returns the size in bytes."""

    @abstractmethod
    def download_to(self, key: str, path: Path) -> Path: ...

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
        # Bytes, not str: compare_digest refuses non-ASCII strings, and a URL may carry anything.
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "surrogatepass")):
            raise BadSignature("the download URL signature is invalid")
        if expires < time.time():
            raise BadSignature("the download URL has expired")
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        return path


class GCSStorage(Storage):
    """Google Cloud Storage; credentials from the environment (GOOGLE_APPLICATION_CREDENTIALS)."""

    def __init__(self, bucket: str, client=None) -> None:
        if client is None:
            from google.cloud import storage as gcs

            client = gcs.Client()
        self._bucket = client.bucket(bucket)

    def put_stream(self, key, stream, content_type="application/octet-stream"):
        blob = self._bucket.blob(_safe_key(key), chunk_size=8 * CHUNK)  # resumable, chunked upload
        blob.upload_from_file(stream, content_type=content_type, rewind=False)
        return int(blob.size or 0)

    def download_to(self, key, path):
        from google.api_core.exceptions import NotFound

        try:
            self._bucket.blob(_safe_key(key)).download_to_filename(str(path))
        except NotFound as exc:
            raise ObjectNotFound(key) from exc
        return path

    def exists(self, key):
        return self._bucket.blob(_safe_key(key)).exists()

    def size(self, key):
        blob = self._bucket.get_blob(_safe_key(key))
        if blob is None:
            raise ObjectNotFound(key)
        return int(blob.size)

    def delete(self, key):
        from google.api_core.exceptions import NotFound

        try:
            self._bucket.blob(_safe_key(key)).delete()
        except NotFound:
            pass

    def signed_url(self, key, ttl_s, filename=None):
        import datetime as dt

        disposition = f'attachment; filename="{filename}"' if filename else None
        return self._bucket.blob(_safe_key(key)).generate_signed_url(
            version="v4", expiration=dt.timedelta(seconds=ttl_s), method="GET",
            response_disposition=disposition,
        )


def make_storage(settings) -> Storage:
    """Storage from ``CommonSettings``."""
    if settings.storage_backend == "gcs":
        return GCSStorage(settings.gcs_bucket)
    return LocalStorage(settings.storage_root, settings.signing_secret, settings.public_url)
