"""Train the speech mask network: DeepFilterNet3's speech, corrected where it keeps too little.

DeepFilterNet3 removes noise from speech; asked to take speech out of music and effects it keeps
too little of a recorded voice (the separation stage's ratio mask reaches 8.8 dB SI-SDR on the
calibration set where the ideal mask reaches 14.4). This network does not separate on its own: it
reads the mixture's, DeepFilterNet3's and the residual's band energies and, per frame and band,
sets a slope ``a`` and an offset ``b`` that bend DeepFilterNet3's own ratio mask
``r = |S| / (|S| + |R|)`` into ``sigmoid(a * logit(r) + b)`` on every bin of the pipeline's
64 ms STFT. The fine structure (harmonics) stays DeepFilterNet3's; what it learns is where that
model is too shy. ``a = 1, b = 0`` is the ratio mask itself.

Data (never an evaluation package, nor Allison, who scores the choice on the calibration set):
the festival voices of ``bench/heldout`` (calib role) and espeak-ng / flite voices, the recorded
scores and game sounds of the ``train`` packages (and, with ``--synthetic-share``, generated
music, events and beds); mixtures at 48 kHz with music and effects at -12..+3 dB against the
speech, each run through the pipeline's own ``speech_enhancer``. The shipped weights
(``make train-speech-mask``, model card ``SPEECH_MASK_CARD.md``):

    python -m training.separation.speech_mask build set1.npz 320 --seed 4242
    python -m training.separation.speech_mask build set2.npz 640 --seed 4343
    python -m training.separation.speech_mask build set3.npz 640 --seed 4444 --synthetic-share 0.5
    python -m training.separation.speech_mask train set1.npz set2.npz set3.npz speech_mask.pt --steps 2000
    python -m training.separation.speech_mask export speech_mask.pt services/inference/models/weights/speech_mask.onnx

Training resumes from the checkpoint it writes every 100 steps. ``train --init`` starts from
exported weights (``state_from_onnx``); ``build --recorded-share`` speaks a share of the mixtures
with hedgewars' recorded voice packs (``train`` role) and ``--telephone-share`` passes a share of
them through a telephone line (``telephone``). Fine-tuning the shipped weights on such sets moved
no selection set by more than 0.07 dB (docs/separate.md, 2026-12-05, late), so they are tools,
not part of the recipe above.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from services.inference.models.speech_mask import (  # the served model's grid and fallback
    HOP,
    N_FFT,
    RATIO_EXPONENT,
)

RATE = 48000
BINS = N_FFT // 2 + 1
BANDS = 64


def band_matrix(bands: int = BANDS, bins: int = BINS, rate: int = RATE) -> np.ndarray:
    """(bins, bands) triangular mel-spaced weights; each bin's weights sum to 1."""
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
    edges = 700.0 * (10 ** (np.linspace(0.0, mel(rate / 2), bands + 2) / 2595.0) - 1.0)
    freqs = np.arange(bins) * rate / (2 * (bins - 1))
    w = np.zeros((bins, bands), np.float32)
    for b in range(bands):
        lo, mid, hi = edges[b], edges[b + 1], edges[b + 2]
        up = (freqs - lo) / max(mid - lo, 1e-9)
        down = (hi - freqs) / max(hi - mid, 1e-9)
        w[:, b] = np.clip(np.minimum(up, down), 0.0, None)
    w[w.sum(axis=1) == 0, 0] = 1.0                                  # bins under the first centre
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


class SpeechMaskNet(nn.Module):
    """(mag_x, mag_s, mag_r), each (T, BINS) -> speech mask (T, BINS) in [0, 1]."""

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        w = torch.from_numpy(band_matrix())
        self.register_buffer("pool", w / w.sum(dim=0, keepdim=True))     # bins -> bands (means)
        self.register_buffer("spread", w.T.contiguous())                   # bands -> bins
        self.inp = nn.Linear(4 * BANDS, hidden)
        self.lstm = nn.LSTM(hidden, hidden, 2, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, 2 * BANDS)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)                                      # starts as the ratio mask

    def forward(self, mag_x: torch.Tensor, mag_s: torch.Tensor, mag_r: torch.Tensor) -> torch.Tensor:
        squeeze = mag_x.dim() == 2
        if squeeze:
            mag_x, mag_s, mag_r = mag_x[None], mag_s[None], mag_r[None]
        ratio = (mag_s / (mag_s + mag_r + 1e-8)).clamp(1e-4, 1 - 1e-4)
        logit = torch.log(ratio) - torch.log1p(-ratio)
        feats = [torch.log(torch.matmul(m * m, self.pool) + 1e-10) for m in (mag_x, mag_s, mag_r)]
        level = feats[0].mean(dim=(1, 2), keepdim=True)                    # level invariance
        feats = [f - level for f in feats] + [torch.matmul(logit, self.pool) / 4.0]  # band-mean logit
        h = torch.tanh(self.inp(torch.cat(feats, dim=-1)))
        h, _ = self.lstm(h)
        ab = self.out(h)
        slope = 1.0 + torch.tanh(ab[..., :BANDS])                          # 0..2
        offset = 4.0 * torch.tanh(ab[..., BANDS:] / 4.0)                   # -4..4
        mask = torch.sigmoid(torch.matmul(slope, self.spread) * logit + torch.matmul(offset, self.spread))
        return mask[0] if squeeze else mask


# ---------------------------------------------------------------------- data

def _speech_pool(seed: int) -> list[np.ndarray]:
    from bench.heldout import sources as ho
    from training.separation import real

    pool = [ho.load(u.path, RATE) for u in ho.synth_voices("calib")]
    synth = real.speech(seed, n_asterisk=0, n_espeak=80, n_flite=20)           # 16 kHz
    from services.common.audio import resample

    pool += [resample(x[None], 16000, RATE)[0] for x in synth["train"] + synth["test"]]
    return [x.astype(np.float32) for x in pool if len(x) > RATE // 2]


def _recorded_pool() -> dict[str, list[np.ndarray]]:
    """hedgewars' recorded voice packs (``train`` role), one list of lines per actor."""
    from bench.heldout import sources as ho

    packs: dict[str, list[np.ndarray]] = {}
    for clip in ho.clips("voice", "train"):
        x = ho.load(clip.path, RATE)
        if len(x) > RATE // 4:
            packs.setdefault(clip.path.parent.name, []).append(x.astype(np.float32))
    return packs


def telephone(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """``x`` (48 kHz) as a telephone line carries it: sampled at 8 kHz, a zero-phase high-pass
    at 150-300 Hz, and G.711 mu-law (written out: ``audioop`` is deprecated) in half the cases.
    Why: recorded prompts and calls reach the pipeline band-limited, and the network had heard
    full-band voices only. No sample moves (the target stays aligned with the mixture)."""
    from scipy.signal import butter, sosfiltfilt

    from services.common.audio import resample

    y = resample(x[None].astype(np.float32), RATE, 8000)[0]
    y = sosfiltfilt(butter(2, rng.uniform(150, 300), "highpass", fs=8000, output="sos"), y)
    if rng.random() < 0.5:
        peak = np.abs(y).max() + 1e-9
        mu = 255.0
        q = np.sign(y / peak) * np.log1p(mu * np.abs(y / peak)) / np.log1p(mu)
        q = np.round(q * 127) / 127
        y = np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu * peak
    out = resample(y[None].astype(np.float32), 8000, RATE)[0]
    return np.pad(out, (0, max(0, len(x) - len(out))))[: len(x)].astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def _crop(rng: np.random.Generator, x: np.ndarray, n: int) -> np.ndarray:
    if len(x) <= n:
        return np.pad(x, (0, n - len(x)))
    start = rng.integers(0, len(x) - n)
    return x[start:start + n]


def _generated(seed: int, n_music: int = 40, n_events: int = 240, n_textures: int = 40) -> tuple[list, list, list]:
    """Generated MIDI rendered by fluidsynth, generated events and textures, the train files of
    ``data.EFFECT_GLOBS``: material of another make than the recorded games (training seeds)."""
    import tempfile

    from services.common.audio import resample
    from training.separation import data

    rng = random.Random(seed)
    music = []
    with tempfile.TemporaryDirectory() as tmp:
        mid = Path(tmp) / "m.mid"
        for i in range(n_music):
            data._write_generated_midi(mid, random.Random(seed * 1000 + i), rng.uniform(20, 40))
            x = data.render_midi(mid, rng.choice(data.SOUNDFONTS), rate=RATE)
            if x is not None and len(x) > 3 * RATE:
                music.append(x)
    nrng = np.random.default_rng(seed)
    up = lambda x: resample(x[None].astype(np.float32), data.SR, RATE)[0]
    events = [up(data.generated_event(nrng)) for _ in range(n_events)]
    for folder, pattern in data.EFFECT_GLOBS:
        for p in sorted(Path(folder).glob(pattern)):
            if data.is_test(p.name) or any(tag in p.name for tag in data.EFFECT_EXCLUDE):
                continue
            try:
                events.append(data.read_audio(p, RATE)[0].mean(axis=0).astype(np.float32))
            except Exception:  # noqa: BLE001, S112 - skip undecodable files
                continue
    textures = [up(data.generated_texture(nrng, 20.0)) for _ in range(n_textures)]
    return music, events, textures


def build(out: Path, n: int = 320, seconds: float = 6.0, seed: int = 4242, synthetic_share: float = 0.0,
          recorded_share: float = 0.0, telephone_share: float = 0.0) -> None:
    """``n`` mixtures of ``seconds``: speech, music + effects and DeepFilterNet3's output. A
    ``synthetic_share`` of the music, the events and the beds is generated (``_generated``); a
    ``recorded_share`` of the mixtures speaks with one hedgewars actor's recorded lines
    (``_recorded_pool``), and a ``telephone_share`` of them through ``telephone``."""
    import services.inference.models  # noqa: F401 - registers the models
    from bench.heldout import sources as ho
    from services.inference.model_client import InProcessModelClient

    client = InProcessModelClient()
    rng = np.random.default_rng(seed)
    voices = _speech_pool(seed)
    actors = _recorded_pool() if recorded_share > 0 else {}
    actor_names = sorted(actors)
    scores = [c.path for c in ho.clips("music", "train")]
    sounds = [c.path for c in ho.clips("effect", "train")]
    gen_music, gen_events, gen_textures = _generated(seed) if synthetic_share > 0 else ([], [], [])
    cache: dict[Path, np.ndarray] = {}

    def load(p: Path) -> np.ndarray:
        if p not in cache:
            if len(cache) > 60:
                cache.pop(next(iter(cache)))
            try:
                cache[p] = ho.load(p, RATE)[: 60 * RATE]
            except Exception:  # noqa: BLE001 - a clip that does not decode
                cache[p] = np.zeros(RATE, np.float32)
        return cache[p]

    def synthetic() -> bool:                           # draws nothing at share 0 (sets 1 and 2 repeat)
        return synthetic_share > 0 and rng.random() < synthetic_share

    m = int(seconds * RATE)
    keep = {"speech": [], "music": [], "effect": [], "dfn": []}
    t0 = time.monotonic()
    for i in range(n):
        parts, length = [], int(rng.uniform(0.0, 0.8) * RATE)
        parts.append(np.zeros(length, np.float32))
        lines = actors[actor_names[rng.integers(len(actor_names))]] if actors and rng.random() < recorded_share else voices
        while length < m:
            x = lines[rng.integers(len(lines))]
            gap = np.zeros(int(rng.uniform(0.1, 0.8) * RATE), np.float32)
            parts += [x, gap]
            length += len(x) + len(gap)
        speech = np.concatenate(parts)[:m]
        if telephone_share > 0 and rng.random() < telephone_share:
            speech = telephone(rng, speech)
        speech = speech / (_rms(speech[np.abs(speech) > 1e-4]) + 1e-9) * 0.05
        music = np.zeros(m, np.float32)
        effect = np.zeros(m, np.float32)
        has_music = rng.random() < 0.85
        if has_music:
            src = gen_music[rng.integers(len(gen_music))] if synthetic() else load(scores[rng.integers(len(scores))])
            music = _crop(rng, src, m)
        if not has_music or rng.random() < 0.85:
            for _ in range(rng.integers(3, 11)):
                src = gen_events[rng.integers(len(gen_events))] if synthetic() else load(sounds[rng.integers(len(sounds))])
                fx = src[: int(rng.uniform(0.2, 3.0) * RATE)]
                at = rng.integers(0, max(1, m - len(fx)))
                effect[at:at + len(fx)] += fx[: m - at] / (_rms(fx) + 1e-9) * rng.uniform(0.3, 1.0)
            if gen_textures and synthetic():                                  # a bed under the events
                bed = _crop(rng, gen_textures[rng.integers(len(gen_textures))], m)
                effect += bed / (_rms(bed) + 1e-9) * _rms(effect) * rng.uniform(0.1, 0.5)
        ref = _rms(speech[np.abs(speech) > 1e-4])
        if _rms(music) > 1e-6:
            music = music / _rms(music) * ref * 10 ** (rng.uniform(-12, 3) / 20)
        if _rms(effect) > 1e-6:
            effect = effect / _rms(effect) * ref * 10 ** (rng.uniform(-12, 3) / 20)
        mix = speech + music + effect
        peak = np.abs(mix).max()
        if peak > 0.95:
            speech, music, effect, mix = (a * 0.95 / peak for a in (speech, music, effect, mix))
        dfn = np.asarray(client.infer("speech_enhancer", {"audio": mix.astype(np.float32)})["audio"],
                         np.float32).reshape(-1)[:m]
        for k, v in (("speech", speech), ("music", music), ("effect", effect), ("dfn", dfn)):
            keep[k].append(v.astype(np.float16))
        if (i + 1) % 40 == 0:
            print(f"{i + 1} / {n} ({time.monotonic() - t0:.0f} s)", flush=True)
    np.savez(out, **{k: np.stack(v) for k, v in keep.items()})
    print(f"{n} mixtures in {time.monotonic() - t0:.0f} s -> {out}")


# ---------------------------------------------------------------------- training

def _spec(x: torch.Tensor) -> torch.Tensor:
    window = torch.hann_window(N_FFT)
    return torch.stft(x, N_FFT, HOP, window=window, center=True, pad_mode="constant",
                      return_complex=True).transpose(-1, -2)             # (B, T, F)


def _sdr_loss(est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Negative SDR on complex spectra (the STFT is near-orthogonal at 75 % overlap)."""
    num = (ref.abs() ** 2).sum(dim=(1, 2))
    den = ((est - ref).abs() ** 2).sum(dim=(1, 2))
    return -(10 * torch.log10((num + 1e-8) / (den + 1e-8))).mean()


def train(data: list[Path], out: Path, steps: int = 1500, batch: int = 8, crop_s: float = 4.0,
          max_lr: float = 2e-3, seed: int = 7, init: Path | None = None) -> None:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    parts = [np.load(p) for p in data]
    speech, music, effect, dfn = (np.concatenate([z[k] for z in parts]) for k in ("speech", "music", "effect", "dfn"))
    n, length = speech.shape
    hold = np.arange(n) % 10 == 0                                        # a tenth kept to watch
    crop = int(crop_s * RATE)
    model = SpeechMaskNet()
    if init is not None:
        model.load_state_dict(state_from_onnx(init))
    opt = torch.optim.AdamW(model.parameters(), lr=max_lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=steps, pct_start=0.1)
    start = 0
    if out.exists():
        state = torch.load(out)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start = state["step"]
        rng = np.random.default_rng(seed + start)

    def batch_of(idx: np.ndarray, offsets: np.ndarray) -> tuple[torch.Tensor, ...]:
        take = lambda a: torch.from_numpy(np.stack([a[i, o:o + crop] for i, o in zip(idx, offsets)]).astype(np.float32))
        s, mu, e, d = take(speech), take(music), take(effect), take(dfn)
        x = s + mu + e
        return _spec(x), _spec(d), _spec(x - d), _spec(s), _spec(mu + e)

    def loss_of(b: tuple[torch.Tensor, ...]) -> torch.Tensor:
        X, S, R, target, rest = b
        mask = model(X.abs(), S.abs(), R.abs())
        return _sdr_loss(mask * X, target) + 0.5 * _sdr_loss((1 - mask) * X, rest)

    train_ids, held = np.flatnonzero(~hold), np.flatnonzero(hold)
    held_batch = batch_of(held, np.zeros(len(held), int))
    t0 = time.monotonic()
    for step in range(start, steps):
        idx = rng.choice(train_ids, batch)
        loss = loss_of(batch_of(idx, rng.integers(0, length - crop, batch)))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        if (step + 1) % 100 == 0 or step + 1 == steps:
            with torch.no_grad():
                X, S, R, target, _ = held_batch
                plain = _sdr_loss((S.abs() / (S.abs() + R.abs() + 1e-8)) ** RATIO_EXPONENT * X, target)
                got = _sdr_loss(model(X.abs(), S.abs(), R.abs()) * X, target)
            print(f"step {step + 1}: train {loss.item():.2f}, held speech SDR {-got.item():.2f} dB "
                  f"(ratio mask ** {RATIO_EXPONENT}: {-plain.item():.2f}), {time.monotonic() - t0:.0f} s", flush=True)
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "step": step + 1}, out)


def state_from_onnx(path: Path) -> dict[str, torch.Tensor]:
    """The weights of an exported ``SpeechMaskNet`` (``train --init``: fine-tune shipped weights)."""
    import onnx
    from onnx import numpy_helper

    from training.separation.train import lstm_state

    model = onnx.load(str(path))
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    mats = [init[n.input[1]] for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in init
            and n.input[1] not in ("pool", "spread")]                            # inp, then out
    state = {"inp.weight": torch.from_numpy(mats[0].T.copy()), "inp.bias": torch.from_numpy(init["inp.bias"].copy()),
             "out.weight": torch.from_numpy(mats[1].T.copy()), "out.bias": torch.from_numpy(init["out.bias"].copy())}
    state.update(lstm_state(init, [n for n in model.graph.node if n.op_type == "LSTM"]))
    state.update({name: torch.from_numpy(init[name].copy()) for name in ("pool", "spread")})  # the mel buffers
    return state


def export(checkpoint: Path, onnx_path: Path) -> None:
    model = SpeechMaskNet()
    model.load_state_dict(torch.load(checkpoint)["model"])
    model.eval()
    dummy = torch.rand(50, BINS)
    torch.onnx.export(model, (dummy, dummy, dummy), str(onnx_path), input_names=["mag_x", "mag_s", "mag_r"],
                      output_names=["mask"], dynamic_axes={k: {0: "frames"} for k in ("mag_x", "mag_s", "mag_r", "mask")},
                      opset_version=17, dynamo=False)
    print(f"exported {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("out", type=Path)
    b.add_argument("n", type=int, nargs="?", default=320)
    b.add_argument("--seed", type=int, default=4242)
    b.add_argument("--synthetic-share", type=float, default=0.0)
    b.add_argument("--recorded-share", type=float, default=0.0)
    b.add_argument("--telephone-share", type=float, default=0.0)
    t = sub.add_parser("train")
    t.add_argument("data", type=Path, nargs="+", help="datasets made by `build`, then the checkpoint to write")
    t.add_argument("--steps", type=int, default=1500)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--init", type=Path, default=None, help="start from these exported weights (fine-tune)")
    t.add_argument("--max-lr", type=float, default=2e-3)
    t.add_argument("--seed", type=int, default=7)
    e = sub.add_parser("export")
    e.add_argument("checkpoint", type=Path)
    e.add_argument("onnx", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(getattr(args, "threads", 2))
    if args.cmd == "build":
        build(args.out, args.n, seed=args.seed, synthetic_share=args.synthetic_share,
              recorded_share=args.recorded_share, telephone_share=args.telephone_share)
    elif args.cmd == "train":
        train(args.data[:-1], args.data[-1], args.steps, max_lr=args.max_lr, seed=args.seed, init=args.init)
    else:
        export(args.checkpoint, args.onnx)


if __name__ == "__main__":
    random.seed(0)
    main()
