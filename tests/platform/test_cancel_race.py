"""Five concurrent cancels of one job through the API: one 200, four 409 ``invalid_state``, and
the credits released once (issue 11 saw five 200s on SQLite; the service-level test covers
SQLite and PostgreSQL, this one the HTTP path on the running stack)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.support.api import upload_ok
from tests.support.audio import tone_wav


def test_concurrent_cancels_answer_200_once_and_409_for_the_rest(stack, make_account):
    acc = make_account(50)
    with httpx.Client(base_url=stack.url, timeout=30) as api:
        f = upload_ok(api, acc.headers, tone_wav(1.0))
        # diarize: no worker of the test stack takes it, so it stays queued until cancelled
        job_id = api.post("/v1/audio/diarize", headers=acc.headers, json={"file_id": f["file_id"]}).json()["job_id"]
    with ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(lambda _: httpx.post(f"{stack.url}/v1/jobs/{job_id}/cancel", headers=acc.headers,
                                                       timeout=30), range(5)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 409, 409, 409, 409], [r.text for r in responses]
    assert all(r.json()["error"]["code"] == "invalid_state" for r in responses if r.status_code == 409)
    kinds = sorted(e.kind for e in acc.ledger() if e.job_id == job_id)
    assert kinds == ["release", "reserve"]
    assert acc.balance().reserved == 0
