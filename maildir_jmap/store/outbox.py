"""Messages waiting to be relayed: delayed sends (RFC 4865 FUTURERELEASE held
locally) and recipients whose smarthost answered 4xx.

Each job is two files in the account's ``outbox/`` directory: ``<id>.eml``, the
exact bytes to transmit (written once, fsynced: the Email may be destroyed
meanwhile, RFC 8621 §7.5), and ``<id>.job``, the envelope and schedule
(replaced atomically on every change). A job outlives restarts; the file is
removed when the job is done or canceled.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import msgpack

from maildir_jmap.durable import fsync_dir, replace_file, write_file

log = logging.getLogger(__name__)

SUBMISSION_TYPE = "EmailSubmission"
"""The object-store type whose records the outbox's jobs update."""


@dataclass
class Job:
    submission_id: str
    user: str
    mail_from: str
    mail_options: list[str]
    recipients: list[str]
    """Those still to be relayed."""
    due: float
    """When to try next (the sendAt of a delayed send, or a retry time)."""
    created: float
    attempts: int = 0
    sending: bool = False
    """Set while a transmission is under way: the submission can no longer be
    canceled, and a job found so after a crash is retried (and logged)."""
    last_replies: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    """What one relay attempt did to each recipient (delivery/smtp.py)."""

    replies: dict[str, str] = field(default_factory=dict)
    """Recipient -> the SMTP reply for it (RCPT stage, or DATA if that failed)."""
    accepted: list[str] = field(default_factory=list)
    """Recipients the smarthost took the message for."""
    failed: list[str] = field(default_factory=list)
    """Recipients refused for good (5xx)."""
    retry: list[str] = field(default_factory=list)
    """Recipients to try again later (4xx, or no answer at all)."""
    sender_refused: bool = False
    """MAIL FROM was refused for good: forbiddenMailFrom."""
    too_large: bool = False
    """The smarthost refused the size (552 / 5.3.4): tooLarge."""
    forbidden: str | None = None
    """The smarthost will not take mail from us at all (our AUTH refused, or
    authentication required): forbiddenToSend, with its reply."""


class Outbox:
    def __init__(self, state_dir: Path) -> None:
        self.directory = state_dir / "outbox"

    def _paths(self, submission_id: str) -> tuple[Path, Path]:
        return (
            self.directory / f"{submission_id}.job",
            self.directory / f"{submission_id}.eml",
        )

    def add(self, job: Job, message: bytes) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        job_path, eml_path = self._paths(job.submission_id)
        write_file(eml_path, message)
        replace_file(job_path, msgpack.packb(asdict(job), use_bin_type=True))

    def save(self, job: Job) -> None:
        job_path, _ = self._paths(job.submission_id)
        replace_file(job_path, msgpack.packb(asdict(job), use_bin_type=True))

    def get(self, submission_id: str) -> Job | None:
        job_path, _ = self._paths(submission_id)
        try:
            data = msgpack.unpackb(job_path.read_bytes(), raw=False)
        except FileNotFoundError:
            return None
        return Job(**data)

    def message(self, submission_id: str) -> bytes | None:
        _, eml_path = self._paths(submission_id)
        try:
            return eml_path.read_bytes()
        except FileNotFoundError:
            return None

    def remove(self, submission_id: str) -> None:
        for path in self._paths(submission_id):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        with contextlib.suppress(FileNotFoundError):
            fsync_dir(self.directory)

    def jobs(self) -> list[Job]:
        found: list[Job] = []
        if not self.directory.is_dir():
            return found
        for path in sorted(self.directory.glob("*.job")):
            job = self.get(path.stem)
            if job is not None:
                found.append(job)
        return found


def users_with_jobs(state_root: Path) -> set[str]:
    """Users with anything in an outbox, so their accounts open at start-up."""
    users = set()
    for path in (state_root / "accounts").glob("*/outbox/*.job"):
        try:
            users.add(msgpack.unpackb(path.read_bytes(), raw=False)["user"])
        except (OSError, ValueError, KeyError, msgpack.UnpackException):
            log.exception("unreadable outbox job %s", path)
    return users
