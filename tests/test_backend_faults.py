"""The ``openai`` backend and an env against hostile servers on 127.0.0.1 (issue 12).

Each server here is real: it listens on loopback and speaks (or fails to speak) HTTP/1.1 over
a socket, byte by byte where the fault needs it. Nothing of the client is mocked. The faults:

- a server that accepts and never answers (stalled), or that trickles its headers or its body
  one byte at a time (defect 2: a per-read timeout never fired while bytes kept coming);
- garbage: a body that is not JSON, JSON of the wrong shape (defect 9: ``{"choices":
  [{"message": "hi"}]}`` was taken as an empty reply), HTTP 500 with an HTML page, a body cut
  short by a clean close;
- a server that dies mid-response (connection reset, listener gone) and one that is gone,
  each then coming back on the same port.

Every case must end within the backend's documented worst case (plus slack for a loaded
machine) with a :class:`BackendError` naming the URL and the cause, and an env whose step
failed must work again after ``reset`` once the server is back.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import pytest
from fake_backends import completion_body as fake_completion

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.llm.backends import BackendError, GenerationParams, get_backend
from dialogue_gym.llm.backends.openai_backend import OpenAIBackend

#: Slack on top of the documented bound: two shared cores and a loaded CI machine.
SLACK_S = 2.0

#: Seconds between the bytes of a trickling server: well under any timeout used here, so a
#: per-read timeout alone never fires.
TRICKLE_S = 0.1

REPLY = "Honestly I keep replaying the day they let me go."

CHAT = [[{"role": "user", "content": "How are you holding up?"}]]


def completion_body(text: Any = REPLY) -> bytes:
    return fake_completion(text)


def head(status: int, length: int, ctype: str = "application/json") -> bytes:
    reason = {200: "OK", 500: "Internal Server Error"}.get(status, "Status")
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\n"
        f"content-length: {length}\r\nconnection: keep-alive\r\n\r\n"
    ).encode()


#: Fixed answers by fault kind: (status, body, content type).
GARBAGE: dict[str, tuple[int, bytes, str]] = {
    "not_json": (200, b"this is not json at all", "application/json"),
    "message_is_a_string": (200, b'{"choices":[{"message":"hi"}]}', "application/json"),
    "no_choices": (200, b'{"object": "chat.completion", "id": "x"}', "application/json"),
    "html_500": (
        500,
        b"<html><body><h1>Internal Server Error</h1>upstream crashed</body></html>",
        "text/html",
    ),
}


class HostileServer:
    """An HTTP/1.1 server on 127.0.0.1 that answers ``POST`` as ``mode`` says.

    ``GET`` (the model list) always answers properly. Modes: ``"ok"``; ``"stall"`` (reads the
    request, never answers); ``"trickle_body"`` / ``"trickle_head"`` (a proper answer, one
    byte every :data:`TRICKLE_S`, after / including the headers); a key of :data:`GARBAGE`;
    ``"truncated"`` (half the announced body, then a clean close); ``"dies"`` (half a body,
    then a connection reset and the listener closed: the server is gone until
    :meth:`start` runs again on the same port); ``"fixed"`` (answers :attr:`fixed`, a
    ``(status, body, content type)``).
    """

    def __init__(self) -> None:
        self.mode = "ok"
        self.fixed: tuple[int, bytes, str] = (200, completion_body(), "application/json")
        self.posts = 0
        self.port = 0
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        """Listen (again, on the same port once one was chosen)."""
        self._stop = threading.Event()
        listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR on POSIX
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener, self._stop))
        self._thread.daemon = True
        self._thread.start()

    def kill(self) -> None:
        """Die as a crashed process would: reset every connection, stop listening."""
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            conns, self._conns = set(self._conns), set()
        for conn in conns:
            _reset(conn)
        if self._thread is not None:
            self._thread.join(timeout=5)

    close = kill

    def _accept(self, listener: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn, stop), daemon=True).start()

    def _serve(self, conn: socket.socket, stop: threading.Event) -> None:
        with contextlib.suppress(OSError):
            conn.settimeout(10)
            buffer = b""
            while not stop.is_set():
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                header, _, buffer = buffer.partition(b"\r\n\r\n")
                match = re.search(rb"(?im)^content-length:\s*(\d+)", header)
                length = int(match.group(1)) if match else 0
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                if header.startswith(b"GET"):
                    models = json.dumps({"object": "list", "data": [{"id": "m"}]}).encode()
                    conn.sendall(head(200, len(models)) + models)
                    continue
                self.posts += 1
                if not self._answer(conn, stop):
                    return
        with contextlib.suppress(OSError):
            conn.close()

    def _answer(self, conn: socket.socket, stop: threading.Event) -> bool:
        """Answer one POST as ``mode`` says; ``False`` when the connection is finished."""
        mode = self.mode
        body = completion_body()
        if mode == "ok":
            conn.sendall(head(200, len(body)) + body)
            return True
        if mode == "stall":
            stop.wait()
            return False
        if mode in ("trickle_body", "trickle_head"):
            whole = head(200, len(body)) + body
            start = 0 if mode == "trickle_head" else len(head(200, len(body)))
            conn.sendall(whole[:start])
            for i in range(start, len(whole)):
                if stop.wait(TRICKLE_S):
                    return False
                conn.sendall(whole[i : i + 1])
            return True
        if mode in GARBAGE or mode == "fixed":
            status, junk, ctype = self.fixed if mode == "fixed" else GARBAGE[mode]
            conn.sendall(head(status, len(junk), ctype) + junk)
            return True
        if mode == "truncated":
            conn.sendall(head(200, len(body)) + body[: len(body) // 2])
            conn.close()
            return False
        if mode == "dies":
            conn.sendall(head(200, len(body)) + body[: len(body) // 2])
            time.sleep(0.05)  # let the half body reach the client first
            threading.Thread(target=self.kill, daemon=True).start()
            return False
        raise AssertionError(f"unknown mode {mode!r}")


def _reset(conn: socket.socket) -> None:
    """Close ``conn`` with a TCP reset (SO_LINGER 0), as the kernel does for a dead process."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        conn.close()


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    server = HostileServer()
    yield server
    server.close()


def backend_options(url: str, **options: Any) -> dict[str, Any]:
    return {"base_url": url, "model": "m", "timeout": 0.6, "max_retries": 1, "backoff": 0.05} | (
        options
    )


# --------------------------------------------------------------------------- defect 2


def test_trickling_server_is_cut_at_the_total_deadline(hostile):
    # Issue 12, defect 2: headers, then one byte every TRICKLE_S: each read returned well
    # within the timeout, so a timeout=2, max_retries=1 call ran for 126 s.
    backend = OpenAIBackend(**backend_options(hostile.url, timeout=1.0, backoff=0.1))
    # One good call first: the client's one-off start (importing openai) is not the server's.
    assert backend.generate(CHAT, GenerationParams()) == [REPLY]
    hostile.mode = "trickle_body"
    hostile.posts = 0
    bound = 2 * 1.0 + 0.1  # the documented worst case: 2 attempts of 1 s, one backoff
    start = time.monotonic()
    with pytest.raises(BackendError) as err:
        backend.generate(CHAT, GenerationParams())
    elapsed = time.monotonic() - start
    assert elapsed <= bound + SLACK_S, f"{elapsed:.1f}s > {bound:.1f}s: {err.value}"
    assert elapsed >= 2 * 1.0 - 0.2  # each attempt had its whole second
    message = str(err.value)
    assert hostile.url in message and "2 attempts" in message
    assert re.search("deadline", message), message
    assert hostile.posts == 2
    assert backend.worst_case_seconds() == pytest.approx(bound)
    backend.close()


# --------------------------------------------------------------------------- defect 9


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b'{"choices":[{"message":"hi"}]}', r"choices\[0\]\.message is a string, not an object"),
        (b'{"choices":[{"message":{"role":"assistant"}}]}', r"choices\[0\]\.message has no"),
        (b'{"choices":[{"message":{"content":["a"]}}]}', r"content is an array, not a string"),
        (b'{"choices":[{"text":7}]}', r"choices\[0\]\.text is a number, not a string"),
        (b'{"choices":[{"index":0}]}', r"neither 'message' nor 'text'"),
        (b'{"choices":["hi"]}', r"choices\[0\] is a string, not an object"),
        (b'{"choices":[]}', r"'choices' is empty"),
        (b'{"choices":{"0":1}}', r"'choices' is an object, not an array"),
        (b'{"id":"x"}', r"no 'choices'"),
        (b"[1, 2]", r"the body is an array, not an object"),
        (b"not json {", r"not JSON"),
        (b"", r"not JSON.*the body is empty"),
    ],
    ids=[
        "message-str",
        "no-content",
        "content-list",
        "text-int",
        "no-message",
        "choice-str",
        "empty-choices",
        "choices-dict",
        "no-choices",
        "a-list",
        "not-json",
        "empty-body",
    ],
)
def test_malformed_answer_is_a_clear_error(hostile, body, what):
    hostile.fixed, hostile.mode = (200, body, "application/json"), "fixed"
    backend = OpenAIBackend(**backend_options(hostile.url, max_retries=0))
    with pytest.raises(BackendError, match="malformed response") as err:
        backend.generate(CHAT, GenerationParams())
    message = str(err.value)
    assert re.search(what, message), message
    assert hostile.url in message
    excerpt = body.decode()[:40]
    assert excerpt in message, message  # the body, or its start, is quoted
    backend.close()


def test_long_malformed_bodies_are_quoted_truncated(hostile):
    junk = b'{"choices": "' + b"x" * 5000 + b'"}'
    hostile.fixed, hostile.mode = (200, junk, "application/json"), "fixed"
    backend = OpenAIBackend(**backend_options(hostile.url, max_retries=0))
    with pytest.raises(BackendError, match="malformed response") as err:
        backend.generate(CHAT, GenerationParams())
    assert len(str(err.value)) < 1000 and f"{len(junk)} bytes" in str(err.value)
    backend.close()


@pytest.mark.parametrize(
    ("body", "reply"),
    [
        (completion_body(None), ""),  # the model stopped at once: a valid, empty answer
        (completion_body("  fine  "), "fine"),
        (b'{"choices":[{"index":0,"text":" the completions shape "}]}', "the completions shape"),
    ],
    ids=["null-content", "text", "completions-shape"],
)
def test_well_formed_answers_are_accepted(hostile, body, reply):
    hostile.fixed, hostile.mode = (200, body, "application/json"), "fixed"
    backend = OpenAIBackend(**backend_options(hostile.url, max_retries=0))
    assert backend.generate(CHAT, GenerationParams()) == [reply]
    backend.close()


# --------------------------------------------------------------------------- the fault matrix

#: Fault kind -> what the error must say about the cause.
FAULTS = {
    "stall": r"deadline",
    "trickle_head": r"deadline",
    "trickle_body": r"deadline",
    "not_json": r"malformed response: not JSON.*this is not json",
    "message_is_a_string": r"malformed response: choices\[0\]\.message is a string.*\"hi\"",
    "no_choices": r"malformed response: no 'choices'",
    "html_500": r"HTTP 500.*Internal Server Error",
    "truncated": r"RemoteProtocolError: peer closed connection without sending complete",
    # The retry finds the server gone; the first attempt's error says how it died.
    "dies": r"ConnectionRefusedError.*earlier:.*(reset by peer|peer closed)",
    "gone": r"ConnectionRefusedError",
}


@pytest.mark.parametrize("kind", list(FAULTS))
def test_env_step_fault_is_bounded_clear_and_recovers_after_reset(hostile, kind):
    spec = {"name": "openai", **backend_options(hostile.url)}
    backend = get_backend(spec)
    # The line check is off: the fixed reply is the server's, and this test is about faults.
    voice = {"name": "llm", "check": False}
    env = gym.make("EmpathyDialogue-v0", voice=voice, backend=spec, scenarios="test")
    try:
        _, info = env.reset(seed=0)
        assert info["user_utterance"] == REPLY
        if kind == "gone":
            hostile.kill()
        else:
            hostile.mode = kind
        start = time.monotonic()
        with pytest.raises(BackendError) as err:
            env.step(0)
        elapsed = time.monotonic() - start
        bound = backend.worst_case_seconds()  # type: ignore[attr-defined]
        assert elapsed <= bound + SLACK_S, f"{kind}: {elapsed:.1f}s > {bound:.2f}s"
        message = str(err.value)
        assert hostile.url in message, message
        assert re.search(FAULTS[kind], message, re.IGNORECASE | re.DOTALL), message

        # The server comes back (on the same port when it had died).
        if kind in ("dies", "gone"):
            hostile.start()
        hostile.mode = "ok"
        with pytest.raises(RuntimeError, match=r"call reset\(\)"):
            env.step(0)  # the user moved on without words: this episode is over
        _, info = env.reset(seed=1)
        assert info["user_utterance"] == REPLY
        _, _, _, _, info = env.step(0)
        assert info["turn"] == 1 and info["user_utterance"].startswith(REPLY)  # (+ a cue)
        assert env.unwrapped.voice.fallbacks == 0  # no answer was silently replaced
    finally:
        env.close()
        backend.close()  # type: ignore[attr-defined]


def test_listing_models_from_a_stalled_server_is_bounded(hostile):
    # model=None asks GET /models first: that request has the same deadline.
    hostile.mode = "stall"
    backend = OpenAIBackend(**backend_options(hostile.url, model=None))
    start = time.monotonic()
    with pytest.raises(BackendError, match="deadline"):
        backend.generate(CHAT, GenerationParams())
    assert time.monotonic() - start <= backend.worst_case_seconds() + SLACK_S
    backend.close()


def test_a_batch_fails_within_its_waves_and_recovers(hostile):
    # Four chats, two in flight at a time: the first chat to fail for good cancels the rest,
    # so the call ends within the waves' bound; once the server answers, the same backend
    # answers every chat.
    hostile.mode = "stall"
    backend = OpenAIBackend(**backend_options(hostile.url, concurrency=2))
    chats = CHAT * 4
    start = time.monotonic()
    with pytest.raises(BackendError, match="deadline"):
        backend.generate(chats, GenerationParams(seeds=(1, 2, 3, 4)))
    assert time.monotonic() - start <= backend.worst_case_seconds(len(chats)) + SLACK_S
    hostile.mode = "ok"
    assert backend.generate(chats, GenerationParams(seeds=(1, 2, 3, 4))) == [REPLY] * 4
    backend.close()


def _generate_in_child(backend: OpenAIBackend, out: Any) -> None:
    out.put(backend.generate(CHAT, GenerationParams()))


def test_a_forked_child_gets_its_own_event_loop(hostile):
    # The requests run on an event loop in a thread; a forked child (SubprocVecEnv, a
    # multiprocessing pool) inherits the backend but not that thread, and must start its own.
    import multiprocessing

    backend = OpenAIBackend(**backend_options(hostile.url))
    assert backend.generate(CHAT, GenerationParams()) == [REPLY]  # the parent's loop runs
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    child = context.Process(target=_generate_in_child, args=(backend, out))
    child.start()
    try:
        assert out.get(timeout=backend.worst_case_seconds() + 10) == [REPLY]
    finally:
        child.join(timeout=10)
    assert child.exitcode == 0
    assert backend.generate(CHAT, GenerationParams()) == [REPLY]  # and the parent's still does
    backend.close()
