"""Any OpenAI-compatible chat server: vLLM, SGLang, llama.cpp's server, Ollama, a hosted API.

This is how the simulator outgrows one machine: point the env at a server (or a load
balancer in front of a fleet) and the users' turns become concurrent HTTP requests.

- **Spec**: ``"openai:http://127.0.0.1:8000/v1"`` (the part after ``openai:`` is the base
  URL, up to and including ``/v1``), or a mapping with the constructor's arguments:
  ``{"name": "openai", "base_url": ..., "model": ..., "timeout": 30, "concurrency": 16}``.
- **Batching**: a batch of chats becomes one request each, at most ``concurrency`` in
  flight at once (a thread pool); the server batches them (vLLM and SGLang batch
  continuously). Replies come back in the order of the chats.
- **Failures**: every request has a timeout of ``timeout`` seconds. A connection error,
  timeout, 5xx or 429 status, or a malformed response (not JSON, no ``choices``, content
  that is not text) is retried up to ``max_retries`` times, waiting ``backoff`` seconds,
  then twice that, and so on (at most ``max_backoff``). When a chat's last attempt fails,
  the whole call raises :class:`~dialogue_gym.llm.backends.BackendError` naming the URL, the
  model and the last error; requests not yet sent are cancelled. Other 4xx statuses (a bad
  request, a wrong model name or key) are not retried. A call therefore lasts at most
  about ``(max_retries + 1) * timeout`` plus the backoff per wave of ``concurrency`` chats.
- **Recovery**: after a failure the HTTP client is rebuilt on the next call, so once the
  server is back, ``env.reset()`` and stepping work again.
- **Empty replies**: an empty or ``null`` content is a valid answer (the model stopped at
  once); it comes back as ``""`` (the LLM voices then fall back to their template line and
  count it in ``fallbacks``).
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

Example:
    >>> backend = OpenAIBackend("http://127.0.0.1:8000/v1", model="my-model", concurrency=4)
    >>> backend
    OpenAIBackend(base_url='http://127.0.0.1:8000/v1', model='my-model')
    >>> backend.generate([], GenerationParams())
    []
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any

from dialogue_gym.llm.backends.base import BackendError, GenerationParams

__all__ = ["DEFAULT_API_KEY", "OpenAIBackend"]

#: The key sent when none is configured (local servers ignore it; vLLM's docs use it).
DEFAULT_API_KEY = "EMPTY"


class _Retryable(Exception):
    """A failure worth another attempt (connection, timeout, 5xx, 429, garbage)."""


class _Fatal(Exception):
    """A failure another attempt will not fix (4xx other than 408/409/429)."""


class _Aborted(Exception):
    """Another chat of the batch failed for good: stop retrying this one."""


class OpenAIBackend:
    """Generate through an OpenAI-compatible ``/chat/completions`` endpoint, concurrently.

    Build it through :func:`dialogue_gym.llm.backends.get_backend` (spec
    ``"openai:<base_url>"`` or a mapping with these arguments) so that every env of a
    process shares one connection pool. The HTTP client is created on first use and
    dropped when the backend is pickled.

    Args:
        base_url: The server's API root, e.g. ``"http://127.0.0.1:8000/v1"``.
        model: The model name to request; ``None`` asks the server (first of ``/models``).
        api_key: The bearer key; ``None`` reads ``api_key_env`` or sends ``"EMPTY"``.
        api_key_env: Name of an environment variable holding the key (read on first use).
        timeout: Seconds one request may take (connecting, waiting and reading).
        max_retries: Further attempts after a retryable failure (0 = try once).
        concurrency: Most requests in flight at once (threads).
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
        if not float(timeout) > 0:
            raise ValueError(f"timeout must be > 0, got {timeout!r}")
        if not (float(backoff) >= 0 and float(max_backoff) >= 0):
            raise ValueError(
                f"backoff and max_backoff must be >= 0, got {backoff!r}, {max_backoff!r}"
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
        self._client: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._stats_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_client"] = state["_pool"] = None
        state.pop("_lock")
        state.pop("_stats_lock")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._stats_lock = threading.Lock()

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

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    import openai
                except ImportError as exc:  # pragma: no cover - a declared dependency
                    raise BackendError(
                        "the openai backend needs the openai package: pip install openai"
                    ) from exc
                # The client's own retries are off: ours are bounded and reported.
                self._client = openai.OpenAI(
                    base_url=self.base_url,
                    api_key=self._key(),
                    timeout=self.timeout,
                    max_retries=0,
                )
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.concurrency, thread_name_prefix="dialogue_gym-openai"
                )
            return self._client

    def _drop_client(self, client: Any) -> None:
        """Forget ``client`` after a failure, so later attempts open fresh connections.

        Not closed here: other threads may still be using it; it closes when collected.
        """
        with self._lock:
            if self._client is client:
                self._client = None

    def close(self) -> None:
        """Close the HTTP client and the thread pool (both come back on the next call)."""
        with self._lock:
            client, self._client = self._client, None
            pool, self._pool = self._pool, None
        if client is not None:
            client.close()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _classify(self, exc: BaseException) -> Exception:
        """Map a client exception to :class:`_Retryable` or :class:`_Fatal`."""
        import openai

        text = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            text = f"HTTP {status}: {_short(str(exc))}"
            if status in (408, 409, 429) or status >= 500:
                return _Retryable(text)
            return _Fatal(text)
        if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
            cause = exc.__cause__ or exc.__context__
            detail = f" ({type(cause).__name__}: {_short(str(cause))})" if cause else ""
            return _Retryable(f"{type(exc).__name__}: {exc}{detail}")
        # Anything else out of the client (a body that is not JSON, a validation error)
        # means the server answered something that is not an OpenAI response.
        return _Retryable(f"malformed response: {_short(text)}")

    def _with_retries(self, what: str, call: Any, abort: threading.Event | None = None) -> Any:
        """Run ``call(client)`` with bounded retries; raise :class:`BackendError` at the end."""
        last: Exception | None = None
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            if abort is not None and abort.is_set():
                raise _Aborted
            if attempt:
                delay = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
                if abort is None:
                    time.sleep(delay)
                elif abort.wait(delay):
                    raise _Aborted
                with self._stats_lock:
                    self.stats["retries"] += 1
            client = self._get_client()
            with self._stats_lock:
                self.stats["attempts"] += 1
            try:
                return call(client)
            except (_Retryable, _Fatal) as exc:
                last = exc
            except Exception as exc:  # classified below
                last = self._classify(exc)
            if isinstance(last, _Fatal):
                break
            self._drop_client(client)  # stale connections to a dead server: start afresh
        with self._stats_lock:
            self.stats["failures"] += 1
        tries = "no retry (not retryable)" if isinstance(last, _Fatal) else f"{attempts} attempts"
        raise BackendError(
            f"openai backend: {what} at {self.base_url} (model {self.model!r}) failed after "
            f"{tries}, timeout {self.timeout:g}s each: {last}"
        )

    def resolved_model(self) -> str:
        """The model name sent with each request (asks the server once when ``model=None``).

        Raises:
            BackendError: The server could not be reached or serves no model.
        """
        if self.model is not None:
            return self.model

        def ask(client: Any) -> str:
            try:
                page = client.models.list()
                models = list(getattr(page, "data", None) or [])
            except Exception as exc:
                raise self._classify(exc) from exc
            names = [getattr(m, "id", None) for m in models]
            names = [n for n in names if isinstance(n, str) and n]
            if not names:
                raise _Retryable(f"malformed response: GET /models lists no model ({page!r:.200})")
            return names[0]

        name = self._with_retries("listing models (GET /models)", ask)
        self.model = name
        return name

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
                that is not retried; the message names the URL and the last error.
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
        if len(requests) == 1:
            replies = [self._complete(requests[0], params.stop, None)]
        else:
            replies = self._complete_all(requests, params.stop)
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

    def _complete_all(self, requests: list[dict[str, Any]], stop: Sequence[str]) -> list[str]:
        self._get_client()
        pool = self._pool
        assert pool is not None
        abort = threading.Event()
        futures: list[Future[str]] = [
            pool.submit(self._complete, request, stop, abort) for request in requests
        ]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in futures if f.done() and not f.cancelled() and f.exception()]
        if failed:
            abort.set()
            for f in futures:
                f.cancel()
            wait(futures)  # the ones in flight end within one timeout (or at once if aborted)
            errors = [f.exception() for f in failed]
            first = next((e for e in errors if isinstance(e, BackendError)), errors[0])
            raise first  # type: ignore[misc]
        return [f.result() for f in futures]

    def _complete(
        self, request: dict[str, Any], stop: Sequence[str], abort: threading.Event | None
    ) -> str:
        def call(client: Any) -> str:
            try:
                response = client.chat.completions.create(**request)
            except Exception as exc:
                raise self._classify(exc) from exc
            text = _content(response)
            usage = getattr(response, "usage", None)
            with self._stats_lock:
                self.stats["prompt_tokens"] += _int(getattr(usage, "prompt_tokens", 0))
                self.stats["completion_tokens"] += _int(getattr(usage, "completion_tokens", 0))
            return text

        text = self._with_retries("POST /chat/completions", call, abort)
        return _cut(text, stop).strip()


def _content(response: Any) -> str:
    """The first choice's text, or :class:`_Retryable` when the response is not a chat
    completion."""
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise _Retryable(f"malformed response: no choices in {_short(repr(response))}")
    message = getattr(choices[0], "message", None)
    if message is None:
        raise _Retryable(f"malformed response: no message in {_short(repr(choices[0]))}")
    content = getattr(message, "content", None)
    if content is None:
        return ""
    if not isinstance(content, str):
        raise _Retryable(f"malformed response: content is {type(content).__name__}, not text")
    return content


def _cut(text: str, stop: Sequence[str]) -> str:
    """``text`` up to the first stop string (servers cut there already; some do not)."""
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if 0 <= i < cut:
            cut = i
    return text[:cut]


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
