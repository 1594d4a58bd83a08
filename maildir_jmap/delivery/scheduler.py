"""The sending side of EmailSubmission: immediate relays for the request that
creates them, and the scheduler that sends held and retried jobs on time.

Theory of operation. ``Sender`` implements mail/submission.py's ``Outbound``.
``send_now`` runs in the request's worker thread (the account lock is held, so
the reply can become the /set response). Held sends (FUTURERELEASE) and
recipients that got a 4xx reply sit in the account's outbox (store/outbox.py);
``schedule`` arms one timer per job on the event loop. When a timer fires, the
job is claimed under the account lock (marked ``sending``: from then on it
cannot be canceled), transmitted with no lock held, and the outcome recorded
under the lock again: the EmailSubmission's deliveryStatus and undoStatus
change, which reaches push listeners like any other change. At start-up every
outbox is read and its accounts opened, so held sends go out after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from maildir_jmap.delivery.smtp import Smarthost, transmit
from maildir_jmap.store.account import Account
from maildir_jmap.store.outbox import (
    SUBMISSION_TYPE,
    Job,
    Outbox,
    Outcome,
    users_with_jobs,
)

log = logging.getLogger(__name__)


RecordOutcome = Callable[[dict[str, object], Outcome, bool], None]


@dataclass(frozen=True)
class SendingSettings:
    smarthost: Smarthost = field(default_factory=Smarthost)
    max_delayed_send: int = 7 * 24 * 3600
    max_size: int = 25_000_000
    max_recipients: int = 100
    retry_base: float = 60.0
    """First retry after a 4xx; each next one waits five times longer (capped)."""
    retry_cap: float = 4 * 3600.0
    max_attempts: int = 15
    """About two days of retries with the defaults; then the recipients fail."""


class Sender:
    def __init__(
        self,
        settings: SendingSettings,
        open_account: Callable[[str], Account | None],
        record_outcome: RecordOutcome,
    ) -> None:
        self.open_account = open_account
        self.record_outcome = record_outcome
        """Writes an attempt's outcome into the EmailSubmission record (its wire
        form is the datatype's: mail/submission.py)."""
        self.use(settings)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def use(self, settings: SendingSettings) -> None:
        """Send with ``settings`` from now on (a reload); queued jobs keep their times."""
        self.settings = settings
        self.max_delayed_send = settings.max_delayed_send
        self.max_size = settings.max_size
        self.max_recipients = settings.max_recipients

    # -- Outbound ---------------------------------------------------------------

    def send_now(
        self, mail_from: str, options: list[str], recipients: list[str], message: bytes
    ) -> Outcome:
        """Relay from a worker thread (its own short-lived event loop)."""
        return asyncio.run(
            transmit(self.settings.smarthost, mail_from, options, recipients, message)
        )

    def retry_delay(self, attempts: int) -> float:
        delay: float = self.settings.retry_base * 5 ** max(attempts - 1, 0)
        return min(delay, self.settings.retry_cap)

    def schedule(self, account: Account, submission_id: str, due: float) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            log.warning("submission %s queued while the scheduler is stopped", submission_id)
            return
        loop.call_soon_threadsafe(self._arm, account.username, submission_id, due)

    # -- lifecycle --------------------------------------------------------------

    async def start(self, state_root: Path) -> None:
        self._loop = asyncio.get_running_loop()
        for user in await asyncio.to_thread(users_with_jobs, state_root):
            account = await asyncio.to_thread(self.open_account, user)
            if account is None:
                log.warning("outbox jobs of unknown user %s are kept, not sent", user)
                continue
            for job in await asyncio.to_thread(Outbox(account.state_dir).jobs):
                self._arm(user, job.submission_id, job.due)

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _arm(self, user: str, submission_id: str, due: float) -> None:
        assert self._loop is not None
        old = self._timers.pop(submission_id, None)
        if old is not None:
            old.cancel()
        delay = max(0.0, due - time.time())
        self._timers[submission_id] = self._loop.call_later(delay, self._fire, user, submission_id)

    def _fire(self, user: str, submission_id: str) -> None:
        self._timers.pop(submission_id, None)
        task = asyncio.ensure_future(self._process(user, submission_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- one job ----------------------------------------------------------------

    async def _process(self, user: str, submission_id: str) -> None:
        account = await asyncio.to_thread(self.open_account, user)
        if account is None:
            return
        claimed = await asyncio.to_thread(self._claim, account, submission_id)
        if claimed is None:
            return
        job, message = claimed
        outcome = await transmit(
            self.settings.smarthost, job.mail_from, job.mail_options, job.recipients, message
        )
        await asyncio.to_thread(self._finish, account, job, outcome)

    def _claim(self, account: Account, submission_id: str) -> tuple[Job, bytes] | None:
        outbox = Outbox(account.state_dir)
        with account.lock:
            job = outbox.get(submission_id)
            message = outbox.message(submission_id)
            if job is None:
                return None  # canceled, or already done
            if message is None:
                log.error("submission %s: outbox message missing; dropping the job", job)
                outbox.remove(submission_id)
                return None
            if job.sending:
                log.warning("submission %s was being sent at a crash; sending again", submission_id)
            job.sending = True
            outbox.save(job)
            return job, message

    def _finish(self, account: Account, job: Job, outcome: Outcome) -> None:
        outbox = Outbox(account.state_dir)
        job.attempts += 1
        final = not outcome.retry or job.attempts >= self.settings.max_attempts
        with account.lock:
            record = account.objects.get(SUBMISSION_TYPE, job.submission_id)
            if record is not None:  # destroyed records still send (RFC 8621 §7.5)
                record = dict(record)
                self.record_outcome(record, outcome, final)
                account.objects.put(SUBMISSION_TYPE, record)
                account.commit_objects()
            if final:
                outbox.remove(job.submission_id)
                log.info(
                    "submission %s done: %d relayed, %d failed",
                    job.submission_id,
                    len(outcome.accepted),
                    len(outcome.failed) + len(outcome.retry),
                )
                return
            job.recipients = list(outcome.retry)
            job.last_replies = {r: outcome.replies.get(r, "") for r in outcome.retry}
            job.sending = False
            job.due = time.time() + self.retry_delay(job.attempts)
            outbox.save(job)
        self.schedule(account, job.submission_id, job.due)
