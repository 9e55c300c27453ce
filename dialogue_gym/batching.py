"""Gather the LLM calls of N envs stepped in parallel into one batched backend call.

A vector env steps each of its users in a worker thread. Their voices call
``backend.generate`` as usual; :class:`BatchingBackend` holds each call until every worker
still stepping is either waiting on it or done, then sends all of them to the real backend
as one batch and hands each caller its replies. Whatever sits between the env and the
vector env (reward wrappers that fork and look ahead, user wrappers) keeps working, and a
step costs one backend call per round of voice calls instead of one per user.

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

from dialogue_gym.backends import Backend, GenerationParams

Chat = Sequence[Mapping[str, str]]


@dataclasses.dataclass
class _Request:
    chats: list[Chat]
    params: GenerationParams | None
    replies: list[str] | None = None
    error: BaseException | None = None
    done: bool = False


class BatchingBackend:
    """A backend proxy that merges concurrent ``generate`` calls into one.

    Args:
        inner: The real backend.
        max_batch: Largest batch sent at once (the backend's batch limit); larger rounds
            are split into several calls. ``None``: no limit.

    Attributes:
        calls: Backend calls made so far.
        chats: Chats generated so far.
    """

    def __init__(self, inner: Backend, max_batch: int | None = None) -> None:
        if max_batch is not None and max_batch < 1:
            raise ValueError(f"max_batch must be >= 1 or None, got {max_batch}")
        self.inner = inner
        self.name = f"batching({getattr(inner, 'name', type(inner).__name__)})"
        self.max_batch = max_batch
        self.calls = 0
        self.chats = 0
        self._cv = threading.Condition()
        self._running = 0
        self._pending: list[_Request] = []

    def start(self, workers: int) -> None:
        """Begin a round in which ``workers`` threads step (each calls :meth:`finish`)."""
        with self._cv:
            self._running = workers

    def finish(self) -> None:
        """A worker is done with its step: the others need not wait for it."""
        with self._cv:
            self._running -= 1
            self._flush_if_ready()

    def generate(self, chats: Sequence[Chat], params: GenerationParams | None) -> list[str]:
        """Wait until every stepping worker has asked (or finished), then answer all at once."""
        request = _Request(list(chats), params)
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
        # backend call under the lock delays no one.
        if not self._pending or len(self._pending) < self._running:
            return
        pending, self._pending = self._pending, []
        for group in _group_by_params(pending):
            self._answer(group)
        self._cv.notify_all()

    def _answer(self, group: list[_Request]) -> None:
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


def _group_by_params(requests: list[_Request]) -> list[list[_Request]]:
    groups: dict[Any, list[_Request]] = {}
    for r in requests:
        groups.setdefault(_key(r.params), []).append(r)
    return list(groups.values())


def _merged_params(group: list[_Request]) -> GenerationParams | None:
    params = group[0].params
    if params is None:
        return None
    if all(r.params is not None and r.params.seeds is not None for r in group):
        seeds = tuple(s for r in group for s in r.params.seeds)  # type: ignore[union-attr]
        return dataclasses.replace(params, seeds=seeds)
    return dataclasses.replace(params, seeds=None)
