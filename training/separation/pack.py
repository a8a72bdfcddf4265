"""Pack the training pools and residuals as 16 kHz Ogg Vorbis, and unpack them again.

A lent GPU machine receives the working tree and at most 64 MiB beside it, and it has none of the
Debian packages the pools are made from (fluidsynth, the soundfonts, the game data). The pools
(``data.py``) and residuals (``residuals.py``) are float32, about ten times that budget; as Vorbis
(quality 0.4, about 50 kbit/s at 16 kHz mono) they fit. Training reads the decoded audio, so a
mixture and its targets are made from the same decoded sources; only a residual and its music
target are coded apart, which leaves the codec's error (about -28 dB) in the effect target.

    python -m training.separation.pack var/separation/gpu/pools.npz var/separation/gpu/residuals.npz var/separation/pack
    python -m training.separation.pack --unpack var/separation/pack var/separation/unpacked
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import soundfile as sf

from training.separation.data import SR

POOLS = ("music", "events", "textures", "speech")
SPLITS = ("train", "test")
# Minutes kept of each train pool (items drawn at random, seeded) and of each held-out pool, so
# that the pack fits the budget: the speech pool only leaks into the effect target at -30..-12 dB,
# and validation needs only a few batches.
TRAIN_MINUTES = {"music": 85.0, "events": 14.0, "textures": 15.0, "speech": 10.0}
TEST_MINUTES = 2.0


def _encode(x: np.ndarray, quality: float) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1, 1), SR, format="OGG", subtype="VORBIS", compression_level=quality)
    return buf.getvalue()


def _decode(data: bytes, n: int) -> np.ndarray:
    x, _ = sf.read(io.BytesIO(data), dtype="float32")
    return np.pad(x, (0, max(0, n - len(x))))[:n]                # Vorbis keeps the length; be sure


def _chosen(lengths: np.ndarray, minutes: float, rng: np.random.Generator) -> list[int]:
    """Items in a random order while they fit ``minutes``, then back in their own order."""
    keep, total = [], 0
    for i in rng.permutation(len(lengths)):
        if total + lengths[i] <= minutes * 60 * SR:
            keep.append(int(i))
            total += int(lengths[i])
    return sorted(keep)


def pack(pools: Path, residuals: Path | None, out: Path, quality: float = 0.4, n_residuals: int | None = None,
         seed: int = 5) -> None:
    """One npz of Vorbis byte strings (object-free: a uint8 blob with offsets) and the lengths."""
    rng = np.random.default_rng(seed)
    blobs: list[bytes] = []
    meta: dict[str, np.ndarray] = {}
    z = np.load(pools)
    for split in SPLITS:
        for name in POOLS:
            flat, off = z[f"{split}_{name}"], z[f"{split}_{name}_offsets"]
            keep = _chosen(np.diff(off), TRAIN_MINUTES[name] if split == "train" else TEST_MINUTES, rng)
            meta[f"{split}_{name}_lengths"] = np.diff(off)[keep]
            blobs += [_encode(flat[off[i]:off[i + 1]], quality) for i in keep]
            print(f"{split} {name}: {len(keep)} of {len(off) - 1} items, "
                  f"{np.diff(off)[keep].sum() / SR / 60:.1f} min", flush=True)
    if residuals is not None:
        r = np.load(residuals)
        count = min(len(r["residual"]), n_residuals or len(r["residual"]))
        meta["residual_shape"] = np.array((count, r["residual"].shape[1]))
        for i in range(count):
            blobs += [_encode(r["residual"][i], quality), _encode(r["music"][i], quality)]
    sizes = np.array([len(b) for b in blobs])
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, blob=np.frombuffer(b"".join(blobs), np.uint8), blob_offsets=np.cumsum([0, *sizes]), **meta)
    print(f"{len(blobs)} clips, {sizes.sum() / 2**20:.1f} MiB -> {out}")


def unpack(packed: Path, pools_out: Path, residuals_out: Path) -> None:
    """Write ``pools.npz`` and ``residuals.npz`` in the layouts ``train.py`` reads."""
    z = np.load(packed)
    blob, off = z["blob"], z["blob_offsets"]
    k = 0

    def take(n: int) -> np.ndarray:
        nonlocal k
        x = _decode(blob[off[k]:off[k + 1]].tobytes(), n)
        k += 1
        return x

    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        for name in POOLS:
            lengths = z[f"{split}_{name}_lengths"]
            arrays[f"{split}_{name}"] = np.concatenate([take(int(n)) for n in lengths]).astype(np.float32)
            arrays[f"{split}_{name}_offsets"] = np.cumsum([0, *lengths])
    np.savez(pools_out, **arrays)
    if "residual_shape" in z:
        count, n = (int(v) for v in z["residual_shape"])
        pairs = [(take(n), take(n)) for _ in range(count)]
        residual = np.stack([p[0] for p in pairs])
        music = np.stack([p[1] for p in pairs])
        np.savez(residuals_out, residual=residual, music=music, effect=residual - music)
    print(f"unpacked {k} clips -> {pools_out}, {residuals_out}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--unpack", action="store_true")
    ap.add_argument("src")
    ap.add_argument("a", help="pack: residuals.npz ('-' for none); unpack: folder for pools.npz and residuals.npz")
    ap.add_argument("out", nargs="?", help="pack: the packed npz")
    ap.add_argument("--quality", type=float, default=0.4, help="Vorbis compression level, 0 (best) .. 1")
    ap.add_argument("--residuals", type=int, default=None, help="pack only the first this many residuals")
    args = ap.parse_args()
    if args.unpack:
        folder = Path(args.a)
        folder.mkdir(parents=True, exist_ok=True)
        unpack(Path(args.src), folder / "pools.npz", folder / "residuals.npz")
    else:
        pack(Path(args.src), None if args.a == "-" else Path(args.a), Path(args.out), args.quality, args.residuals)
