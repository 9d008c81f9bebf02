"""A small function app for the local-host tests: one function of each kind the host runs.

``build_app(recorder)`` makes a fresh app (``get_functions()`` may be called once per app, and
each test starts its own host). The module-level ``app`` is what ``load_function_app`` finds
when a test imports this file the way the worker imports ``function_app.py``.
"""

from __future__ import annotations

import json
import threading
import time
import typing
from dataclasses import dataclass, field

import azure.functions as func

from shared.notices import Notice

POISON_ID = "poison"


@dataclass
class TimerCall:
    past_due: bool
    schedule_status: dict[str, str]
    retry_count: int


@dataclass
class Recorder:
    """What the functions saw, shared with the test thread."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    timer_calls: list[TimerCall] = field(default_factory=list)
    timer_active: int = 0
    timer_max_active: int = 0
    timer_duration: float = 0.0
    timer_failures_left: int = 0
    batches: list[list[func.ServiceBusMessage]] = field(default_factory=list)
    poison_deliveries: list[int] = field(default_factory=list)
    hold: threading.Event | None = None  # when set by a test, deliveries wait for it
    finished_batches: int = 0
    barrier: threading.Barrier = field(default_factory=lambda: threading.Barrier(2, timeout=60))

    def delivered_ids(self) -> set[str]:
        with self.lock:
            return {m.message_id for batch in self.batches for m in batch}


def build_app(recorder: Recorder) -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="items/{id:int}/{name?}", methods=["GET", "POST"])
    def items(req: func.HttpRequest) -> func.HttpResponse:
        echo = {
            "method": req.method,
            "url": req.url,
            "route": dict(req.route_params),
            "params": dict(req.params),
            "body": req.get_body().decode(),
            "trace": req.headers.get("x-trace"),
        }
        return func.HttpResponse(
            json.dumps(echo), status_code=201, mimetype="application/json", headers={"x-echo": "1"}
        )

    @app.function_name("ping")
    @app.route(route="ping", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def ping_function(req: func.HttpRequest) -> str:
        return "pong"

    @app.route(route="ops/reset", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
    def reset(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(status_code=204)

    @app.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("secret detail that must not reach the caller")

    @app.route(route="pair", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def pair(req: func.HttpRequest) -> func.HttpResponse:
        # Two calls pass the barrier only if the host runs them at the same time.
        recorder.barrier.wait()
        return func.HttpResponse("paired")

    @app.route(route="async", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    async def coroutine(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("awaited")

    @app.timer_trigger(schedule="%TICK_SCHEDULE%", arg_name="timer", use_monitor=True)
    @app.retry(strategy="fixed_delay", max_retry_count="2", delay_interval="00:00:00")
    def tick(timer: func.TimerRequest, context: func.Context) -> None:
        with recorder.lock:
            recorder.timer_active += 1
            recorder.timer_max_active = max(recorder.timer_max_active, recorder.timer_active)
            recorder.timer_calls.append(
                TimerCall(
                    timer.past_due,
                    # The 1.x abstract type lacks it; the object the host passes has it.
                    dict(getattr(timer, "schedule_status", {})),
                    context.retry_context.retry_count,
                )
            )
            fail = recorder.timer_failures_left > 0
            recorder.timer_failures_left -= 1 if fail else 0
        try:
            time.sleep(recorder.timer_duration)
            if fail:
                raise RuntimeError("timer failure asked by the test")
        finally:
            with recorder.lock:
                recorder.timer_active -= 1

    @app.service_bus_queue_trigger(
        arg_name="msgs",
        connection="ServiceBusConnection",
        queue_name="%NOTICE_QUEUE%",
        cardinality=func.Cardinality.MANY,
    )
    # typing.List: the Python worker refuses list[...] on a binding (the host checks it too).
    def consume(msgs: typing.List[func.ServiceBusMessage]) -> None:  # noqa: UP006
        notices = [Notice.from_json(m.get_body()) for m in msgs]
        with recorder.lock:
            recorder.batches.append(list(msgs))
            for message, notice in zip(msgs, notices, strict=True):
                if notice.record_id == POISON_ID:
                    recorder.poison_deliveries.append(message.delivery_count or 0)
        if recorder.hold is not None:
            recorder.hold.wait(10)
        if any(n.record_id == POISON_ID for n in notices):
            raise ValueError("poison notice")
        with recorder.lock:
            recorder.finished_batches += 1

    @app.service_bus_queue_trigger(arg_name="msg", connection="ServiceBusConnection", queue_name="elsewhere")
    def other_queue(msg: func.ServiceBusMessage) -> None:
        raise AssertionError("never fed: not the local queue")

    return app


app = build_app(Recorder())
