"""Dynamic batching, as TF Serving's batching session does it: requests queue up; a batch closes at
`max_batch_size` examples or `max_wait` seconds after its first request, whichever comes first; up
to `workers` batches run on the model at once (in threads: TensorFlow, onnxruntime and TFLite
release the GIL). Without batching each request is its own model call, `workers` at a time.

A batch whose model call fails is retried request by request, so one client's corrupt image fails
only that client's request.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from edgecv.serving.model import RequestError


class Overloaded(RequestError):
    def __init__(self, message: str):
        super().__init__(message, status=503)


@dataclass
class _Item:
    inputs: dict
    rows: int
    future: asyncio.Future = field(default=None)


class Batcher:
    def __init__(self, run: Callable[[dict], dict], executor: ThreadPoolExecutor, workers: int,
                 max_batch_size: int = 32, max_wait: float = 0.002, enabled: bool = True, max_queued_rows: int = 3200,
                 on_batch: Optional[Callable[[int], None]] = None):
        self.run, self.executor = run, executor
        self.max_batch_size, self.max_wait, self.enabled = max_batch_size, max_wait, enabled
        self.max_queued_rows = max_queued_rows
        self.on_batch = on_batch or (lambda n: None)
        self._slots = asyncio.Semaphore(workers)
        self._queue: asyncio.Queue = asyncio.Queue()
        self._queued_rows = 0
        self._held: Optional[_Item] = None  # the request that did not fit the last batch
        self._running: set = set()
        self._loop_task = asyncio.get_running_loop().create_task(self._collect()) if enabled else None

    async def submit(self, inputs: dict) -> dict:
        rows = len(next(iter(inputs.values())))
        if not self.enabled:
            async with self._slots:
                self.on_batch(rows)
                return await asyncio.get_running_loop().run_in_executor(self.executor, self.run, inputs)
        if self._queued_rows + rows > self.max_queued_rows:
            raise Overloaded(f"the batching queue is full ({self._queued_rows} examples waiting): retry later")
        item = _Item(inputs, rows, asyncio.get_running_loop().create_future())
        self._queued_rows += rows
        await self._queue.put(item)
        return await item.future

    async def _next(self, timeout: Optional[float]) -> Optional[_Item]:
        if self._held is not None:
            item, self._held = self._held, None
            return item
        if not self._queue.empty():
            return self._queue.get_nowait()
        if timeout is None:
            return await self._queue.get()
        if timeout <= 0:
            return None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._next(None)
            items, rows = [first], first.rows
            deadline = loop.time() + self.max_wait
            while rows < self.max_batch_size:
                item = await self._next(deadline - loop.time())
                if item is None:
                    break
                if rows + item.rows > self.max_batch_size:
                    self._held = item
                    break
                items.append(item)
                rows += item.rows
            await self._slots.acquire()
            task = loop.create_task(self._run_batch(items, rows))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run_batch(self, items: list, rows: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._queued_rows -= rows
            self.on_batch(rows)
            inputs = {k: np.concatenate([it.inputs[k] for it in items]) for k in items[0].inputs}
            try:
                out = await loop.run_in_executor(self.executor, self.run, inputs)
            except Exception as e:
                if len(items) == 1:
                    _settle(items[0], error=e)
                    return
                for it in items:  # find the request that broke the batch; the others still get answers
                    try:
                        _settle(it, result=await loop.run_in_executor(self.executor, self.run, it.inputs))
                    except Exception as err:
                        _settle(it, error=err)
                return
            start = 0
            for it in items:
                _settle(it, result={k: v[start:start + it.rows] for k, v in out.items()})
                start += it.rows
        finally:
            self._slots.release()

    async def close(self) -> None:
        """Let queued and running batches finish, then stop collecting."""
        while self._queued_rows > 0 or self._running:
            await asyncio.sleep(0.01)
        if self._loop_task is not None:
            self._loop_task.cancel()


def _settle(item: _Item, result=None, error=None) -> None:
    if item.future.done():  # the client went away
        return
    if error is not None:
        item.future.set_exception(error)
    else:
        item.future.set_result(result)
