"""Any OpenAI-compatible chat server: vLLM, SGLang, llama.cpp's server, Ollama, a hosted API.

This is how the simulator outgrows one machine: point the env at a server (or a load
balancer in front of a fleet) and the users' turns become concurrent HTTP requests.

- **Spec**: ``"openai:http://127.0.0.1:8000/v1"`` (the part after ``openai:`` is the base
  URL, up to and including ``/v1``), or a mapping with the constructor's arguments:
  ``{"name": "openai", "base_url": ..., "model": ..., "timeout": 30, "concurrency": 16}``.
- **Batching**: a batch of chats becomes one request each, at most ``concurrency`` in
  flight at once (tasks on the backend's event loop); the server batches them (vLLM and SGLang batch
  continuously). Replies come back in the order of the chats.
- **Failures**: every request attempt has a *deadline* of ``timeout`` seconds of wall-clock
  time, covering everything from connecting to the last byte of the body, however slowly
  the server trickles its bytes. A connection error, a missed deadline, a 5xx or 429
  status, or a malformed response (not JSON, or not the shape of a chat completion: see
  below) is retried up to ``max_retries`` times, waiting ``backoff`` seconds, then twice
  that, and so on (at most ``max_backoff``). When a chat's last attempt fails, the whole
  call raises :class:`~dialogue_gym.llm.backends.BackendError` naming the URL, the model
  and the last error (and the earlier attempts' errors where they differ: a server that
  died mid-answer refuses the retry); the other requests of the call are cancelled. Other 4xx statuses (a
  bad request, a wrong model name or key) are not retried. One chat therefore fails within
  ``(max_retries + 1) * timeout + sum(min(backoff * 2**k, max_backoff) for k < max_retries)``
  seconds, and a call of ``n`` chats within ``ceil(n / concurrency)`` times that (plus that
  once more when ``model=None`` makes the first call ask ``GET /models``):
  :meth:`OpenAIBackend.worst_case_seconds` computes it. Not in the bound: the client's
  own one-off start on a backend's first call (importing ``openai``, under a second).
- **Malformed answers**: a reply must be a JSON object whose ``choices`` is a non-empty list
  whose first item has a ``message`` object with a ``content`` (a string, or ``null``) or,
  the text-completions shape, a string ``text``. Anything else is an error that says what
  was wrong and quotes the start of the body, never an empty reply.
- **Recovery**: after a failure the HTTP client is rebuilt on the next call, so once the
  server is back, ``env.reset()`` and stepping work again.
- **Empty replies**: an empty or ``null`` content is a valid answer (the model stopped at
  once); it comes back as ``""`` (the LLM voices then fall back to their template line and
  count it in ``fallbacks``). A malformed answer is not an empty reply: it raises.
- **Threads**: the requests run on an event loop in one daemon thread per backend (started
  on first use, again after :meth:`OpenAIBackend.close` or in a forked child), which is what
  lets a deadline cancel a request mid-read; ``generate`` may be called from any thread.
- **Seeds**: each chat's seed goes in the request's ``seed`` field (``send_seed=False`` for
  servers that reject it). llama.cpp's server and vLLM honour it per request, so a seeded
  chat gives the same text each time on the same server, model and settings (vLLM: also
  the same batch composition on the GPU, which continuous batching does not promise);
  Ollama honours it through its ``options``; hosted APIs treat it as best effort.
- **Model**: ``model=None`` asks the server (``GET /models``) and uses the first model
  it serves; llama.cpp's server ignores the name.
- **Keys**: ``api_key`` defaults to ``"EMPTY"`` (local servers ignore it). To use a real
  key, give ``api_key_env`` (the name of an environment variable) rather than the key
  itself: the spec is recorded in ``info["voice_config"]`` and pickled with the env.

This module holds the backend; its helpers are :mod:`~dialogue_gym.llm.backends.openai_loop`
(the event loop in its thread), :mod:`~dialogue_gym.llm.backends.openai_retry` (deadlines,
retries, backoff, which failures are retried) and
:mod:`~dialogue_gym.llm.backends.openai_parse` (reading completions and the model list).

Example:
    >>> backend = OpenAIBackend("http://127.0.0.1:8000/v1", model="my-model", concurrency=4)
    >>> backend
    OpenAIBackend(base_url='http://127.0.0.1:8000/v1', model='my-model')
    >>> backend.generate([], GenerationParams())
    []
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from dialogue_gym.llm.backends.base import BackendError, GenerationParams, cut_at_stop
from dialogue_gym.llm.backends.openai_loop import LoopThread
from dialogue_gym.llm.backends.openai_parse import chat_reply, first_model, usage_count
from dialogue_gym.llm.backends.openai_retry import (
    EXCERPT_CHARS,
    GaveUp,
    RetryPolicy,
    classify,
    with_retries,
)

__all__ = ["DEFAULT_API_KEY", "EXCERPT_CHARS", "OpenAIBackend"]

#: The key sent when none is configured (local servers ignore it; vLLM's docs use it).
DEFAULT_API_KEY = "EMPTY"

#: Seconds ``generate`` waits past :meth:`OpenAIBackend.worst_case_seconds` before it gives
#: up on the event loop itself (a safety net: the deadlines end every request well before).
_LOOP_GRACE_S = 30.0

_T = TypeVar("_T")


class OpenAIBackend:
    """Generate through an OpenAI-compatible ``/chat/completions`` endpoint, concurrently.

    Build it through :func:`dialogue_gym.llm.backends.get_backend` (spec
    ``"openai:<base_url>"`` or a mapping with these arguments) so that every env of a
    process shares one connection pool. The HTTP client and the event loop its requests run
    on are created on first use and dropped when the backend is pickled.

    Args:
        base_url: The server's API root, e.g. ``"http://127.0.0.1:8000/v1"``.
        model: The model name to request; ``None`` asks the server (first of ``/models``).
        api_key: The bearer key; ``None`` reads ``api_key_env`` or sends ``"EMPTY"``.
        api_key_env: Name of an environment variable holding the key (read on first use).
        timeout: The deadline of one request attempt in seconds of wall-clock time:
            connecting, sending, waiting for the headers and reading the whole body.
        max_retries: Further attempts after a retryable failure (0 = try once).
        concurrency: Most requests in flight at once (across all calls of this backend).
        backoff: Seconds before the first retry; doubles on each later one.
        max_backoff: Cap on one wait between attempts.
        send_seed: Put each chat's seed in the request (``seed`` field).
        extra_body: Extra JSON fields for every request, e.g. vLLM's
            ``{"repetition_penalty": 1.1}`` or ``{"top_k": 40}``.

    Attributes:
        name: ``"openai"``.
        stats: Running totals: ``chats``, ``attempts``, ``retries``, ``failures``,
            ``prompt_tokens``, ``completion_tokens``, ``seconds``.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000/v1",
        model: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        concurrency: int = 8,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        send_seed: bool = True,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        base_url = str(base_url).strip().rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"base_url must start with http:// or https://, got {base_url!r} "
                "(spec form: 'openai:http://host:port/v1')"
            )
        # `not x < inf` also refuses NaN: a deadline that never comes is no deadline.
        if not 0 < float(timeout) < math.inf:
            raise ValueError(f"timeout must be a finite number > 0, got {timeout!r}")
        if not (0 <= float(backoff) < math.inf and 0 <= float(max_backoff) < math.inf):
            raise ValueError(
                f"backoff and max_backoff must be finite and >= 0, got {backoff!r}, {max_backoff!r}"
            )
        if int(max_retries) < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries!r}")
        if int(concurrency) < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency!r}")
        self.base_url = base_url
        self.model = model
        self._api_key = api_key
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.concurrency = int(concurrency)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.send_seed = bool(send_seed)
        self.extra_body = dict(extra_body) if extra_body else None
        self.stats: dict[str, float] = dict.fromkeys(
            (
                "chats",
                "attempts",
                "retries",
                "failures",
                "prompt_tokens",
                "completion_tokens",
                "seconds",
            ),
            0,
        )
        self._lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._reset_runtime()

    def _reset_runtime(self) -> None:
        """Forget the client, the loop and its thread (they are rebuilt on the next call)."""
        self._client: Any = None
        self._runner: LoopThread | None = None
        self._slots: asyncio.Semaphore | None = None
        # Clients dropped after a failure -> when the requests still on them are surely over
        # (time.monotonic()); closed by the first call after that, or by close().
        self._retired: dict[Any, float] = {}

    def __repr__(self) -> str:
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        runtime = ("_client", "_runner", "_slots", "_retired")
        for key in (*runtime, "_lock", "_stats_lock"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.pop("_pool", None)  # pickled by an older version (a thread pool then)
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._reset_runtime()

    def worst_case_seconds(self, chats: int = 1) -> float:
        """The longest a failing ``generate`` of ``chats`` chats can last, in seconds.

        One chat gets ``max_retries + 1`` attempts of at most ``timeout`` seconds each,
        with the backoff waits between them; chats beyond ``concurrency`` wait for a slot,
        so ``n`` chats take at most ``ceil(n / concurrency)`` times one chat's bound. While
        ``model`` is ``None`` the call first lists the models, with one chat's bound again.
        On top come the event loop's latency and a fresh HTTP client built after each
        failure: tens of milliseconds (and, on a backend's first call, importing ``openai``).

        Args:
            chats: The number of chats in the call.

        Example:
            >>> backend = OpenAIBackend(timeout=2, max_retries=1, backoff=0.5, model="m")
            >>> backend.worst_case_seconds(), backend.worst_case_seconds(9)
            (4.5, 9.0)
        """
        one = self._policy().worst_case_seconds()
        waves = max(1, math.ceil(int(chats) / self.concurrency))
        return waves * one + (one if self.model is None else 0.0)

    def _policy(self) -> RetryPolicy:
        # Built per use from the attributes, which callers may change after construction.
        return RetryPolicy(self.timeout, self.max_retries, self.backoff, self.max_backoff)

    def _count(self, stat: str) -> None:
        with self._stats_lock:
            self.stats[stat] += 1

    # -- plumbing -----------------------------------------------------------------------

    def _key(self) -> str:
        if self._api_key is not None:
            return self._api_key
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise BackendError(
                    f"openai backend: the environment variable {self.api_key_env!r} "
                    "(api_key_env) is not set"
                )
            return key
        return DEFAULT_API_KEY

    def _ensure_loop(self) -> LoopThread:
        """The running event loop of this backend (started here if needed); hold ``_lock``."""
        if self._runner is None or not self._runner.usable():
            # A forked child inherits the attributes but not the parent's loop thread, and
            # the parent's connections are not its own; what belonged to a loop whose thread
            # died goes with it: start afresh.
            self._reset_runtime()
            self._runner = LoopThread(self, name="dialogue_gym-openai")
        return self._runner

    def _get_client(self) -> Any:
        """The async OpenAI client (created, with the event loop, on first use)."""
        with self._lock:
            self._ensure_loop()
            if self._client is None:
                try:
                    import openai
                except ImportError as exc:  # pragma: no cover - a declared dependency
                    raise BackendError(
                        "the openai backend needs the openai package: pip install openai"
                    ) from exc
                # The client's own retries are off: ours are bounded and reported. Its own
                # timeout bounds each read only (a trickle resets it); the deadline each
                # attempt runs under is the binding one, so the client's sits just behind it.
                client = openai.AsyncOpenAI(
                    base_url=self.base_url,
                    api_key=self._key(),
                    timeout=self.timeout + 1.0,
                    max_retries=0,
                )
                # The client imports its resources on first access: do it now, outside any
                # deadline, so that a first attempt does not spend its time importing.
                _ = client.chat.completions.with_raw_response, client.models.with_raw_response
                self._client = client
            return self._client

    def _drop_client(self, client: Any) -> None:
        """Forget ``client`` after a failure, so later attempts open fresh connections.

        Not closed at once: other requests of the batch may still be using it. It is closed
        by the first call after their deadline has passed (:meth:`_close_retired`), or by
        :meth:`close`; left to the garbage collector, it would schedule its own closing on
        whatever event loop runs then.
        """
        with self._lock:
            if self._client is not client:
                return  # another request of the batch dropped it already
            self._client = None
            self._retired[client] = time.monotonic() + self.timeout + 1.0

    async def _close_retired(self) -> None:
        """Close the dropped clients that no request can be using any more (on the loop)."""
        now = time.monotonic()
        with self._lock:
            due = [client for client, after in self._retired.items() if after <= now]
            for client in due:
                del self._retired[client]
        for client in due:
            with contextlib.suppress(Exception):  # a client that cannot close is still gone
                await client.close()

    def _run(self, coro: Coroutine[Any, Any, _T], bound: float) -> _T:
        """Run ``coro`` on the backend's event loop and wait for its result.

        Args:
            coro: The work (it bounds itself with the request deadlines).
            bound: Its worst case in seconds; past that plus a grace period the wait ends
                with :class:`BackendError` whatever the loop is doing (a safety net).
        """
        with self._lock:
            runner = self._ensure_loop()
        return runner.run(coro, bound + _LOOP_GRACE_S, who=f"openai backend at {self.base_url}")

    def close(self) -> None:
        """Cancel what is in flight, close the HTTP client and stop the event loop.

        All come back on the next call.
        """
        with self._lock:
            runner = self._runner
            clients = [c for c in (self._client, *self._retired) if c is not None]
            self._reset_runtime()
        if runner is None or not runner.usable():
            return

        async def close_clients() -> None:
            for each in clients:
                with contextlib.suppress(Exception):
                    await each.close()

        runner.stop(close_clients)

    def _slot(self) -> asyncio.Semaphore:
        """The semaphore that bounds requests in flight (made on the loop, on first use)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        return self._slots

    async def _with_retries(self, what: str, call: Callable[[Any], Awaitable[_T]]) -> _T:
        """Run ``call(client)`` with bounded retries, each attempt under the deadline.

        Raises:
            BackendError: The last attempt failed, or one failed with a status that is not
                retried.
        """
        try:
            return await with_retries(
                call,
                self._policy(),
                slot=self._slot,
                get_client=self._get_client,
                drop_client=self._drop_client,
                count=self._count,
            )
        except GaveUp as failure:
            raise BackendError(
                f"openai backend: {what} at {self.base_url} (model {self.model!r}) failed after "
                f"{failure.tries}, timeout {self.timeout:g}s each: {failure}"
            ) from None

    def resolved_model(self) -> str:
        """The model name sent with each request (asks the server once when ``model=None``).

        Raises:
            BackendError: The server could not be reached or serves no model.
        """
        if self.model is None:
            self.model = self._run(self._list_models(), self.worst_case_seconds())
        return self.model

    async def _list_models(self) -> str:
        async def ask(client: Any) -> str:
            try:
                raw = await client.models.with_raw_response.list()
                body = raw.http_response.content
            except Exception as exc:
                raise classify(exc) from exc
            return first_model(body)

        await self._close_retired()
        return await self._with_retries("listing models (GET /models)", ask)

    # -- the protocol -------------------------------------------------------------------

    def generate(
        self, chats: Sequence[Sequence[Mapping[str, str]]], params: GenerationParams
    ) -> list[str]:
        """Send every chat (at most ``concurrency`` at once) and return the replies in order.

        Args:
            chats: The chats, each a sequence of ``{"role", "content"}`` messages (other
                keys are ignored).
            params: Sampling settings; ``params.seeds[i]`` goes with chat ``i``;
                ``params.max_tokens`` becomes the request's ``max_tokens``.

        Returns:
            One stripped reply per chat (``""`` where the server sent empty content).

        Raises:
            BackendError: A chat still failed after its retries, or failed with a status
                that is not retried, within :meth:`worst_case_seconds`; the message names
                the URL and the last error.
            ValueError: The number of seeds does not match the number of chats.
        """
        seeds = params.seeds_for(len(chats))
        if not chats:
            return []
        model = self.resolved_model()
        start = time.perf_counter()
        requests = [
            self._request(model, chat, seed, params)
            for chat, seed in zip(chats, seeds, strict=True)
        ]
        replies = self._run(
            self._complete_all(requests, params.stop), self.worst_case_seconds(len(requests))
        )
        with self._stats_lock:
            self.stats["chats"] += len(chats)
            self.stats["seconds"] += time.perf_counter() - start
        return replies

    def _request(
        self,
        model: str,
        chat: Sequence[Mapping[str, str]],
        seed: int | None,
        params: GenerationParams,
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": model,
            "messages": [{"role": str(m["role"]), "content": str(m["content"])} for m in chat],
            "max_tokens": int(params.max_tokens),
            "temperature": float(params.temperature),
            "top_p": float(params.top_p),
        }
        if params.stop:
            request["stop"] = list(params.stop)
        if self.send_seed and seed is not None:
            request["seed"] = int(seed) % 2**31  # some servers want a signed 32-bit int
        if self.extra_body:
            request["extra_body"] = self.extra_body
        return request

    async def _complete_all(self, requests: list[dict[str, Any]], stop: Sequence[str]) -> list[str]:
        """Every request concurrently; the first chat to fail for good cancels the others."""
        await self._close_retired()
        tasks = [asyncio.ensure_future(self._complete(request, stop)) for request in requests]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            errors = [task.exception() for task in tasks if task.done() and not task.cancelled()]
            errors = [e for e in errors if e is not None]
            if errors:
                raise next((e for e in errors if isinstance(e, BackendError)), errors[0])
            return [task.result() for task in tasks]
        finally:
            for task in tasks:
                task.cancel()  # no-op for the finished ones
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _complete(self, request: dict[str, Any], stop: Sequence[str]) -> str:
        async def call(client: Any) -> str:
            try:
                raw = await client.chat.completions.with_raw_response.create(**request)
                body = raw.http_response.content
            except Exception as exc:
                raise classify(exc) from exc
            # Read the body ourselves, strictly: the client builds its objects without
            # validating them, so {"choices": [{"message": "hi"}]} came out as "".
            text, usage = chat_reply(body)
            with self._stats_lock:
                self.stats["prompt_tokens"] += usage_count(usage.get("prompt_tokens"))
                self.stats["completion_tokens"] += usage_count(usage.get("completion_tokens"))
            return text

        text = await self._with_retries("POST /chat/completions", call)
        return cut_at_stop(text, stop).strip()
