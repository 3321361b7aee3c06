"""The sync ``.iter()`` of a map: the map runs on a helper thread's event loop and hands
its results over to the consuming thread in chunks."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from opero.maps.map_driver import Run

__all__ = ["Handoff", "Message"]

#: what the helper thread hands over: a chunk of runs, the end, or the error that ended it
Message = tuple[Literal["chunk", "end", "error"], Any]


class Handoff:
    """A map driven on a helper thread's event loop, its results handed over to a sync
    consumer in chunks (at most two waiting)."""

    __slots__ = ("finished", "helper", "loop", "queue", "ready", "task")

    def __init__(self) -> None:
        self.queue: queue.Queue[Message] = queue.Queue(maxsize=2)
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[Any] | None = None
        self.helper: threading.Thread | None = None
        #: the end (or the error) was handed over: the helper ends by itself
        self.finished = False

    def start(self, drive: Callable[[], None]) -> None:
        """Run ``drive`` on the helper thread; return once its loop runs."""
        helper = self.helper = threading.Thread(target=drive, name="opero-map-iter")
        helper.daemon = True
        helper.start()
        self.ready.wait()

    def started(self) -> None:
        """On the helper's loop, in the task that drives the map."""
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.ready.set()

    async def put(self, message: Message) -> None:
        try:
            self.queue.put_nowait(message)
        except queue.Full:
            await asyncio.to_thread(self.queue.put, message)

    def chunks(self) -> Iterator[list[Run]]:
        """The chunks handed over, until the end; raises the error that ended the map."""
        while True:
            kind, payload = self.queue.get()
            if kind != "chunk":
                self.finished = True
                if kind == "error":
                    raise payload
                return
            yield payload

    def stop(self) -> None:
        """Stop the map if it has not ended (its task cancelled, a pending hand-off
        unblocked), and wait for the helper thread."""
        helper = self.helper
        assert helper is not None and self.loop is not None and self.task is not None
        if not self.finished:
            try:
                self.loop.call_soon_threadsafe(self.task.cancel)
            except RuntimeError:  # its loop is closed: the map already ended
                pass
            while helper.is_alive():
                try:  # unblock a pending hand-off so the helper can finish
                    self.queue.get(timeout=0.05)
                except queue.Empty:
                    pass
        helper.join()
