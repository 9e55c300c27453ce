"""Reading an OpenAI-compatible server's answers strictly: chat completions and the model list.

The ``openai`` client builds its objects without validating them (``{"choices": [{"message":
"hi"}]}`` came out as ``""``), so the backend reads the raw bodies here. A reply must be a
JSON object whose ``choices`` is a non-empty list whose first item has a ``message`` object
with a ``content`` (a string, or ``null``: the model stopped at once) or, the
text-completions shape, a string ``text``. Anything else raises
:class:`~dialogue_gym.llm.backends.openai_retry.RetryableError` with a message that says what
was wrong and quotes the start of the body, never an empty reply.

Example:
    >>> chat_reply(b'{"choices": [{"text": "Hi there."}], "usage": {"prompt_tokens": 7}}')
    ('Hi there.', {'prompt_tokens': 7})
"""

from __future__ import annotations

import json
from typing import Any

from dialogue_gym.llm.backends.openai_retry import EXCERPT_CHARS, RetryableError, shorten

__all__ = ["chat_reply", "first_model", "usage_count"]


def chat_reply(body: bytes) -> tuple[str, dict[str, Any]]:
    """The first choice's text and the usage of a chat (or text) completion body.

    Raises:
        RetryableError: The body is not JSON or not the shape of a completion; the message
            says what is wrong and quotes the start of the body.

    Example:
        >>> chat_reply(b'{"choices": [{"message": {"content": "hi"}}]}')
        ('hi', {})
        >>> chat_reply(b'{"choices": [{"message": "hi"}]}')
        Traceback (most recent call last):
        ...
        dialogue_gym.llm.backends.openai_retry.RetryableError: malformed response: choices[0].message is a string, not an object; body (32 bytes): {"choices": [{"message": "hi"}]}
    """
    data = _json_object(body)
    if "choices" not in data:
        raise _malformed("no 'choices'", body)
    choices = data["choices"]
    if not isinstance(choices, list):
        raise _malformed(f"'choices' is {_kind(choices)}, not an array", body)
    if not choices:
        raise _malformed("'choices' is empty", body)
    first = choices[0]
    if not isinstance(first, dict):
        raise _malformed(f"choices[0] is {_kind(first)}, not an object", body)
    if "message" in first:
        message = first["message"]
        if not isinstance(message, dict):
            raise _malformed(f"choices[0].message is {_kind(message)}, not an object", body)
        if "content" not in message:
            raise _malformed("choices[0].message has no 'content'", body)
        text = message["content"]
        if text is None:  # a valid answer: the model stopped at once
            text = ""
        if not isinstance(text, str):
            raise _malformed(f"choices[0].message.content is {_kind(text)}, not a string", body)
    elif "text" in first:  # the text-completions shape, which some servers send
        text = first["text"]
        if not isinstance(text, str):
            raise _malformed(f"choices[0].text is {_kind(text)}, not a string", body)
    else:
        raise _malformed("choices[0] has neither 'message' nor 'text'", body)
    usage = data.get("usage")
    return text, usage if isinstance(usage, dict) else {}


def first_model(body: bytes) -> str:
    """The first model id of a ``GET /models`` body (the model a ``model=None`` backend uses).

    Raises:
        RetryableError: The body is not JSON or lists no model.

    Example:
        >>> first_model(b'{"object": "list", "data": [{"id": ""}, {"id": "qwen2.5-7b"}]}')
        'qwen2.5-7b'
    """
    data = _json_object(body)
    models = data.get("data")
    if not isinstance(models, list):
        raise _malformed(f"GET /models: 'data' is {_kind(models)}, not an array", body)
    for model in models:
        name = model.get("id") if isinstance(model, dict) else None
        if isinstance(name, str) and name:
            return name
    raise _malformed("GET /models lists no model", body)


def usage_count(value: Any) -> int:
    """A token count from a body's ``usage`` (0 where it is missing or not an integer)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError as exc:  # JSONDecodeError and undecodable bytes alike
        raise _malformed(f"not JSON ({exc})", body) from exc
    if not isinstance(data, dict):
        raise _malformed(f"the body is {_kind(data)}, not an object", body)
    return data


def _malformed(what: str, body: bytes) -> RetryableError:
    """The error for a body of the wrong shape: what is wrong and the body's start."""
    text = body.decode("utf-8", errors="replace")
    if not text.strip():
        return RetryableError(f"malformed response: {what}; the body is empty")
    return RetryableError(
        f"malformed response: {what}; body ({len(body)} bytes): {shorten(text, EXCERPT_CHARS)}"
    )


def _kind(value: Any) -> str:
    """The JSON name of a value's type, with its article."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__  # pragma: no cover - json.loads makes no other type
