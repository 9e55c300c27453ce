"""An asyncio event loop in a daemon thread of its own, for blocking callers to run coroutines on.

The OpenAI backend (:mod:`~dialogue_gym.llm.backends.openai_backend`) runs its requests here:
a deadline can only cancel a request mid-read on an event loop, and ``generate`` is called
from plain threads. The thread belongs to the process that started it (a forked child must
start its own: :meth:`LoopThread.usable`), and it ends with its owner: on
:meth:`LoopThread.stop`, or when the owner is garbage-collected without it.

Example:
    >>> import asyncio
    >>> class Owner:
    ...     pass
    >>> owner = Owner()
    >>> runner = LoopThread(owner, name="doc-loop")
    >>> runner.run(asyncio.sleep(0, result="done"), timeout=5, who="doc")
    'done'
    >>> runner.stop()
    >>> runner.usable()
    False
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from dialogue_gym.llm.backends.base import BackendError

__all__ = ["LoopThread", "stop_loop"]

_T = TypeVar("_T")


class LoopThread:
    """An event loop running forever in a daemon thread, started at construction.

    Args:
        owner: What the loop works for; when it is garbage-collected the loop stops (a backend
            dropped without ``close()`` must not leave its thread behind).
        name: The thread's name.

    Attributes:
        loop: The event loop.
        thread: The daemon thread that runs it.
        pid: The process that started the thread.
    """

    def __init__(self, owner: object, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()
        # Keyed on the owner, not on this object: the owner is what its users drop.
        weakref.finalize(owner, stop_loop, self.loop)
        self.pid = os.getpid()

    def usable(self) -> bool:
        """Whether coroutines can run here: the thread is alive and this process started it
        (a forked child inherits the object but not the thread)."""
        return self.pid == os.getpid() and self.thread.is_alive()

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float, who: str) -> _T:
        """Run ``coro`` on the loop and wait for its result, from any other thread.

        Args:
            coro: The work (it should bound itself; ``timeout`` is a safety net).
            timeout: Seconds to wait before giving up on the loop itself.
            who: What the error messages name, e.g. ``"openai backend at <url>"``.

        Raises:
            BackendError: The loop was stopped during the call, or the call did not end
                within ``timeout`` (it is then cancelled).
        """
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.CancelledError as exc:
            raise BackendError(f"{who}: the backend was closed during the call") from exc
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise BackendError(
                f"{who}: the call did not end within {timeout:g}s although its requests have "
                "deadlines (a stuck event loop?)"
            ) from exc
        except BaseException:
            future.cancel()  # an interrupt (Ctrl-C) in the caller stops the requests too
            raise

    def stop(self, cleanup: Callable[[], Awaitable[None]] | None = None) -> None:
        """Cancel every task on the loop, await ``cleanup()`` there, then stop the loop and
        join its thread (the loop is closed once the thread has ended).

        Only from the process that started the thread, while it is alive (:meth:`usable`).
        """

        async def shutdown() -> None:
            me = asyncio.current_task()
            tasks = [task for task in asyncio.all_tasks() if task is not me]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if cleanup is not None:
                await cleanup()

        with contextlib.suppress(Exception):  # best effort: the loop stops regardless
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


def stop_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Stop ``loop`` from another thread (its thread then ends); nothing if it is closed."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(loop.stop)
