"""The function app's way of running the job: one queue message per step.

A step works on the job for a bounded time (MDSYNC_BACKFILL_STEP_SECONDS, well inside the
queue lock and the function timeout) and queues the next step, visible when there is more to do
(at once, or when Marketo's running job is worth asking about again). Messages are named
``<job id>-<step>``: the queue's duplicate detection drops a second message for the same step,
so a resume call made while the chain is alive adds nothing, and one made after a lost message
starts it again. A step that finds another runner on the job (its lease) comes back when that
lease runs out, and is dropped then if the job has gone past it: a runner that died mid-step
leaves a chain that goes on, and two chains become one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from shared.errors import BadRequestError
from shared.ports import NoticeQueue, RawMessage

if TYPE_CHECKING:  # the job and its runner load with the first step (cold start stays light)
    from shared.backfill.job import JobState
    from shared.backfill.runner import Backfill, StepResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    job_id: str
    number: int
    retry: int = 0  # a step that found another runner on the job tries again later

    def message(self) -> RawMessage:
        body = json.dumps(
            {"job": self.job_id, "step": self.number, "retry": self.retry}, separators=(",", ":")
        )
        suffix = f"-r{self.retry}" if self.retry else ""
        return RawMessage(f"{self.job_id}-{self.number}{suffix}", body)

    @staticmethod
    def parse(body: bytes | str) -> Step:
        try:
            document = json.loads(body)
        except ValueError:
            raise BadRequestError("a backfill step message is JSON") from None
        if not isinstance(document, dict):
            raise BadRequestError("a backfill step message is a JSON object")
        job, number, retry = document.get("job"), document.get("step"), document.get("retry", 0)
        if not isinstance(job, str) or not job or not _whole(number) or not _whole(retry):
            raise BadRequestError('a backfill step message is {"job": "<id>", "step": <n>}')
        assert isinstance(number, int)
        assert isinstance(retry, int)
        return Step(job, number, retry)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def next_step(queue: NoticeQueue, job: JobState, wait_seconds: float = 0.0) -> None:
    """Queue the job's next step, visible in ``wait_seconds``."""
    message = Step(job.id, job.steps + 1).message()
    if wait_seconds > 0:
        queue.send_raw([message], at=datetime.now(UTC) + timedelta(seconds=wait_seconds))
    else:
        queue.send_raw([message])


def run_step(
    backfill: Backfill, steps: NoticeQueue, step: Step, *, budget_seconds: float
) -> StepResult | None:
    """Work on the job this message is about, and queue its next step; None when the message is
    stale (another job, or another runner holds this one)."""
    current = backfill.current()
    if current is None or current.id != step.job_id or current.finished or current.steps >= step.number:
        # Another job, a finished one, or a step another message already ran.
        log.info("backfill step %s-%d: nothing to run; dropped", step.job_id, step.number)
        return None
    result = backfill.step(budget_seconds=budget_seconds)
    if result.busy:
        # Another runner has the job (or had it, and died): try again once its lease runs out;
        # by then, if it ran this step, this message is stale and dropped.
        again = Step(step.job_id, step.number, step.retry + 1).message()
        steps.send_raw([again], at=datetime.now(UTC) + timedelta(seconds=result.wait or 30.0))
        return None
    if not result.finished and result.wait is not None:
        next_step(steps, result.job, result.wait)
    return result
