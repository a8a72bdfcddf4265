"""File lifecycle: deletion on request and retention, with records kept.

Uploads expire ``retention`` days after their upload, results that long after their job ended
(7 days unless the account overrides it). Removing an object deletes it from storage and
marks its record (``removed`` = deleted | expired), so the API answers 410 with that code and
the job stays for billing. Nothing a queued or running job reads is removed: the file row is
locked while the active jobs are checked, and ``create_job`` re-checks the file under the same
lock when it inserts the job.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, not_, or_, select, true
from sqlalchemy.orm import Session, sessionmaker

from services.common.logging import get_logger
from services.common.storage import Storage
from services.jobs import metrics
from services.jobs.accounts import AccountSettingsStore
from services.jobs.errors import FileInUse, FileNotFound, Gone, InvalidState, JobNotFound
from services.jobs.models import FileRecord, JobRecord, utcnow

log = get_logger(__name__)
ACTIVE = ("queued", "running")


def active_readers(s: Session, f: FileRecord) -> list[str]:
    """Ids of the queued or running jobs that read this file."""
    q = select(JobRecord.job_id, JobRecord.inputs).where(JobRecord.account_id == f.account_id,
                                                         JobRecord.status.in_(ACTIVE))
    return [job_id for job_id, inputs in s.execute(q)
            if any(v.get("file_id") == f.file_id for v in (inputs or {}).values())]


def gone(what: str, removed: str, retention_days: float | None = None) -> Gone:
    if removed == "expired":
        return Gone(f"{what} expired after the retention period of {retention_days or 0:g} days", "expired")
    return Gone(f"{what} was deleted", "deleted")


class Lifecycle:
    def __init__(self, sessions: sessionmaker, storage: Storage | None, accounts: AccountSettingsStore) -> None:
        self._sessions = sessions
        self._storage = storage
        self._accounts = accounts

    def _delete_objects(self, keys: list[str]) -> None:
        if self._storage is None:
            raise RuntimeError("the jobs service has no storage configured")
        for key in keys:
            self._storage.delete(key)  # idempotent: a missing object is no error

    # on request --------------------------------------------------------------------------------

    def delete_file(self, file_id: str, account_id: str) -> FileRecord:
        """Remove an upload; idempotent. ``FileInUse`` while an active job reads it."""
        with self._sessions.begin() as s:
            f = s.get(FileRecord, file_id, with_for_update=True)
            if f is None or (account_id and f.account_id != account_id):
                raise FileNotFound(f"file {file_id} not found")
            if f.removed:
                return f
            readers = active_readers(s, f)
            if readers:
                raise FileInUse(f"file {file_id} is read by job {readers[0]}, which has not ended; "
                                "cancel it or wait for it to end", job_id=readers[0])
            self._delete_objects([f.storage_key])
            f.removed, f.removed_at = "deleted", utcnow()
        metrics.OBJECTS_REMOVED.labels("upload", "deleted").inc()
        log.info("file.deleted", file_id=file_id, account=f.account_id)
        return f

    def delete_job_results(self, job_id: str, account_id: str) -> JobRecord:
        """Remove a finished job's results; the job record stays. Idempotent."""
        with self._sessions.begin() as s:
            job = s.get(JobRecord, job_id, with_for_update=True)
            if job is None or (account_id and job.account_id != account_id):
                raise JobNotFound(f"job {job_id} not found")
            if job.status in ACTIVE:
                raise InvalidState(f"job {job_id} is {job.status}; cancel it first")
            if not job.results_removed:
                self._delete_objects([r["storage_key"] for r in job.results or []])
                job.results_removed, job.results_removed_at = "deleted", utcnow()
                metrics.OBJECTS_REMOVED.labels("results", "deleted").inc()
                log.info("job.results_deleted", job_id=job_id, account=job.account_id)
        return job

    # retention ---------------------------------------------------------------------------------

    def _cutoffs(self, column) -> list:
        """One condition per retention: the default for most accounts, each override for its own."""
        now = utcnow()
        overrides = self._accounts.overrides()
        default_cut = now - dt.timedelta(days=self._accounts.default_retention_days)
        owner = FileRecord.account_id if column.class_ is FileRecord else JobRecord.account_id
        conds = [and_(not_(owner.in_(list(overrides))) if overrides else true(), column < default_cut)]
        conds += [and_(owner == acc, column < now - dt.timedelta(days=days)) for acc, days in overrides.items()]
        return conds

    def sweep(self, limit: int = 200) -> int:
        """Remove uploads and results past their retention. Returns how many objects sets."""
        removed = 0
        with self._sessions() as s:
            file_ids = list(s.scalars(select(FileRecord.file_id).where(
                FileRecord.removed == "", or_(*self._cutoffs(FileRecord.created_at))).limit(limit)))
            job_ids = list(s.scalars(select(JobRecord.job_id).where(
                JobRecord.status == "completed", JobRecord.results_removed == "",
                or_(*self._cutoffs(JobRecord.finished_at))).limit(limit)))
        for file_id in file_ids:
            with self._sessions.begin() as s:
                f = s.get(FileRecord, file_id, with_for_update=True)
                if f is None or f.removed or active_readers(s, f):
                    continue  # read by an active job: the next sweep takes it
                self._delete_objects([f.storage_key])
                f.removed, f.removed_at = "expired", utcnow()
            metrics.OBJECTS_REMOVED.labels("upload", "expired").inc()
            log.info("file.expired", file_id=file_id)
            removed += 1
        for job_id in job_ids:
            with self._sessions.begin() as s:
                job = s.get(JobRecord, job_id, with_for_update=True)
                if job is None or job.results_removed:
                    continue
                self._delete_objects([r["storage_key"] for r in job.results or []])
                job.results_removed, job.results_removed_at = "expired", utcnow()
            metrics.OBJECTS_REMOVED.labels("results", "expired").inc()
            log.info("job.results_expired", job_id=job_id)
            removed += 1
        return removed
