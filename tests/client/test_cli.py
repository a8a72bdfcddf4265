"""The `timbr` CLI against the running stack with the real pipelines (the README's commands)."""

from __future__ import annotations

import json
import math

import numpy as np
import soundfile as sf

from tests.client.conftest import run_cli


def test_enhance_writes_the_enhanced_file_with_progress_bars(cli_runs, dialog_wav):
    run = cli_runs.enhance
    assert run.returncode == 0, run.stderr
    out, rate = sf.read(cli_runs.out / "out.wav", always_2d=True)
    src, src_rate = sf.read(dialog_wav, always_2d=True)
    assert rate == src_rate and abs(out.shape[0] / rate - src.shape[0] / src_rate) < 0.01
    report = json.loads((cli_runs.out / "report.json").read_text())
    assert report["settings"]["eq"]["preset"] == "vocal"
    assert abs(report["output"]["integrated_lufs"] - (-16)) < 1.5       # normalised to the default target
    # Without --json: bars on stderr (upload in bytes, the job to 100 %), a summary on stdout.
    assert "upload dialog.wav" in run.stderr and "100%" in run.stderr
    assert "enhance" in run.stderr and "kB" in run.stderr
    credits = math.ceil(src.shape[0] / src_rate)
    assert run.stdout.splitlines()[0].endswith(f" completed: {credits} credits"), run.stdout
    assert str(cli_runs.out / "out.wav") in run.stdout and "view: http" in run.stdout


def test_separate_writes_every_stem_and_they_sum_to_the_input(cli_runs, dialog_wav):
    run = cli_runs.separate
    assert run.returncode == 0, run.stderr
    doc = run.json                                   # --json: one document on stdout, no bars
    assert doc["job"]["status"] == "completed" and doc["job"]["params"]["separation_type"] == "dialogue-music-effect"
    names = sorted(p.rsplit("/", 1)[-1] for p in doc["files"])
    assert names == ["effect.wav", "manifest.json", "music.wav", "speech.wav"]
    assert run.stderr == ""
    stems = [sf.read(cli_runs.out / "stems" / f"{s}.wav", always_2d=True) for s in ("speech", "music", "effect")]
    src, _ = sf.read(dialog_wav, always_2d=True)
    total = sum(s[0] for s in stems)
    assert stems[0][1] == 48000
    import soxr

    ref = soxr.resample(src, 16000, 48000)
    n = min(len(ref), len(total))
    assert np.sqrt(np.mean((total[:n] - ref[:n]) ** 2)) < 0.01        # 16-bit stems sum back to the input


def test_diarize_writes_an_srt_with_both_speakers(cli_runs):
    run = cli_runs.diarize
    assert run.returncode == 0, run.stderr
    srt = (cli_runs.out / "out.srt").read_text()
    assert "SPEAKER_1:" in srt and "SPEAKER_2:" in srt and "-->" in srt
    result = json.loads((cli_runs.out / "diarization.json").read_text())
    assert result["num_speakers"] == 2
    assert run.json["job"]["credits_reserved"] == cli_runs.separate.json["job"]["credits_reserved"]


def test_jobs_and_account_list_what_the_commands_did(cli_runs, client_stack):
    token, url = cli_runs.account.token, client_stack.url
    jobs = run_cli(["jobs", "--json"], url, token)
    assert jobs.returncode == 0, jobs.stderr
    listed = {j["job_id"]: j for j in jobs.json["jobs"]}
    for run in (cli_runs.separate, cli_runs.diarize):
        assert listed[run.json["job"]["job_id"]]["status"] == "completed"
    assert len(listed) == 3
    table = run_cli(["jobs"], url, token)
    assert table.returncode == 0 and table.stdout.count("completed") == 3

    account = run_cli(["account", "--json"], url, token)
    spent = sum(j["credits_reserved"] for j in jobs.json["jobs"])
    assert account.json["spent_credits"] == spent and account.json["available_credits"] == 1000 - spent
    assert account.json["reserved_credits"] == 0
    assert f"{1000 - spent} credits available" in run_cli(["account"], url, token).stdout


def test_errors_exit_1_with_the_api_code_and_usage_errors_exit_2(client_stack, new_account, tmp_path, dialog_wav):
    url = client_stack.url
    bad = run_cli(["account"], url, "TBR_not_a_token")
    assert bad.returncode == 1 and "unauthorized" in bad.stderr

    none = run_cli(["account"], url, None)
    assert none.returncode == 2 and "TIMBR_TOKEN" in none.stderr

    poor = new_account(1)
    r = run_cli(["enhance", str(dialog_wav), "-o", str(tmp_path / "x.wav"), "--json"], url, poor.token)
    assert r.returncode == 1
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "insufficient_credits" and err["status"] == 402
    assert not (tmp_path / "x.wav").exists()

    missing = run_cli(["enhance", str(tmp_path / "nope.wav"), "-o", str(tmp_path / "y.wav")], url, poor.token)
    assert missing.returncode == 1 and "nope.wav" in missing.stderr

    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF" + b"\x00" * 64)
    r = run_cli(["separate", str(junk), "-o", str(tmp_path / "stems"), "--json"], url, poor.token)
    assert r.returncode == 1 and json.loads(r.stdout)["error"]["code"] == "invalid_audio"

    unknown = run_cli(["job", "job_doesnotexist"], url, poor.token)
    assert unknown.returncode == 1 and "job_not_found" in unknown.stderr


# `python -m timbr.cli` with SIGINT as a terminal delivers it. A process inherits an ignored SIGINT
# (a shell's background job has one, and so had a test run started from one): the CLI then never
# saw the ^C and waited on, its stderr empty after 30 s.
INTERRUPTIBLE_CLI = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                     "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); sys.argv[0] = 'timbr'; "
                     "runpy.run_module('timbr.cli', run_name='__main__', alter_sys=True)")


def test_ctrl_c_stops_waiting_and_names_the_job_that_goes_on(client_stack, new_account, dialog_wav, tmp_path):
    import contextlib
    import os
    import signal
    import subprocess
    import sys
    import time

    from timbr import Conflict, Timbr

    from tests.client.conftest import ROOT, SDK

    acc = new_account(100)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TIMBR_")},
           "PYTHONPATH": os.pathsep.join([str(SDK), str(ROOT)]), "TIMBR_TOKEN": acc.token,
           "TIMBR_BASE_URL": client_stack.url}
    worker = client_stack.procs["worker"]
    worker.send_signal(signal.SIGSTOP)      # the job waits in the queue: an 8 s enhance can end before the ^C
    try:
        proc = subprocess.Popen([sys.executable, "-c", INTERRUPTIBLE_CLI, "enhance", str(dialog_wav), "-o",
                                 str(tmp_path / "x.wav")], env=env, stderr=subprocess.PIPE, text=True)
        with Timbr(token=acc.token, base_url=client_stack.url) as tb:
            deadline = time.monotonic() + 60
            while not tb.jobs() and time.monotonic() < deadline:
                time.sleep(0.1)
            (job,) = tb.jobs()
            time.sleep(1.0)                                 # the CLI has its answer: it is in its wait loop
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 130, err
            assert f"job {job.job_id} goes on" in err and "Traceback" not in err
            assert tb.job(job).status == "queued"          # interrupting the CLI left the job alone
            with contextlib.suppress(Conflict):
                tb.cancel(job)                              # free the worker for the other tests
    finally:
        worker.send_signal(signal.SIGCONT)
    assert not (tmp_path / "x.wav").exists()
