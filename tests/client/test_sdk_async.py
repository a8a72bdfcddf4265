"""AsyncTimbr, the asyncio twin, against the running stack: the same calls, errors and retries."""

from __future__ import annotations

import asyncio

import pytest
from timbr import AsyncTimbr, JobFailed, NotFound, RetryPolicy

from tests.client.proxy import FaultyProxy
from tests.support.audio import tone_wav

FAST = RetryPolicy(max_retries=3, base_s=0.01, cap_s=0.05)


def test_async_client_uploads_waits_downloads_and_retries(client_stack, new_account, cli_runs, tmp_path):
    src = tmp_path / "tone.wav"
    src.write_bytes(tone_wav(1.0))
    proxy = FaultyProxy(client_stack.url)
    acc = new_account(10)

    async def scenario() -> None:
        sent: list[int] = []
        async with AsyncTimbr(token=acc.token, base_url=proxy.url, retry=FAST) as tb:
            proxy.fail("POST", "/v1/upload", "503", "drop")
            f = await tb.upload(src, on_progress=lambda done, total: sent.append(done))
            tries = proxy.requests("POST", "/v1/upload")
            assert len(tries) == 3 and len({t.headers["idempotency-key"] for t in tries}) == 1
            assert f.duration == 1.0 and sent[-1] == src.stat().st_size
            job = await tb.separate(f, output_format="mp3", sample_rate=96000)      # fails in the worker
            with pytest.raises(JobFailed) as e:
                await tb.wait(job, timeout=60)
            assert e.value.code == "validation_error"
            with pytest.raises(NotFound):
                await tb.job("job_doesnotexist")
            both = await asyncio.gather(tb.account(), tb.jobs())                   # concurrent calls
            assert both[0].available_credits == 10 and [j.job_id for j in both[1]] == [job.job_id]

        async with AsyncTimbr(token=cli_runs.account.token, base_url=client_stack.url) as tb:
            done = cli_runs.separate.json["job"]["job_id"]
            files = await tb.download(done, tmp_path / "stems")
            assert sorted(p.name for p in files) == ["effect.wav", "manifest.json", "music.wav", "speech.wav"]
            for p in files:
                assert p.read_bytes() == (cli_runs.out / "stems" / p.name).read_bytes()

    try:
        asyncio.run(scenario())
    finally:
        proxy.close()
