"""Run a blocking delta stream on its own thread and read it from the event loop.

The model's stream is a plain iterator (the engine's worker does the decoding); one thread per request
pulls it and hands deltas over with ``call_soon_threadsafe``. Leaving the async iterator early (client gone,
timeout) cancels the generation, so its decode slot is freed at the engine's next step."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any

from glmkit.types import CancelToken, Delta

_END = object()


async def deltas_in_thread(
    make: Callable[[], Iterator[Delta]], cancel: CancelToken
) -> AsyncGenerator[Delta, None]:
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[Any] = asyncio.Queue()

    def put(item: Any) -> None:
        try:
            loop.call_soon_threadsafe(q.put_nowait, item)
        except RuntimeError:  # the loop has closed: nobody is listening any more
            cancel.cancel()

    def work() -> None:
        try:
            for d in make():
                put(d)
                if cancel.cancelled:
                    break
        except BaseException as e:  # noqa: BLE001 - re-raised on the loop side
            put(e)
        finally:
            put(_END)

    threading.Thread(target=work, name="glmkit-request", daemon=True).start()
    try:
        while True:
            item = await q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancel.cancel()
