"""Concurrent requests joined into batches: one forward pass serves many clients.

The first item of a batch waits ``wait_s`` for others (up to ``max_batch``); the batch runs on
a worker thread while new items queue for the next one, so under load batches fill by
themselves and a lone request waits only ``wait_s``. ``max_batch=1`` serves one at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")

BatchFn = Callable[[Sequence[Any]], Sequence[Any]]
"""items -> one result per item, in order; a result that is an Exception is raised to its caller."""


class MicroBatcher(Generic[Item]):
    """Collects items submitted from many coroutines and runs them in batches.

    Args:
        run: The batch function (runs on ``executor``).
        executor: Where batches run (one thread: the models are not run concurrently).
        max_batch: Most items per batch.
        wait_s: How long the first item of a batch waits for more.
        on_batch: Called with each batch's size (metrics).
    """

    def __init__(
        self,
        run: BatchFn,
        executor: Executor,
        max_batch: int = 32,
        wait_s: float = 0.005,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.run, self.executor = run, executor
        self.max_batch, self.wait_s = max_batch, wait_s
        self.on_batch = on_batch
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future[Any]]] | None = None
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Any:
        """The item's result, once its batch has run."""
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._serve())
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def close(self) -> None:
        """Stops the worker (items still queued are cancelled)."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        while self._queue is not None and not self._queue.empty():
            self._queue.get_nowait()[1].cancel()

    async def _serve(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            if self.max_batch > 1 and self.wait_s > 0 and self._queue.qsize() < self.max_batch - 1:
                await asyncio.sleep(self.wait_s)  # let concurrent requests join
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            waiting = [(item, fut) for item, fut in batch if not fut.cancelled()]  # timed out
            if not waiting:
                continue
            if self.on_batch is not None:
                self.on_batch(len(waiting))
            try:
                results = await loop.run_in_executor(self.executor, self.run, [i for i, _ in waiting])
            except Exception as err:  # the whole batch failed: every caller gets the error
                results = [err] * len(waiting)
            for (_, fut), result in zip(waiting, results):
                if fut.cancelled():
                    continue
                if isinstance(result, Exception):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
