"""Separate figures: SI-SDR per stem for each separation type, realtime factor, memory.

First the held-out set of real recordings (``bench/separate_heldout.py``: evaluation voices,
wesnoth-1.16-music, wesnoth and colobot effects), each figure per source beside the naive
baseline (DeepFilterNet3 alone; HPSS of its residual) and the difference, then the same
mixtures with a recorded wesnoth ambience loop under their effects; and
``speech-nonlingual`` on the same voices with recorded cries and laughs between their prompts
(``bench/nonlingual_heldout.py``). Then the older
synthetic set (``training/separation/heldout.py``): speech from espeak-ng voices not used in
training, music from MIDI generated with held-out seeds (fluidsynth), effects
from held-out Debian sound files and held-out generated events/textures. Six 20 s mixtures at
48 kHz, music and effects each at -6 +- 3 dB relative to the speech. For each it runs the real
pipeline and prints mean SI-SDR and SI-SDR improvement (SI-SDRi, over the unprocessed mixture)
per stem:

* ``dialogue-me``: speech, me (against music + effects);
* ``dialogue-music-effect``: speech, music, effect, with the trained network, and for
  comparison the DSP baseline on the same speech residual;
* the oracle: ideal magnitude-ratio masks computed from the true stems (64 ms STFT), the
  ceiling of any method that masks magnitudes at that resolution, as the pipeline does;
* ``speech-nonlingual``: speech words interleaved with hums, held vowels and laughter over
  music: SI-SDR of the speech stem against the spoken words alone, and the share of the
  non-verbal sounds' energy that leaks into the speech stem;

then the realtime factor of each type (2 shared CPU cores) and the peak memory of a 30 s and
a 180 s stereo file (fresh processes), to show memory does not grow with length.

    .venv/bin/python -m bench separate
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

R = 48000
N_MIX, SECONDS = 6, 20.0
VOICES = ("en-gb-x-rp", "en-us+f3", "nl", "pt")


def _run(pipeline, src: Path, work: Path, sep_type: str):
    from services.inference.pipeline import JobContext, parse_params

    work.mkdir(parents=True, exist_ok=True)
    params = parse_params("separate", {"file_id": "f", "separation_type": sep_type, "bit_depth": 32})
    ctx = JobContext("bench", "bench", "separate", params, {"file": src}, work)
    results = pipeline.run(ctx)
    stems = {r.name.split(".")[0]: sf.read(str(r.path), dtype="float32")[0] for r in results
             if r.name != "manifest.json"}
    return stems, json.loads((work / "manifest.json").read_text())


def _score(si_sdr, mix: np.ndarray, refs: dict, stems: dict[str, np.ndarray]) -> dict:
    row = {}
    for name, est in stems.items():
        row[name] = si_sdr(est, refs[name])
        row[name + "_i"] = row[name] - si_sdr(mix, refs[name])
    return row


def _mean(rows: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rows]))


def _table(title: str, rows: list[dict], stems: list[str]) -> None:
    print(f"{title}")
    for s in stems:
        print(f"  {s:<10} SI-SDR {_mean(rows, s):6.2f} dB   SI-SDRi {_mean(rows, s + '_i'):+6.2f} dB")


def _oracle(mix: np.ndarray, refs: list[np.ndarray]) -> list[np.ndarray]:
    """Stems from the ideal ratio masks ``|S_k| / sum_j |S_j|`` (64 ms STFT): what a perfect
    magnitude mask would give, to put the pipeline's figures in context."""
    from services.inference.separation.stft import istft, stft

    specs = np.abs(stft(np.stack(refs), 3072, 768))
    masks = specs / (specs.sum(axis=0, keepdims=True) + 1e-12)
    return list(istft(stft(mix, 3072, 768)[None] * masks, 3072, 768, len(mix)))


def _peak_rss(seconds: float, tmp: Path) -> float:
    """Peak RSS (MB) of a fresh process separating a stereo file of ``seconds``."""
    code = f"""
import resource, numpy as np, soundfile as sf
from pathlib import Path
import services.inference.models
from services.inference.model_client import InProcessModelClient
from services.inference.pipeline import JobContext, parse_params
from services.inference.pipelines.separate import SeparatePipeline
rng = np.random.default_rng(0)
p = Path({str(tmp)!r}) / "long{int(seconds)}.wav"
with sf.SoundFile(str(p), "w", 44100, 2, subtype="PCM_16") as f:
    for _ in range(int({seconds} / 10)):
        f.write((0.05 * rng.standard_normal((441000, 2))).astype(np.float32))
w = Path({str(tmp)!r}) / "long{int(seconds)}"; w.mkdir()
SeparatePipeline(InProcessModelClient()).run(JobContext("b", "b", "separate", parse_params("separate", {{"file_id": "f",
    "separation_type": "dialogue-music-effect"}}), {{"file": p}}, w))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    import services.inference.models  # noqa: F401 - registers the models
    from services.inference.model_client import InProcessModelClient
    from services.inference.pipelines.separate import SeparatePipeline
    from tests.inference.separate_audio import laugh, vocal
    from training.separation import heldout as H

    client = InProcessModelClient()
    pipeline = SeparatePipeline(client)
    rng = np.random.default_rng(2026)
    rtf: dict[str, list[float]] = {}
    me_rows, dme_rows, base_rows, dfn_rows, oracle_rows = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        from bench import nonlingual_heldout, separate_heldout

        separate_heldout.pipeline_table(tmp)
        print()
        separate_heldout.pipeline_table(tmp, ambience=True)
        print()
        nonlingual_heldout.table()
        print(f"\nsynthetic set (espeak-ng voices, generated MIDI and effects): {N_MIX} x {SECONDS:.0f} s")
        for i in range(N_MIX):
            mx = H.mixture(200 + i, SECONDS, R, music_db=-6 + rng.uniform(-3, 3),
                           effect_db=-6 + rng.uniform(-3, 3), voice=VOICES[i % len(VOICES)])
            src = tmp / f"mix{i}.wav"
            sf.write(str(src), mx.mix, R, subtype="FLOAT")
            refs = {"speech": mx.speech, "music": mx.music, "effect": mx.effect, "me": mx.music + mx.effect}
            score = functools.partial(_score, H.si_sdr, mx.mix, refs)

            stems, man = _run(pipeline, src, tmp / f"me{i}", "dialogue-me")
            me_rows.append(score(stems))
            rtf.setdefault("dialogue-me", []).append(man["realtime_factor"])
            stems, man = _run(pipeline, src, tmp / f"dme{i}", "dialogue-music-effect")
            dme_rows.append(score(stems))
            rtf.setdefault("dialogue-music-effect", []).append(man["realtime_factor"])
            method = man["method"]["music_effect"]
            residual = mx.mix - stems["speech"]
            base = client.infer("music_effect_separator", {"audio": residual}, {"sample_rate": R, "method": "baseline"})
            base_rows.append(score({"speech": stems["speech"], "music": base["music"], "effect": base["effect"]}))
            dfn = separate_heldout.dfn_alone(client, mx.mix)
            dfn_rows.append(score({"speech": dfn, "me": mx.mix - dfn}))
            oracle_rows.append(score(dict(zip(("speech", "music", "effect"),
                                              _oracle(mx.mix, [mx.speech, mx.music, mx.effect]), strict=True))))
            print(f"  mixture {i}: speech {dme_rows[-1]['speech']:.2f} music {dme_rows[-1]['music']:.2f} "
                  f"effect {dme_rows[-1]['effect']:.2f} dB ({method}); baseline music "
                  f"{base_rows[-1]['music']:.2f} effect {base_rows[-1]['effect']:.2f} dB", flush=True)

        print(f"\nheld-out mixtures: {N_MIX} x {SECONDS:.0f} s, 48 kHz, music/effects at -6 +- 3 dB re speech")
        _table("dialogue-me", me_rows, ["speech", "me"])
        _table("DeepFilterNet3 alone (the speech baseline; me = input - it)", dfn_rows, ["speech", "me"])
        _table(f"dialogue-music-effect ({method})", dme_rows, ["speech", "music", "effect"])
        _table("dialogue-music-effect (DSP baseline on the same residual)", base_rows, ["music", "effect"])
        _table("oracle magnitude masks from the true stems (64 ms STFT): the ceiling of mask-based methods",
               oracle_rows, ["speech", "music", "effect"])

        # speech-nonlingual: words next to hums / vowels / laughter, over quiet music
        nl_rows = []
        for i in range(2):
            gap = np.zeros(int(0.3 * R), np.float32)
            words = [H.speech(H.data.SENTENCES[2 * i + k], VOICES[(i + k) % 4], R) for k in range(2)]
            nonverbal = [vocal("mm", 2.0, R, 130 + 30 * i, i), vocal("aa", 1.5, R, 190, i + 5), laugh(1.5, R, i)]
            seq = [words[0], gap, nonverbal[0], gap, words[1], gap, nonverbal[1], gap, nonverbal[2], gap]
            kinds = ["w", "g", "n", "g", "w", "g", "n", "g", "n", "g"]
            x = np.concatenate(seq)
            spoken = np.concatenate([p if k == "w" else np.zeros_like(p) for p, k in zip(seq, kinds, strict=True)])
            vocal_only = np.concatenate([p if k == "n" else np.zeros_like(p) for p, k in zip(seq, kinds, strict=True)])
            music = H.music(300 + i, len(x) / R, R)[: len(x)]
            music = music / (np.sqrt(np.mean(music ** 2)) + 1e-9) * np.sqrt(np.mean(spoken[spoken != 0] ** 2)) * 0.25
            mix = x + music
            src = tmp / f"nl{i}.wav"
            sf.write(str(src), mix, R, subtype="FLOAT")
            stems, man = _run(pipeline, src, tmp / f"nl{i}", "speech-nonlingual")
            rtf.setdefault("speech-nonlingual", []).append(man["realtime_factor"])
            sp = stems["speech"]
            nv = vocal_only != 0
            leak = float(np.sum(sp[nv] ** 2) / (np.sum(mix[nv] ** 2) + 1e-12))
            nl_rows.append({"speech": H.si_sdr(sp, spoken), "speech_i": H.si_sdr(sp, spoken) - H.si_sdr(mix, spoken),
                            "leak": leak})
        print(f"speech-nonlingual ({man['method'].get('speech_gate')}), 2 files of words + hums/vowels/laughs "
              "over music")
        print(f"  speech     SI-SDR {_mean(nl_rows, 'speech'):6.2f} dB   SI-SDRi {_mean(nl_rows, 'speech_i'):+6.2f} dB"
              f"   non-verbal energy left in speech: {100 * _mean(nl_rows, 'leak'):.1f} %")

        print("realtime factor (processing time / audio duration, 2 shared CPU cores, 48 kHz mono):")
        for k, v in rtf.items():
            print(f"  {k:<22} {np.mean(v):.3f}")
        for seconds in (30.0, 180.0):
            print(f"peak memory, dialogue-music-effect, {seconds:.0f} s stereo 44.1 kHz: "
                  f"{_peak_rss(seconds, tmp):.0f} MB", flush=True)


if __name__ == "__main__":
    main()
