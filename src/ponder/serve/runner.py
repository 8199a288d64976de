"""The engine's thread: it steps the one continuous batch while rows run or wait, and sleeps otherwise.

Requests are submitted from the event loop (``Engine.submit`` is thread-safe); each row's events come back
through ``on_event``, called in this thread, and are handed to the request's ``asyncio.Queue`` with
``loop.call_soon_threadsafe``. ``lock`` is held during each step (a test holds it to freeze the batch).
"""

from __future__ import annotations

import asyncio
import logging
import threading

from ponder.inference.engine import Engine, Event

log = logging.getLogger("ponder.serve")


class EngineThread:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.steps = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ponder-engine", daemon=True)
        self._thread.start()

    def submit(self, request):
        row = self.engine.submit(request)
        self._wake.set()
        return row

    def _run(self) -> None:
        while not self._stopping:
            if not self.engine.busy:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            with self.lock:
                try:
                    self.engine.step()
                    self.steps += 1
                except Exception as e:  # noqa: BLE001 - one bad step must not stop the server
                    log.exception("engine step failed; its rows are dropped")
                    self.engine.abort(e)

    def stop(self, timeout: float = 10.0) -> None:
        """End the thread after its current step, then drop every row still running or waiting."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self.lock:
            self.engine.abort()


def event_sink(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, index: int):
    """An ``on_event`` for one row: its events, tagged with the choice index, into ``queue`` on ``loop``."""

    def on_event(event: Event) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (index, event))
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass

    return on_event
