"""Waiting on asyncio tasks without losing the waiter's own cancellation.

Stdlib only: the smoke-test Lambda's bundle carries this module (the client imports it).
"""

from __future__ import annotations

import asyncio
from typing import Any


async def wait_cancelled(task: asyncio.Future[Any]) -> None:
    """Wait for ``task``, already cancelled, to end, and drop its outcome.

    ``suppress(BaseException)`` around ``await task`` would also swallow a cancellation of the waiting
    task itself (Ctrl-C reaches a program only as asyncio's runner cancelling its main task), and the
    program would go on as if nothing had happened. ``asyncio.wait`` raises only for the waiter's own.
    """
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # retrieved: an error after the stream ended is of no interest
