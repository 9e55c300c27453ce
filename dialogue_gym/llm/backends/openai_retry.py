"""Retries for OpenAI-compatible requests: which failures earn another attempt, and the attempts.

Every attempt runs under a wall-clock deadline; a connection error, a missed deadline, a 5xx
or 429 status (also 408 and 409) or a malformed answer is retried after a backoff that doubles
each time (capped); any other 4xx is not, since another attempt will not fix a bad request, a
wrong model name or key. :func:`with_retries` runs the attempts and raises :class:`GaveUp`
when none succeeded; the backend (:mod:`~dialogue_gym.llm.backends.openai_backend`) turns that
into a :class:`~dialogue_gym.llm.backends.BackendError` naming its server.

Example:
    >>> policy = RetryPolicy(timeout=2.0, max_retries=3, backoff=0.5, max_backoff=1.5)
    >>> [policy.wait_before(attempt) for attempt in (1, 2, 3)], policy.worst_case_seconds()
    ([0.5, 1.0, 1.5], 11.0)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "EXCERPT_CHARS",
    "FatalError",
    "GaveUp",
    "RetryPolicy",
    "RetryableError",
    "classify",
    "response_body",
    "shorten",
    "with_retries",
]

#: How much of a malformed body an error message quotes.
EXCERPT_CHARS = 200

_T = TypeVar("_T")


class RetryableError(Exception):
    """A failure worth another attempt (connection, deadline, 5xx, 429, garbage)."""


class FatalError(Exception):
    """A failure another attempt will not fix (4xx other than 408/409/429)."""


class GaveUp(Exception):
    """Every attempt failed, or one failed for good; ``str()`` is the last error (and the
    earlier attempts' errors where they differ).

    Attributes:
        tries: How it ended, for a message: ``"3 attempts"`` or ``"no retry (not retryable)"``.
        last: The last attempt's error.
    """

    def __init__(self, tries: str, last: Exception, earlier: list[str]) -> None:
        # A server that died mid-answer refuses the retry: the first error is the telling one.
        also = f" (earlier: {'; '.join(earlier)})" if earlier else ""
        super().__init__(f"{last}{also}")
        self.tries = tries
        self.last = last


@dataclass(frozen=True)
class RetryPolicy:
    """How long one attempt may take and how the attempts are spaced.

    Args:
        timeout: The deadline of one attempt in seconds of wall-clock time.
        max_retries: Further attempts after a retryable failure (0 = try once).
        backoff: Seconds before the first retry; doubles on each later one.
        max_backoff: Cap on one wait between attempts.
    """

    timeout: float
    max_retries: int
    backoff: float
    max_backoff: float

    def wait_before(self, attempt: int) -> float:
        """The wait before attempt number ``attempt`` (1 = the first retry)."""
        return min(self.backoff * 2 ** (attempt - 1), self.max_backoff)

    def worst_case_seconds(self) -> float:
        """The longest one request can take when every attempt fails: each attempt's deadline
        and the waits between them."""
        return (self.max_retries + 1) * self.timeout + sum(
            self.wait_before(attempt) for attempt in range(1, self.max_retries + 1)
        )


async def with_retries(
    call: Callable[[Any], Awaitable[_T]],
    policy: RetryPolicy,
    *,
    slot: Callable[[], asyncio.Semaphore],
    get_client: Callable[[], Any],
    drop_client: Callable[[Any], None],
    count: Callable[[str], None],
) -> _T:
    """Run ``call(client)`` with bounded retries, each attempt under the deadline.

    Args:
        call: One attempt, given the client; it raises :class:`RetryableError` or
            :class:`FatalError`, or anything else (then :func:`classify` sorts it).
        policy: The deadline, the retries and the backoff.
        slot: The semaphore that bounds requests in flight (asked for at each attempt:
            waiting for it is not part of the deadline).
        get_client: The client for an attempt.
        drop_client: Forget a client after a retryable failure (stale connections to a dead
            server): the next attempt starts afresh.
        count: Adds one to a running total: ``"attempts"``, ``"retries"``, ``"failures"``.

    Raises:
        GaveUp: The last attempt failed, or one failed with a status that is not retried.

    Example:
        >>> import asyncio
        >>> tries = []
        >>> async def flaky(client):
        ...     tries.append(client)
        ...     if len(tries) < 2:
        ...         raise RetryableError("HTTP 503: busy")
        ...     return "hi"
        >>> policy = RetryPolicy(timeout=1.0, max_retries=2, backoff=0.0, max_backoff=0.0)
        >>> async def main():
        ...     return await with_retries(flaky, policy, slot=lambda: asyncio.Semaphore(1),
        ...         get_client=object, drop_client=lambda client: None, count=lambda stat: None)
        >>> asyncio.run(main()), len(tries)
        ('hi', 2)
    """
    last: Exception | None = None
    errors: list[str] = []  # each attempt's error, for the message
    attempts = policy.max_retries + 1
    for attempt in range(attempts):
        if attempt:
            await asyncio.sleep(policy.wait_before(attempt))  # a cancel ends the wait at once
            count("retries")
        async with slot():  # waiting for a slot is not part of the deadline
            client = get_client()
            count("attempts")
            deadline = asyncio.timeout(policy.timeout)
            try:
                async with deadline:
                    return await call(client)
            except TimeoutError as exc:
                last = (
                    RetryableError(
                        f"timed out: no complete answer within the {policy.timeout:g}s "
                        "deadline (connecting, sending, waiting for the headers and "
                        "reading the body)"
                    )
                    if deadline.expired()
                    else RetryableError(f"TimeoutError: {exc}")  # not ours: a socket's own
                )
            except (RetryableError, FatalError) as exc:
                last = exc
            except Exception as exc:  # classified here
                last = classify(exc)
        errors.append(str(last))
        if isinstance(last, FatalError):
            break
        drop_client(client)  # stale connections to a dead server: start afresh
    count("failures")
    assert last is not None  # at least one attempt ran and failed
    tries = "no retry (not retryable)" if isinstance(last, FatalError) else f"{attempts} attempts"
    earlier = [e for e in dict.fromkeys(errors[:-1]) if e != str(last)]
    raise GaveUp(tries, last, earlier)


def classify(exc: BaseException) -> Exception:
    """Map an exception out of the ``openai`` client to :class:`RetryableError` or
    :class:`FatalError`, with a message that says what happened.

    Example:
        >>> classify(ValueError("Expecting value: line 1 column 1 (char 0)"))
        RetryableError('malformed response: ValueError: Expecting value: line 1 column 1 (char 0)')
    """
    import openai

    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        # The raw body, not the client's summary: for a page that is not JSON (a proxy's
        # HTML error page) the summary is only "Error code: 500".
        body = response_body(exc)
        text = f"HTTP {status}: " + (
            f"body ({len(body)} bytes): {shorten(body.decode('utf-8', 'replace'), EXCERPT_CHARS)}"
            if body.strip()
            else shorten(str(exc))
        )
        if status in (408, 409, 429) or status >= 500:
            return RetryableError(text)
        return FatalError(text)
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        # The client says only "Connection error."; the causes under it say what
        # happened (refused, reset, a body cut short), the deepest one most exactly.
        chain = []
        cause = exc.__cause__ or exc.__context__
        while cause is not None and len(chain) < 8:
            chain.append(cause)
            cause = cause.__cause__ or cause.__context__
        # The first and the deepest, each said once (the layers repeat one another).
        causes = [f"{type(c).__name__}: {shorten(str(c), 160)}" for c in chain[:1] + chain[-1:]]
        causes = list(dict.fromkeys(causes))
        detail = f" ({' <- '.join(causes)})" if causes else ""
        return RetryableError(f"{type(exc).__name__}: {exc}{detail}")
    # Anything else out of the client means the server answered something that is not
    # an OpenAI response.
    return RetryableError(f"malformed response: {shorten(text)}")


def response_body(exc: BaseException) -> bytes:
    """The body of the HTTP response an error carries (``b""`` when it cannot be read)."""
    try:
        return bytes(exc.response.content)  # type: ignore[attr-defined]
    except Exception:  # no response, or its body was never read
        return b""


def shorten(text: str, limit: int = 300) -> str:
    """``text`` on one line, cut to ``limit`` characters (an error message quotes it).

    Example:
        >>> shorten("a  long\\n line", 9)
        'a long...'
    """
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
