"""Invoke one user function the way the worker does: keyword arguments by binding name, an
injected ``context``, ``async def`` run on an event loop, and the host's Executing/Executed log
lines around it."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import uuid
from typing import Any

import azure.functions as func
from azure.functions._abc import RetryContext, TraceContext

from mdsync.devhost.discovery import CONTEXT_PARAMETER, FunctionSpec

log = logging.getLogger("mdsync.devhost")


class _TraceContext(TraceContext):
    def __init__(self) -> None:
        self._parent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(RetryContext):
    def __init__(self, retry_count: int, max_retry_count: int) -> None:
        self._retry_count = retry_count
        self._max_retry_count = max_retry_count

    @property
    def retry_count(self) -> int:
        return self._retry_count

    @property
    def max_retry_count(self) -> int:
        return self._max_retry_count

    @property
    def exception(self) -> Any:
        return None


class InvocationContext(func.Context):
    """What the worker passes as ``context``."""

    def __init__(self, function_name: str, *, retry_count: int = 0, max_retry_count: int = 0) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._local = threading.local()
        self._local.invocation_id = self._invocation_id
        self._trace = _TraceContext()
        self._retry = _RetryContext(retry_count, max_retry_count)

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return ""

    @property
    def trace_context(self) -> TraceContext:
        return self._trace

    @property
    def retry_context(self) -> RetryContext:
        return self._retry


def invoke(
    spec: FunctionSpec,
    trigger_value: Any,
    *,
    reason: str,
    retry_count: int = 0,
    max_retry_count: int = 0,
) -> Any:
    """Run the function in the calling thread and return its result; exceptions propagate."""
    context = InvocationContext(spec.name, retry_count=retry_count, max_retry_count=max_retry_count)
    kwargs: dict[str, Any] = {spec.trigger_arg: trigger_value}
    if spec.wants_context:
        kwargs[CONTEXT_PARAMETER] = context
    log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", spec.name, reason, context.invocation_id)
    started = time.perf_counter()
    try:
        result = spec.user_function(**kwargs)
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
    except Exception:
        log.exception(
            "Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)",
            spec.name,
            context.invocation_id,
            (time.perf_counter() - started) * 1000,
        )
        raise
    log.info(
        "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)",
        spec.name,
        context.invocation_id,
        (time.perf_counter() - started) * 1000,
    )
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable
