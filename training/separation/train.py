"""Train the music/effect mask network and export it to ONNX.

Recipe (see services/inference/models/weights/MODEL_CARD.md): 16 kHz, STFT 512/128 (hann),
log-magnitude in, one sigmoid mask out (music; effect = 1 - mask, so the two stems always sum
to the input), a 2-layer BLSTM, loss = negative SI-SDR of both stems after the inverse STFT.
Mixtures are drawn on the fly from ``var/separation/pools.npz`` (see data.py) with a fixed
seed; one thread (``torch.set_num_threads(1)``), a fixed number of steps.

    python -m training.separation.train --pools var/separation/pools.npz --steps 3600
    python -m training.separation.residuals var/separation/pools.npz var/separation/residuals.npz
    python -m training.separation.train --init var/separation/music_effect.pt \
        --residuals var/separation/residuals.npz --steps 1400 --stop-step 1200 --max-lr 7e-4 --seed 20260102

The second run fine-tunes on the pipeline's own residuals (see residuals.py). On a GPU
(``--device cuda``) batches are drawn by ``--workers`` DataLoader processes, and
``--budget-minutes`` replaces the step count: the one-cycle rate follows the share of the time
spent, so a run fits a lease whatever the machine's speed (not repeatable step for step).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import scipy.signal as sps
import torch
from torch import nn

from training.separation.data import SR, Pool, make_mixture

N_FFT, HOP = 512, 128
BINS = N_FFT // 2 + 1


class MaskNet(nn.Module):
    """magnitude (B, T, 257) -> music mask (B, T, 257) in [0, 1]."""

    def __init__(self, bins: int = BINS, hidden: int = 192, layers: int = 2) -> None:
        super().__init__()
        self.inp = nn.Linear(bins, hidden)
        self.lstm = nn.LSTM(hidden, hidden, layers, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, bins)

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> MaskNet:
        """A network shaped for this state dict (its width read off the input layer), loaded."""
        model = cls(hidden=state["inp.bias"].shape[0])
        model.load_state_dict(state)
        return model

    def forward(self, magnitude: torch.Tensor) -> torch.Tensor:
        f = torch.log(magnitude + 1e-6)
        f = f - f.mean(dim=(1, 2), keepdim=True)          # level invariance
        h = torch.tanh(self.inp(f))                        # (B, T, H)
        h, _ = self.lstm(h)                                # (B, T, 2H)
        return torch.sigmoid(self.out(h))                  # (B, T, F)


def si_sdr(est: torch.Tensor, ref: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    ref = ref - ref.mean(dim=-1, keepdim=True)
    est = est - est.mean(dim=-1, keepdim=True)
    scale = (est * ref).sum(-1, keepdim=True) / ((ref ** 2).sum(-1, keepdim=True) + eps)
    target = scale * ref
    noise = est - target
    return 10 * torch.log10((target ** 2).sum(-1) + eps) - 10 * torch.log10((noise ** 2).sum(-1) + eps)


def separate(model: MaskNet, mix: torch.Tensor) -> torch.Tensor:
    """mix (B, N) -> music estimate (B, N)."""
    window = torch.hann_window(N_FFT, device=mix.device)
    spec = torch.stft(mix, N_FFT, HOP, window=window, return_complex=True)    # (B, F, T)
    mask = model(spec.abs().transpose(1, 2)).transpose(1, 2)
    return torch.istft(spec * mask, N_FFT, HOP, window=window, length=mix.shape[-1])


def _lowpass(pair: tuple[np.ndarray, np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Band-limit both sources alike (telephone / 8-11 kHz material upsampled by the pipeline)."""
    cutoff = rng.uniform(3000, 7000)
    sos = sps.butter(8, cutoff / (SR / 2), output="sos")
    return tuple(sps.sosfiltfilt(sos, x).astype(np.float32) for x in pair)


def batch(pool: Pool, rng: np.random.Generator, size: int, n: int,
          lowpass_prob: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [make_mixture(pool, rng, n) for _ in range(size)]
    pairs = [_lowpass(p, rng) if rng.random() < lowpass_prob else p for p in pairs]
    return torch.from_numpy(np.stack([p[0] for p in pairs])), torch.from_numpy(np.stack([p[1] for p in pairs]))


def examples(pool: Pool, res: dict | None, rng: np.random.Generator, args: argparse.Namespace,
             n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One training batch (mix, music, effect); with residuals, a share of its items are pipeline
    residuals, where mix != music + effect (the effect target takes the rest)."""
    music, effect = batch(pool, rng, args.batch, n, args.lowpass_prob)
    mix = music + effect
    if res is not None:
        for b in range(args.batch):
            if rng.random() < args.residual_prob:
                i = rng.integers(len(res["residual"]))
                s0 = rng.integers(0, res["residual"].shape[1] - n + 1)
                mix[b] = torch.from_numpy(res["residual"][i, s0:s0 + n])
                music[b] = torch.from_numpy(res["music"][i, s0:s0 + n])
                effect[b] = mix[b] - music[b]
    return mix, music, effect


class Batches(torch.utils.data.IterableDataset):
    """Endless batches drawn in DataLoader workers, each worker with its own seed: a GPU step
    takes less time than one numpy process needs to mix a batch."""

    def __init__(self, pool: Pool, res: dict | None, args: argparse.Namespace, n: int, seed: int) -> None:
        self.pool, self.res, self.args, self.n, self.seed = pool, res, args, n, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        while True:
            yield examples(self.pool, self.res, rng, self.args, self.n)


def one_cycle(fraction: float, max_lr: float, pct_start: float = 0.05) -> float:
    """OneCycleLR's cosine shape (initial max/25, final max/1e4) at a share of the run."""
    lo, end = max_lr / 25, max_lr / 25 / 1e4
    if fraction < pct_start:
        return lo + (max_lr - lo) * (1 - np.cos(np.pi * fraction / pct_start)) / 2
    f = min(1.0, (fraction - pct_start) / (1 - pct_start))
    return end + (max_lr - end) * (1 + np.cos(np.pi * f)) / 2


class MaskEnsemble(nn.Module):
    """The mean of several networks' music masks, exported as one ONNX graph with the same
    input and output as a single MaskNet (the service needs no change)."""

    def __init__(self, members: list[MaskNet]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, magnitude: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(magnitude) for m in self.members]).mean(dim=0)


def export_onnx(model: nn.Module, path: Path) -> None:
    model = model.cpu()
    model.eval()
    dummy = torch.rand(1, 200, BINS)
    torch.onnx.export(model, (dummy,), str(path), input_names=["magnitude"], output_names=["mask"],
                      dynamic_axes={"magnitude": {0: "batch", 1: "frames"}, "mask": {0: "batch", 1: "frames"}},
                      opset_version=17, dynamo=False)


def member_states(path: Path) -> list[dict[str, torch.Tensor]]:
    """The state dicts of an exported MaskNet, or of each member of an exported ``MaskEnsemble``,
    read back from the ONNX file (to fine-tune or re-assemble shipped weights). ONNX LSTM gates
    are ordered i, o, f, c; torch's i, f, c, o."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    lstms = [n for n in model.graph.node if n.op_type == "LSTM"]
    mats = [init[n.input[1]] for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in init]
    prefixes = sorted(name.removesuffix("inp.bias") for name in init if name.endswith("inp.bias"))

    states = []
    for k, prefix in enumerate(prefixes):                 # members are traced one after the other
        state = {"inp.weight": torch.from_numpy(mats[2 * k].T.copy()),
                 "inp.bias": torch.from_numpy(init[f"{prefix}inp.bias"].copy()),
                 "out.weight": torch.from_numpy(mats[2 * k + 1].T.copy()),
                 "out.bias": torch.from_numpy(init[f"{prefix}out.bias"].copy())}
        state.update(lstm_state(init, lstms[2 * k:2 * k + 2]))
        states.append(state)
    return states


def lstm_state(init: dict[str, np.ndarray], nodes: list) -> dict[str, torch.Tensor]:
    """The state dict entries of a bidirectional ``nn.LSTM`` named ``lstm``, read from its
    exported ONNX LSTM nodes (one per layer). ONNX orders the gates i, o, f, c; torch i, f, c, o."""

    def gates(w: np.ndarray) -> torch.Tensor:
        i, o, f, c = np.split(w, 4, axis=0)
        return torch.from_numpy(np.concatenate([i, f, c, o], axis=0).copy())

    state = {}
    for layer, node in enumerate(nodes):
        w, r, b = (init[name] for name in node.input[1:4])
        for d, suffix in enumerate(("", "_reverse")):
            key = f"l{layer}{suffix}"
            state[f"lstm.weight_ih_{key}"] = gates(w[d])
            state[f"lstm.weight_hh_{key}"] = gates(r[d])
            state[f"lstm.bias_ih_{key}"] = gates(b[d][: b.shape[1] // 2])
            state[f"lstm.bias_hh_{key}"] = gates(b[d][b.shape[1] // 2:])
    return state


def state_from_onnx(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of an exported single MaskNet (``--init``)."""
    states = member_states(path)
    if len(states) != 1:
        raise SystemExit(f"{path} holds an ensemble of {len(states)} networks: --init one of its members")
    return states[0]


def _resume(path: str | None, model: MaskNet, opt, sched, rng: np.random.Generator) -> tuple[list, int]:
    """Load a checkpoint written by ``_save`` if there is one: (log so far, first step to run)."""
    if not path or not Path(path).exists():
        return [], 1
    state = torch.load(path, weights_only=False)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    rng.bit_generator.state = state["rng"]
    torch.set_rng_state(state["torch_rng"])
    print(f"resumed from {path} at step {state['step']}", flush=True)
    return state["log"], state["step"] + 1


def _save(args: argparse.Namespace, step: int, model: MaskNet, opt, sched, rng: np.random.Generator,
          log: list) -> None:
    """Resumable checkpoint (atomic rename) and, every --snapshot-every steps, a state dict to evaluate."""
    if args.checkpoint:
        tmp = Path(args.checkpoint + ".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "step": step, "log": log},
                   tmp)
        tmp.replace(args.checkpoint)
    if args.snapshots and not args.budget_minutes and step % args.snapshot_every == 0:   # else by share of time
        Path(args.snapshots).mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), Path(args.snapshots) / f"step{step:05d}.pt")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pools", default="var/separation/pools.npz")
    ap.add_argument("--out", default="services/inference/models/weights/music_effect.onnx")
    ap.add_argument("--steps", type=int, default=3600)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--hidden", type=int, default=192, help="LSTM width of a new network (--init keeps its own)")
    ap.add_argument("--seed", type=int, default=20260101)
    ap.add_argument("--lowpass-prob", type=float, default=0.0, help="share of band-limited examples")
    ap.add_argument("--init", default=None, help="start from this state dict or ONNX export (fine-tuning)")
    ap.add_argument("--residuals", default=None, help="residuals.npz from residuals.py (pipeline-like inputs)")
    ap.add_argument("--residual-prob", type=float, default=0.5, help="share of batch items from --residuals")
    ap.add_argument("--max-lr", type=float, default=2e-3)
    ap.add_argument("--log", default="var/separation/train_log.json")
    ap.add_argument("--stop-step", type=int, default=None, help="stop here (schedule still spans --steps)")
    ap.add_argument("--max-minutes", type=float, default=34.0, help="stop early (and say so) past this")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--checkpoint", default=None, help="resumable state (model, optimiser, schedule, RNG): "
                    "written every 100 steps, resumed from when it exists")
    ap.add_argument("--snapshots", default=None, help="folder for a state dict every --snapshot-every steps")
    ap.add_argument("--snapshot-every", type=int, default=500, help="(step-counted runs)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader processes drawing batches (0: in process)")
    ap.add_argument("--budget-minutes", type=float, default=None,
                    help="train for this long, the learning rate following the share of it spent (ignores --steps)")
    ap.add_argument("--snapshot-fractions", type=float, nargs="*", default=[],
                    help="with --budget-minutes: a state dict at these shares of the budget")
    ap.add_argument("--log-every", type=int, default=100)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    rng = np.random.default_rng(args.seed)
    train, test = Pool(Path(args.pools), "train"), Pool(Path(args.pools), "test")
    if args.init:                              # its width, not --hidden
        init = Path(args.init)
        model = MaskNet.from_state(state_from_onnx(init) if init.suffix == ".onnx" else torch.load(init))
    else:
        model = MaskNet(hidden=args.hidden)
    model.to(device)
    res = dict(np.load(args.residuals)) if args.residuals else None         # read once, not per access
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.max_lr, total_steps=args.steps, pct_start=0.05)
    n = int(args.seconds * SR)
    val_rng = np.random.default_rng(args.seed + 1)
    val = [tuple(t.to(device) for t in batch(test, val_rng, 8, n)) for _ in range(3)]
    log, first = _resume(args.checkpoint, model, opt, sched, rng)
    t0 = time.monotonic() - (log[-1]["minutes"] * 60 if log else 0.0)
    budget_s = args.budget_minutes * 60 if args.budget_minutes else None
    if args.workers:
        loader = iter(torch.utils.data.DataLoader(Batches(train, res, args, n, args.seed + first), batch_size=None,
                                                  num_workers=args.workers, prefetch_factor=4, pin_memory=True))
    snapshot_at = sorted(args.snapshot_fractions)
    step = first - 1
    for step in itertools.count(first) if budget_s else range(first, args.steps + 1):
        model.train()
        mix, music, effect = next(loader) if args.workers else examples(train, res, rng, args, n)
        mix, music, effect = (t.to(device, non_blocking=True) for t in (mix, music, effect))
        est = separate(model, mix)
        loss = -(si_sdr(est, music).mean() + si_sdr(mix - est, effect).mean()) / 2
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        if budget_s:
            for group in opt.param_groups:
                group["lr"] = one_cycle((time.monotonic() - t0) / budget_s, args.max_lr)
        opt.step()
        if not budget_s:
            sched.step()
        spent = time.monotonic() - t0
        done = step == args.steps if not budget_s else spent >= budget_s
        if step % args.log_every == 0 or done:
            model.eval()
            with torch.no_grad():
                m_sdr = e_sdr = 0.0
                for vm, ve in val:
                    ve_est = separate(model, vm + ve)
                    m_sdr += si_sdr(ve_est, vm).mean().item() / len(val)
                    e_sdr += si_sdr(vm + ve - ve_est, ve).mean().item() / len(val)
            elapsed = spent / 60
            log.append({"step": step, "loss": round(loss.item(), 3), "val_music": round(m_sdr, 2),
                        "val_effect": round(e_sdr, 2), "minutes": round(elapsed, 2)})
            print(json.dumps(log[-1]), flush=True)
            _save(args, step, model, opt, sched, rng, log)
            if done:
                break
            if step == args.stop_step:
                print(f"stopping at step {step}: --stop-step", flush=True)
                break
            if elapsed > args.max_minutes:
                print(f"stopping at step {step}: time limit", flush=True)
                break
        if budget_s and snapshot_at and spent >= snapshot_at[0] * budget_s and args.snapshots:
            Path(args.snapshots).mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), Path(args.snapshots) / f"at{round(snapshot_at.pop(0) * 100):03d}.pt")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.cpu().state_dict(),
               out.with_suffix(".pt") if "var/" in str(out) or args.device != "cpu" else Path("var/separation/music_effect.pt"))
    export_onnx(model, out)
    Path(args.log).write_text(json.dumps(
        {"params": params, "steps_done": step, "args": vars(args), "log": log}, indent=1))
    print(f"exported {out} ({params} parameters, {out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
