"""Gather the LLM calls of N envs stepped in parallel into one batched backend call.

A vector env steps each of its users in a worker thread. Their voices, recognisers and judges
call ``backend.generate`` as usual; a :class:`BatchingBackend` stands in for each real backend
and holds each call until every worker still stepping is either waiting on a call or done,
then sends the calls to the real backends, one batch per backend and sampling setting, and
hands each caller its replies. Whatever sits between the env and the vector env (reward
wrappers that fork and look ahead, user wrappers) keeps working, and a step costs one backend
call per round of LLM calls instead of one per user.

Several backends (say a small model for the user's voice and a large one as the judge) share
one :class:`Batcher`, which runs the rounds: a worker waiting on one backend and a worker
waiting on another then count alike, and neither waits for the other forever.

Example:
    >>> import threading
    >>> class Echo:
    ...     name = "echo"
    ...     calls = 0
    ...     def generate(self, chats, params):
    ...         Echo.calls += 1
    ...         return [chat[-1]["content"].upper() for chat in chats]
    >>> batching = BatchingBackend(Echo())
    >>> out = [None] * 3
    >>> def work(i):
    ...     try:
    ...         out[i] = batching.generate([[{"role": "user", "content": f"hi {i}"}]], None)[0]
    ...     finally:
    ...         batching.finish()
    >>> batching.start(3)
    >>> threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    >>> for t in threads: t.start()
    >>> for t in threads: t.join()
    >>> out, Echo.calls
    (['HI 0', 'HI 1', 'HI 2'], 1)
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from dialogue_gym.llm.backends import Backend, GenerationParams

__all__ = ["Batcher", "BatchingBackend"]

Chat = Sequence[Mapping[str, str]]


@dataclasses.dataclass
class _Request:
    target: BatchingBackend
    chats: list[Chat]
    params: GenerationParams | None
    replies: list[str] | None = None
    error: BaseException | None = None
    done: bool = False


class Batcher:
    """Runs rounds of worker threads whose backend calls are merged, over any number of
    backends (one :class:`BatchingBackend` proxy each, from :meth:`proxy`).

    Args:
        max_batch: Largest batch sent to a backend at once (its batch limit); larger rounds
            are split into several calls. ``None``: no limit.
    """

    def __init__(self, max_batch: int | None = None) -> None:
        if max_batch is not None and max_batch < 1:
            raise ValueError(f"max_batch must be >= 1 or None, got {max_batch}")
        self.max_batch = max_batch
        self._cv = threading.Condition()
        self._running = 0
        self._pending: list[_Request] = []
        self._proxies: dict[int, BatchingBackend] = {}

    def proxy(self, inner: Backend) -> BatchingBackend:
        """The proxy that batches calls to ``inner`` in this batcher's rounds (one per backend).

        A proxy passed in is unwrapped first, so installing batching twice nests nothing.
        """
        if isinstance(inner, BatchingBackend):
            inner = inner.inner
        with self._cv:
            found = self._proxies.get(id(inner))  # the proxy holds inner: the id stays valid
            if found is None:
                found = self._proxies[id(inner)] = BatchingBackend(inner, batcher=self)
            return found

    @property
    def proxies(self) -> list[BatchingBackend]:
        """The proxies made so far, one per backend."""
        return list(self._proxies.values())

    @property
    def calls(self) -> int:
        """Backend calls made so far, over every backend."""
        return sum(p.calls for p in self._proxies.values())

    def start(self, workers: int) -> None:
        """Begin a round in which ``workers`` threads step (each calls :meth:`finish`)."""
        with self._cv:
            self._running = workers

    def finish(self) -> None:
        """A worker is done with its step: the others need not wait for it."""
        with self._cv:
            self._running -= 1
            self._flush_if_ready()

    def submit(
        self, target: BatchingBackend, chats: Sequence[Chat], params: GenerationParams | None
    ) -> list[str]:
        """Wait until every stepping worker has asked (or finished), then answer all at once."""
        request = _Request(target, list(chats), params)
        with self._cv:
            self._pending.append(request)
            self._flush_if_ready()
            while not request.done:
                self._cv.wait()
        if request.error is not None:
            raise request.error
        assert request.replies is not None
        return request.replies

    def _flush_if_ready(self) -> None:
        # Called with the lock held. Every running worker is blocked here, so doing the
        # backend calls under the lock delays no one. Outside a round (no worker running)
        # a call goes straight through.
        if not self._pending or len(self._pending) < self._running:
            return
        pending, self._pending = self._pending, []
        for group in _group(pending):
            group[0].target._answer(group)
        self._cv.notify_all()


class BatchingBackend:
    """A backend proxy that merges concurrent ``generate`` calls into one.

    Args:
        inner: The real backend.
        max_batch: Largest batch sent at once (the backend's batch limit); larger rounds
            are split into several calls. ``None``: no limit. Ignored when ``batcher`` is
            given (the batcher's limit holds).
        batcher: The rounds this proxy takes part in, shared with the proxies of other
            backends; ``None`` makes one for this proxy alone.

    Attributes:
        calls: Backend calls made so far.
        chats: Chats generated so far.
    """

    def __init__(
        self, inner: Backend, max_batch: int | None = None, batcher: Batcher | None = None
    ) -> None:
        self.inner = inner
        self.name = f"batching({getattr(inner, 'name', type(inner).__name__)})"
        self.batcher = batcher if batcher is not None else Batcher(max_batch)
        self.calls = 0
        self.chats = 0

    @property
    def max_batch(self) -> int | None:
        """The batch limit (the batcher's)."""
        return self.batcher.max_batch

    def start(self, workers: int) -> None:
        """Begin a round in which ``workers`` threads step (see :meth:`Batcher.start`)."""
        self.batcher.start(workers)

    def finish(self) -> None:
        """A worker is done with its step (see :meth:`Batcher.finish`)."""
        self.batcher.finish()

    def generate(self, chats: Sequence[Chat], params: GenerationParams | None) -> list[str]:
        """Wait until every stepping worker has asked (or finished), then answer all at once."""
        return self.batcher.submit(self, chats, params)

    def _answer(self, group: list[_Request]) -> None:
        """Send one group (same backend, same sampling) to the real backend."""
        chats = [chat for r in group for chat in r.chats]
        params = _merged_params(group)
        try:
            replies: list[str] = []
            step = self.max_batch or len(chats)
            for start in range(0, len(chats), step):
                sub = params
                if params is not None and params.seeds is not None:
                    sub = dataclasses.replace(params, seeds=params.seeds[start : start + step])
                replies.extend(self.inner.generate(chats[start : start + step], sub))
                self.calls += 1
            self.chats += len(chats)
            if len(replies) != len(chats):
                raise RuntimeError(
                    f"{self.inner!r} returned {len(replies)} replies for {len(chats)} chats"
                )
        except BaseException as exc:  # every waiting caller gets the failure, none hangs
            for r in group:
                r.error, r.done = exc, True
            return
        at = 0
        for r in group:
            r.replies, r.done = replies[at : at + len(r.chats)], True
            at += len(r.chats)


def _key(params: GenerationParams | None) -> Any:
    return None if params is None else dataclasses.replace(params, seeds=None)


def _group(requests: list[_Request]) -> list[list[_Request]]:
    """Requests by backend and sampling settings (seeds aside), in arrival order."""
    groups: dict[Any, list[_Request]] = {}
    for r in requests:
        groups.setdefault((id(r.target), _key(r.params)), []).append(r)
    return list(groups.values())


def _merged_params(group: list[_Request]) -> GenerationParams | None:
    params = group[0].params
    if params is None:
        return None
    if all(r.params is not None and r.params.seeds is not None for r in group):
        seeds = tuple(s for r in group for s in r.params.seeds)  # type: ignore[union-attr]
        return dataclasses.replace(params, seeds=seeds)
    return dataclasses.replace(params, seeds=None)
