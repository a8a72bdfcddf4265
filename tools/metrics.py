"""Evaluation metrics of the benches and tests: DER and WER (diarize), SI-SDR (enhance, separate).

DER = (missed speech + false alarm + speaker confusion) / reference speech, on a 10 ms grid,
with the hypothesis speakers mapped one-to-one onto the reference by the Hungarian method.
A ``collar`` (seconds each side of every reference boundary) is left out of the scoring, as
md-eval does with its usual 0.25 s. Overlapped speech counts per speaker, as md-eval does: a
frame where two reference speakers talk and the hypothesis has one is one speaker-frame missed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

STEP = 0.01
Turn = tuple[float, float, str]   # start, end, speaker


def _grid(turns: Sequence[Turn], speakers: list[str], n: int) -> np.ndarray:
    grid = np.zeros((len(speakers), n), bool)
    for s, e, spk in turns:
        grid[speakers.index(spk), round(s / STEP):round(e / STEP)] = True
    return grid


def der(reference: Sequence[Turn], hypothesis: Sequence[Turn], collar: float = 0.0) -> dict[str, float]:
    from scipy.optimize import linear_sum_assignment

    end = max([e for _, e, _ in reference] + [e for _, e, _ in hypothesis] + [0.0])
    n = int(np.ceil(end / STEP)) + 1
    ref_spk = sorted({t[2] for t in reference})
    hyp_spk = sorted({t[2] for t in hypothesis})
    ref = _grid(reference, ref_spk, n)
    hyp = _grid(hypothesis, hyp_spk, n)
    scored = np.ones(n, bool)
    if collar > 0:
        c = round(collar / STEP)
        for s, e, _ in reference:
            for b in (round(s / STEP), round(e / STEP)):
                scored[max(0, b - c):b + c] = False
    ref, hyp = ref[:, scored], hyp[:, scored]
    n_ref, n_hyp = ref.sum(0), hyp.sum(0)
    total = float(n_ref.sum())
    miss = float(np.maximum(n_ref - n_hyp, 0).sum())
    false_alarm = float(np.maximum(n_hyp - n_ref, 0).sum())
    # Confusion: speaker-frames both sides hold but the mapped speaker differs.
    overlap = (ref[:, None, :] & hyp[None, :, :]).sum(-1) if len(ref_spk) and len(hyp_spk) else np.zeros((0, 0))
    matched = 0.0
    if overlap.size:
        r, h = linear_sum_assignment(-overlap)
        matched = float(overlap[r, h].sum())
    confusion = float(np.minimum(n_ref, n_hyp).sum()) - matched
    denom = max(total, 1.0)
    return {"der": (miss + false_alarm + confusion) / denom, "miss": miss / denom,
            "false_alarm": false_alarm / denom, "confusion": confusion / denom, "scored_s": total * STEP}


def normalise(text: str) -> list[str]:
    """Lower-cased words of any script; hyphens and apostrophes split words ("aujourd'hui" and
    Whisper's "aujourd 'hui" agree)."""
    text = text.lower().replace("-", " ").replace("'", " ").replace("\u2019", " ")
    return re.findall(r"[^\W_]+", text)


# Small numbers spelled out -> digits, in the languages of the benches (Whisper writes "sept" or
# "7" depending on context; neither is an error). "un"/"uno" are also articles: both sides map.
_NUMBERS = {w: str(i) for words in (
    "zero one two three four five six seven eight nine ten",
    "zéro un deux trois quatre cinq six sept huit neuf dix",
    "zero uno due tre quattro cinque sei sette otto nove dieci",
    "cero uno dos tres cuatro cinco seis siete ocho nueve diez",
    "ноль один два три четыре пять шесть семь восемь девять десять",
) for i, w in enumerate(words.split())} | {"twenty": "20", "vingt": "20", "venti": "20", "veinte": "20"}


# British -> American spellings, as Whisper's English normaliser does (a spelling is not an error).
_SPELLING = {"colour": "color", "colours": "colors", "favourite": "favorite", "centre": "center",
             "theatre": "theater", "organise": "organize", "realise": "realize", "grey": "gray"}


def _norm_word(w: str) -> str:
    return _SPELLING.get(w, _NUMBERS.get(w, w))


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after lower-casing, dropping punctuation, writing small numbers as digits and
    mapping British spellings to American ones."""
    ref = [_norm_word(w) for w in normalise(reference)]
    hyp = [_norm_word(w) for w in normalise(hypothesis)]
    if not ref:
        return float(len(hyp) > 0)
    d = np.arange(len(hyp) + 1)
    for i, rw in enumerate(ref, 1):
        prev, d = d, np.empty_like(d)
        d[0] = i
        for j, hw in enumerate(hyp, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (rw != hw))
    return float(d[-1]) / len(ref)


def si_sdr(est: np.ndarray, ref: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019), on zero-mean signals."""
    est = est.astype(np.float64) - est.mean()
    ref = ref.astype(np.float64) - ref.mean()
    scale = np.dot(est, ref) / (np.dot(ref, ref) + 1e-12)
    target = scale * ref
    return float(10 * np.log10((target @ target + 1e-12) / ((est - target) @ (est - target) + 1e-12)))
