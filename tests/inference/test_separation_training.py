"""The GPU training path of the music/effect network: the Vorbis pack that carries the pools to a
GPU machine, the wall-time learning-rate schedule and the batches drawn in worker processes."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from training.separation import pack
from training.separation.data import SR, Pool
from training.separation.train import Batches, examples, one_cycle


def _tone_pools(path, rng: np.random.Generator) -> None:
    """A tiny pools.npz in data.py's layout: tones and noise bursts of a few lengths."""
    arrays = {}
    for split in pack.SPLITS:
        for k, name in enumerate(pack.POOLS):
            items = []
            for i in range(3):
                n = int(SR * (1.0 + 0.5 * i))
                t = np.arange(n) / SR
                items.append((0.3 * np.sin(2 * np.pi * (220 + 110 * i + 50 * k) * t)
                              + 0.05 * rng.standard_normal(n)).astype(np.float32))
            arrays[f"{split}_{name}"] = np.concatenate(items)
            arrays[f"{split}_{name}_offsets"] = np.cumsum([0] + [len(x) for x in items])
    np.savez(path, **arrays)


def test_pack_round_trip_keeps_every_clip_and_its_length(tmp_path):
    rng = np.random.default_rng(0)
    _tone_pools(tmp_path / "pools.npz", rng)
    residual = (0.2 * rng.standard_normal((4, 2 * SR))).astype(np.float32)
    music = (0.5 * residual).astype(np.float32)
    np.savez(tmp_path / "res.npz", residual=residual, music=music, effect=residual - music)

    pack.pack(tmp_path / "pools.npz", tmp_path / "res.npz", tmp_path / "pack.npz", quality=0.4)
    assert (tmp_path / "pack.npz").stat().st_size < 0.25 * (tmp_path / "pools.npz").stat().st_size
    pack.unpack(tmp_path / "pack.npz", tmp_path / "pools2.npz", tmp_path / "res2.npz")

    before, after = np.load(tmp_path / "pools.npz"), np.load(tmp_path / "pools2.npz")
    for split in pack.SPLITS:
        for name in pack.POOLS:
            key = f"{split}_{name}"
            assert np.array_equal(before[f"{key}_offsets"], after[f"{key}_offsets"])
            x, y = before[key], after[key]
            snr = 10 * np.log10(np.sum(x ** 2) / np.sum((x - y) ** 2))
            assert snr > 15, (key, snr)                                 # a codec, aligned, not a resampler
    res = np.load(tmp_path / "res2.npz")
    assert res["residual"].shape == residual.shape
    assert np.allclose(res["effect"], res["residual"] - res["music"])


def test_pack_caps_the_train_pools_it_carries(tmp_path, monkeypatch):
    _tone_pools(tmp_path / "pools.npz", np.random.default_rng(1))
    monkeypatch.setitem(pack.TRAIN_MINUTES, "music", 2.6 / 60)        # room for 2 of the 3 music clips
    pack.pack(tmp_path / "pools.npz", None, tmp_path / "pack.npz")
    pack.unpack(tmp_path / "pack.npz", tmp_path / "p.npz", tmp_path / "r.npz")
    offsets = np.load(tmp_path / "p.npz")["train_music_offsets"]
    assert len(offsets) - 1 == 2 and offsets[-1] <= 2.6 * SR
    assert not (tmp_path / "r.npz").exists()


def test_wall_time_schedule_is_torch_one_cycle():
    """``--budget-minutes`` sets the rate by the share of the time spent; at the same shares it
    must follow torch's OneCycleLR (cosine), the step-counted schedule of the CPU runs, to 1 %
    (torch ends its warm-up at a whole step)."""
    steps, max_lr = 1000, 2e-3
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=steps, pct_start=0.05)
    for step in range(steps):
        if step % 97 == 0 or step == steps - 1:
            assert one_cycle(step / (steps - 1), max_lr) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-2,
                                                                           abs=1e-9), step
        opt.step()
        sched.step()


def test_worker_batches_are_mixtures_of_the_pools(tmp_path):
    _tone_pools(tmp_path / "pools.npz", np.random.default_rng(2))
    pool = Pool(tmp_path / "pools.npz", "train")
    args = argparse.Namespace(batch=3, lowpass_prob=0.0, residual_prob=0.5)
    n = SR
    mix, music, effect = examples(pool, None, np.random.default_rng(3), args, n)
    assert mix.shape == music.shape == effect.shape == (3, n)
    assert torch.allclose(mix, music + effect)
    loader = torch.utils.data.DataLoader(Batches(pool, None, args, n, seed=7), batch_size=None, num_workers=2)
    first = [next(it) for it in [iter(loader)] for _ in range(4)]
    assert all(b[0].shape == (3, n) for b in first)
    assert not torch.equal(first[0][0], first[1][0])                  # the two workers draw different batches


def test_speech_mask_weights_read_back_from_onnx_give_the_same_mask(tmp_path):
    """``speech_mask train --init`` fine-tunes shipped weights: the state read back from the ONNX
    file (LSTM gates reordered, the two Linear layers told from the mel matrices) is the network
    that was exported."""
    from training.separation.speech_mask import BINS, SpeechMaskNet, export, state_from_onnx

    torch.manual_seed(0)
    net = SpeechMaskNet()
    with torch.no_grad():
        net.out.weight.normal_(0, 0.1)       # the output layer starts at zero: make it matter
        net.out.bias.normal_(0, 0.5)
    checkpoint = tmp_path / "net.pt"
    torch.save({"model": net.state_dict()}, checkpoint)
    export(checkpoint, tmp_path / "net.onnx")
    back = SpeechMaskNet()
    back.load_state_dict(state_from_onnx(tmp_path / "net.onnx"))
    mags = [torch.rand(40, BINS) for _ in range(3)]
    with torch.no_grad():
        want, got = net.eval()(*mags), back.eval()(*mags)
    assert torch.max(torch.abs(want - got)) < 1e-6
    assert torch.max(torch.abs(want - SpeechMaskNet()(*mags))) > 1e-3   # not the untrained ratio mask


def test_telephone_channel_band_limits_without_moving_a_sample():
    """The speech mask's training voices through a telephone line: nothing above 4 kHz, the same
    length, and no lag (the target must stay aligned with the mixture it is scored against)."""
    from scipy.signal import correlate

    from training.separation.speech_mask import RATE, telephone

    rng = np.random.default_rng(5)
    x = (0.1 * rng.standard_normal(RATE)).astype(np.float32)
    for _ in range(4):                                  # with and without the mu-law step
        y = telephone(rng, x)
        assert y.shape == x.shape and y.dtype == np.float32
        spectrum = np.abs(np.fft.rfft(y)) ** 2
        freqs = np.fft.rfftfreq(len(y), 1 / RATE)
        above = spectrum[freqs > 4200].sum() / spectrum[(freqs > 500) & (freqs < 3400)].sum()
        assert 10 * np.log10(above) < -40
        lags = correlate(y, x, "full")
        assert int(np.argmax(lags)) - (len(x) - 1) == 0


def test_recorded_speech_clips_never_share_a_prompt_across_splits(monkeypatch):
    """The pools' held-out speech watches the training: a held-out clip made of prompts that
    training clips also hold would read too well (they drew from one list until 2026-12-05)."""
    from types import SimpleNamespace

    from training.separation import real

    prompts = [f"/calib/prompt{i:03d}.wav" for i in range(120)]
    monkeypatch.setattr(real.ho, "voices", lambda role: [SimpleNamespace(path=p) for p in prompts])
    # prompt i is 2000 + i samples of ones: a clip's non-silent runs say which prompts it holds
    monkeypatch.setattr(real, "_mono", lambda p: np.ones(2000 + int(str(p)[-7:-4]), np.float32))
    pool = real.speech(seed=3, n_asterisk=40, n_espeak=0, n_flite=0)

    def held(clip: np.ndarray) -> set[int]:
        edges = np.flatnonzero(np.diff(np.concatenate([[0], clip > 0, [0]]).astype(int)))
        return {int(b - a) - 2000 for a, b in zip(edges[::2], edges[1::2])}

    used = {split: set().union(*(held(c) for c in clips)) for split, clips in pool.items()}
    assert len(pool["test"]) == 4 and len(pool["train"]) == 36
    assert used["test"] and used["train"] and not used["test"] & used["train"]
