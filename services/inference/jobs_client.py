"""The worker's view of the jobs service: one question, "where is this job?", gRPC kept here."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from services.common.grpc_util import channel
from services.common.pb.timbr.v1 import jobs_pb2, jobs_pb2_grpc
from services.inference.errors import JobsUnavailable

_ENDED = (jobs_pb2.JOB_STATUS_COMPLETED, jobs_pb2.JOB_STATUS_FAILED, jobs_pb2.JOB_STATUS_CANCELLED)


@dataclass(frozen=True)
class JobState:
    ended: bool        # completed, failed or cancelled: nothing left to do
    running: bool      # a worker took it before (this is a redelivery)
    attempts: int      # deliveries that reached running so far


class JobsClient:
    def __init__(self, addr: str, timeout_s: float = 10.0, service_token: str = "") -> None:
        self._channel = channel(addr, service_token)
        self._stub = jobs_pb2_grpc.JobsStub(self._channel)
        self._timeout_s = timeout_s

    def state(self, job_id: str) -> JobState | None:
        """The job's state; None when the jobs service does not know it. ``JobsUnavailable`` when it
        does not answer within the timeout (the caller waits and asks again)."""
        try:
            job = self._stub.GetJob(jobs_pb2.GetJobRequest(job_id=job_id), timeout=self._timeout_s)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise JobsUnavailable(f"jobs service: {exc.code().name}: {exc.details()}") from exc
        return JobState(ended=job.status in _ENDED, running=job.status == jobs_pb2.JOB_STATUS_RUNNING,
                        attempts=job.attempts)

    def close(self) -> None:
        self._channel.close()
