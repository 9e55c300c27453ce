"""The three backends behind one batched protocol.

- specs and the registry (fast);
- the ``openai`` backend against tiny, real HTTP servers on 127.0.0.1 that misbehave on
  purpose (sleep past the timeout, answer junk, fail then recover): no mock of the client;
- the ``openai`` backend and an env against a real llama.cpp server started here on
  loopback with the embedded GGUF, including a server killed mid-episode;
- an env whose backend fails mid-step (a small backend that fails on demand): a failure
  after the user's state changed demands a reset, one before it leaves the env steppable;
- the ``transformers`` backend on the CPU with the embedded GGUF (left-padded batches,
  seeds, greedy batched == unbatched) and with a tiny random-weight Llama.
"""

from __future__ import annotations

import http.server
import json
import pickle
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import gymnasium as gym
import pytest
from fake_backends import completion_body

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.llm.backends import (
    BackendError,
    GenerationParams,
    available_backends,
    get_backend,
    spec_key,
)
from dialogue_gym.llm.backends.llama_cpp import LlamaCppBackend
from dialogue_gym.llm.backends.llama_server import LlamaServer
from dialogue_gym.llm.backends.openai_backend import OpenAIBackend
from dialogue_gym.llm.backends.transformers_backend import TransformersBackend
from dialogue_gym.ports import free_port

CHATS = [
    [
        {"role": "system", "content": "You are Maya, a nurse who just lost her job. Be brief."},
        {"role": "user", "content": "Hi, how are you today?"},
    ],
    [{"role": "user", "content": "Tell me about cats."}],
    [
        {"role": "system", "content": "You are a kind listener."},
        {"role": "user", "content": "I failed my exam and everyone else passed. I feel awful."},
        {"role": "assistant", "content": "That sounds really hard."},
        {"role": "user", "content": "It is. I don't know what to tell my parents."},
    ],
]


# --------------------------------------------------------------------------- specs


def test_registry_names_three_backends():
    assert {"llama_cpp", "transformers", "openai"} <= set(available_backends())


def test_openai_spec_string_and_mapping():
    url = "http://127.0.0.1:8000/v1"
    backend = get_backend(f"openai:{url}")
    assert isinstance(backend, OpenAIBackend)
    assert backend.base_url == url
    assert backend is get_backend({"name": "openai", "base_url": url})
    assert spec_key(f"openai:{url}") == spec_key({"name": "openai", "base_url": url})
    other = get_backend({"name": "openai", "base_url": url, "timeout": 5, "concurrency": 2})
    assert other is not backend and other.timeout == 5 and other.concurrency == 2


def test_transformers_spec_splits_a_gguf_path(tmp_path):
    path = tmp_path / "model.Q4_0.gguf"
    backend = get_backend(f"transformers:{path}")
    assert isinstance(backend, TransformersBackend)
    assert (backend.model_name, backend.gguf_file) == (str(tmp_path), path.name)
    assert not backend.loaded
    with pytest.raises(BackendError, match="could not load"):
        backend.generate(CHATS[:1], GenerationParams(max_tokens=2))


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"name": "openai", "base_url": "127.0.0.1:8000"}, "http://"),
        ({"name": "openai", "timeout": 0}, "timeout"),
        ({"name": "openai", "concurrency": 0}, "concurrency"),
        ({"name": "openai", "max_retries": -1}, "max_retries"),
        ({"name": "openai", "bogus": 1}, "bad options"),
        ({"name": "transformers", "dtype": "int3"}, "dtype"),
        ({"name": "transformers", "max_batch_size": 0}, "max_batch_size"),
        ("nonesuch:x", "valid backends"),
    ],
)
def test_bad_specs_are_clear(spec, match):
    with pytest.raises(ValueError, match=match):
        get_backend(spec)


def test_backends_pickle_without_clients():
    openai_backend = OpenAIBackend("http://127.0.0.1:9/v1", model="m")
    openai_backend._get_client()
    copy = pickle.loads(pickle.dumps(openai_backend))
    assert copy._client is None and copy.base_url == openai_backend.base_url
    tf = pickle.loads(pickle.dumps(TransformersBackend(device="cpu")))
    assert not tf.loaded
    llama = pickle.loads(pickle.dumps(LlamaCppBackend(kv_block=16)))
    assert not llama.loaded and llama.kv_cache is not None and len(llama.kv_cache) == 0
    assert llama.kv_cache.block == 16


def test_api_key_from_environment(monkeypatch):
    backend = OpenAIBackend("http://127.0.0.1:9/v1", model="m", api_key_env="DG_TEST_KEY")
    monkeypatch.delenv("DG_TEST_KEY", raising=False)
    with pytest.raises(BackendError, match="DG_TEST_KEY"):
        backend.generate(CHATS[:1], GenerationParams())
    monkeypatch.setenv("DG_TEST_KEY", "sk-test")
    assert backend._get_client().api_key == "sk-test"


# --------------------------------------------------------------------------- fake servers


def completion(text: Any) -> bytes:
    return completion_body(text, model="fake")


class FakeServer:
    """A real HTTP server on 127.0.0.1 whose answers a test chooses.

    ``reply(request_json) -> (status, body, content_type, delay_s)`` answers each
    ``POST /v1/chat/completions``; ``GET /v1/models`` lists ``models``.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.reply: Callable[[dict[str, Any]], tuple[int, bytes, str, float]] = lambda r: (
            200,
            completion("hello"),
            "application/json",
            0.0,
        )
        self.models = ["fake-model"]
        self.in_flight = 0
        self.max_in_flight = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                data = [{"id": m, "object": "model", "owned_by": "me"} for m in fake.models]
                self._send(
                    200, json.dumps({"object": "list", "data": data}).encode(), "application/json"
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                request = json.loads(self.rfile.read(length) or b"{}")
                with fake._lock:
                    fake.requests.append(request)
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    status, body, ctype, delay = fake.reply(request)
                    if delay:
                        fake.stopping.wait(delay)
                    self._send(status, body, ctype)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up (timeout) leaves a broken pipe: expected

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    server.close()


def quick(url: str, **options: Any) -> OpenAIBackend:
    return OpenAIBackend(url, **{"timeout": 5.0, "max_retries": 1, "backoff": 0.05, **options})


def test_timeout_is_retried_then_a_clear_error(fake):
    # The server would answer after 60 s, with a reply: an error that says the requests
    # timed out proves the 0.4 s timeout cut both attempts (no wall-clock bound needed).
    fake.reply = lambda r: (200, completion("late"), "application/json", 60.0)
    backend = quick(fake.url, model="m", timeout=0.4, max_retries=1)
    with pytest.raises(BackendError) as err:
        backend.generate(CHATS[:1], GenerationParams())
    message = str(err.value)
    assert fake.url in message and "2 attempts" in message
    assert re.search("tim(e|ed) ?out", message, re.IGNORECASE), message
    assert len(fake.requests) == 2
    assert backend.stats["failures"] == 1 and backend.stats["retries"] == 1


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (b"this is not json", "application/json"),
        (b"<html><body>502 Bad Gateway</body></html>", "text/html"),
        (b'{"foo": 1}', "application/json"),
        (b'{"choices": []}', "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (completion(42), "application/json"),
        (b'{"choices": [{"index": 0}]}', "application/json"),
    ],
    ids=[
        "not-json",
        "html",
        "no-choices",
        "empty-choices",
        "a-list",
        "number-content",
        "no-message",
    ],
)
def test_garbage_is_retried_then_a_clear_error(fake, body, ctype):
    fake.reply = lambda r: (200, body, ctype, 0.0)
    backend = quick(fake.url, model="m", max_retries=2)
    with pytest.raises(BackendError, match="malformed response") as err:
        backend.generate(CHATS[:2], GenerationParams(seeds=(1, 2)))
    assert fake.url in str(err.value)
    assert 3 <= len(fake.requests) <= 6  # each chat 3 attempts at most; the 2nd may be aborted


def test_null_or_empty_content_is_an_empty_reply(fake):
    fake.reply = lambda r: (
        200,
        completion(None if r["seed"] == 1 else "  "),
        "application/json",
        0,
    )
    backend = quick(fake.url, model="m")
    assert backend.generate(CHATS[:2], GenerationParams(seeds=(1, 2))) == ["", ""]
    assert backend.stats["retries"] == 0


def test_client_errors_are_not_retried(fake):
    fake.reply = lambda r: (
        400,
        b'{"error": {"message": "context too long"}}',
        "application/json",
        0,
    )
    backend = quick(fake.url, model="m", max_retries=3)
    with pytest.raises(BackendError, match="HTTP 400.*context too long"):
        backend.generate(CHATS[:1], GenerationParams())
    assert len(fake.requests) == 1


def test_transient_failures_are_retried_with_backoff(fake):
    def reply(request):
        if len(fake.requests) <= 2:
            return 503, b'{"error": "warming up"}', "application/json", 0.0
        return 200, completion("better now"), "application/json", 0.0

    fake.reply = reply
    backend = quick(fake.url, model="m", max_retries=2, backoff=0.1)
    start = time.perf_counter()
    assert backend.generate(CHATS[:1], GenerationParams()) == ["better now"]
    assert time.perf_counter() - start >= 0.1 + 0.2  # backoff doubles
    assert backend.stats["retries"] == 2 and backend.stats["failures"] == 0


def test_concurrency_is_bounded_and_order_kept(fake):
    def echo(request):
        return 200, completion(request["messages"][-1]["content"].upper()), "application/json", 0.2

    fake.reply = echo
    backend = quick(fake.url, model="m", concurrency=3)
    chats = [[{"role": "user", "content": f"chat {i}"}] for i in range(8)]
    replies = backend.generate(chats, GenerationParams(seeds=tuple(range(8))))
    assert replies == [f"CHAT {i}" for i in range(8)]
    assert fake.max_in_flight == 3


def test_request_carries_model_seed_and_sampling(fake):
    fake.models = ["served-model", "other"]
    backend = quick(fake.url)  # model=None: asks GET /models
    params = GenerationParams(max_tokens=7, temperature=0.3, top_p=0.8, seeds=(11,), stop=("\nX:",))
    fake.reply = lambda r: (200, completion("one\nX: two"), "application/json", 0)
    assert backend.generate(CHATS[:1], params) == ["one"]  # cut at the stop string
    sent = fake.requests[-1]
    assert sent["model"] == "served-model" == backend.model
    assert (sent["seed"], sent["max_tokens"], sent["temperature"], sent["top_p"]) == (
        11,
        7,
        0.3,
        0.8,
    )
    assert sent["stop"] == ["\nX:"]
    assert sent["messages"] == [{"role": m["role"], "content": m["content"]} for m in CHATS[0]]
    unseeded = quick(fake.url, model="m", send_seed=False, extra_body={"top_k": 5})
    unseeded.generate(CHATS[:1], params)
    assert "seed" not in fake.requests[-1] and fake.requests[-1]["top_k"] == 5


def test_nothing_listening_is_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = quick(url, model="m")
    with pytest.raises(BackendError, match=re.escape(url) + ".*Connection"):
        backend.generate(CHATS[:1], GenerationParams())
    with pytest.raises(BackendError, match="listing models"):
        quick(url).generate(CHATS[:1], GenerationParams())


def test_env_survives_a_failing_server_after_reset(fake):
    good = completion("Honestly I have been struggling since I lost my job.")
    fake.reply = lambda r: (200, good, "application/json", 0)
    spec = {"name": "openai", "base_url": fake.url, "model": "m", "max_retries": 1, "backoff": 0.01}
    env = gym.make("EmpathyDialogue-v0", voice="llm", backend=spec)
    env.reset(seed=0)
    fake.reply = lambda r: (500, b"internal error", "text/plain", 0)
    with pytest.raises(BackendError, match="HTTP 500"):
        env.step(0)
    fake.reply = lambda r: (200, good, "application/json", 0)
    with pytest.raises(RuntimeError, match=r"call reset\(\)"):
        env.step(0)  # the server is back, but this episode is half-done
    _, info = env.reset(seed=0)
    assert info["user_utterance"] == "Honestly I have been struggling since I lost my job."
    _, _, _, _, info = env.step(0)
    assert info["user_utterance"] and info["turn"] == 1
    env.close()


def test_env_whose_first_reset_fails_recovers(fake):
    # Gymnasium's PassiveEnvChecker cannot take a first reset that raises (its first step
    # then unpacks None), so this one runs without the checker.
    fake.reply = lambda r: (503, b"loading model", "text/plain", 0)
    spec = {"name": "openai", "base_url": fake.url, "model": "m", "max_retries": 0}
    env = gym.make("EmpathyDialogue-v0", voice="llm", backend=spec, disable_env_checker=True)
    with pytest.raises(BackendError, match="HTTP 503"):
        env.reset(seed=0)
    fake.reply = lambda r: (200, completion("I just feel lost."), "application/json", 0)
    assert env.reset(seed=0)[1]["user_utterance"] == "I just feel lost."
    assert env.step(0)[4]["user_utterance"]
    env.close()


# --------------------------------------------------------------------------- failing mid-step


def is_label_chat(chat) -> bool:
    """Whether a chat is the LLM recogniser's (its prompt starts "You label")."""
    return chat[0]["content"].startswith("You label")


class FlakyBackend:
    """Answers deterministically, and raises ``BackendError`` on demand.

    ``fail_next`` fails that many coming calls; ``fail_voice`` fails every call that is not
    the recogniser's (so the user's voice fails after the recogniser has answered).
    """

    name = "flaky"

    def __init__(self) -> None:
        self.fail_next = 0
        self.fail_voice = False

    def generate(self, chats, params: GenerationParams) -> list[str]:
        if self.fail_next or (self.fail_voice and not is_label_chat(chats[0])):
            self.fail_next = max(0, self.fail_next - 1)
            raise BackendError("flaky backend: the server went away")
        if is_label_chat(chats[0]):
            return ["Question"] * len(chats)
        return [f"I keep going over it, all of it ({s})." for s in params.seeds_for(len(chats))]


def flaky_env(env_id: str, backend: FlakyBackend, **kwargs: Any) -> gym.Env:
    extra = {"recogniser": "llm"} if "Text" in env_id else {}
    # Unchecked: the fixed line would be resampled and replaced; these tests are about failures.
    voice = {"name": "llm", "check": False}
    return gym.make(env_id, voice=voice, backend=backend, scenarios="test", **extra, **kwargs)


def action_for(env_id: str) -> Any:
    return "What happened after that?" if "Text" in env_id else 0


@pytest.mark.parametrize("env_id", ["EmpathyDialogue-v0", "EmpathyDialogueText-v0"])
def test_a_voice_failure_mid_step_demands_a_reset(env_id):
    backend = FlakyBackend()
    env = flaky_env(env_id, backend)
    env.reset(seed=0)
    action = action_for(env_id)
    env.step(action)
    turn = env.unwrapped.core.state.turn
    backend.fail_voice = True  # the text env's recogniser still answers
    with pytest.raises(BackendError, match="went away"):
        env.step(action)
    assert env.unwrapped.core.state.turn == turn + 1  # the core moved on; no words followed
    backend.fail_voice = False
    for _ in range(2):  # the backend is back, but the episode is half-done
        with pytest.raises(RuntimeError, match=r"failed part-way \(BackendError.*call reset\(\)"):
            env.step(action)
    _, info = env.reset(seed=1)
    assert info["turn"] == 0
    _, _, _, _, info = env.step(action)
    assert info["turn"] == 1 and info["user_utterance"].startswith("I keep going")
    env.close()


@pytest.mark.parametrize("env_id", ["EmpathyDialogue-v0", "EmpathyDialogueText-v0"])
def test_a_failure_before_the_user_moves_leaves_the_env_steppable(env_id):
    # The first LLM call of a step is the realiser's (agent_voice="llm") or the
    # recogniser's (text env): both come before the core, so nothing has changed.
    backend = FlakyBackend()
    kwargs = {} if "Text" in env_id else {"agent_voice": "llm"}
    env = flaky_env(env_id, backend, **kwargs)
    env.reset(seed=0)
    state, messages = env.unwrapped.core.state.copy(), list(env.unwrapped.messages)
    backend.fail_next = 1
    with pytest.raises(BackendError, match="went away"):
        env.step(action_for(env_id))
    assert env.unwrapped.core.state == state and env.unwrapped.messages == messages
    _, _, _, _, info = env.step(action_for(env_id))  # a retry, no reset needed
    assert info["turn"] == 1
    env.close()


def test_a_bad_action_never_demands_a_reset():
    env = flaky_env("EmpathyDialogueText-v0", FlakyBackend())
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside the action space"):
        env.step("a\x00b")
    assert env.step("How are you?")[4]["turn"] == 1
    env.close()


# --------------------------------------------------------------------------- llama.cpp server


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LlamaServer]:
    server = LlamaServer(n_ctx=2048, n_threads=1)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.mark.server
@pytest.mark.llm
def test_llama_server_batch_is_seeded(llama_server):
    backend = OpenAIBackend(llama_server.url, concurrency=3, timeout=120)
    params = GenerationParams(max_tokens=16, temperature=0.7, seeds=(1, 2, 3))
    first = backend.generate(CHATS, params)
    assert len(first) == 3 and all(first)
    assert backend.stats["completion_tokens"] > 0 and backend.stats["failures"] == 0
    # The server runs with the llama_cpp backend's state cache (prompts read in fixed
    # blocks, never from KV computed while generating): a seed gives the same text whatever
    # the server answered before, one request at a time in another order included...
    one_by_one = OpenAIBackend(llama_server.url, concurrency=1, timeout=120)
    again = one_by_one.generate(CHATS[::-1], GenerationParams(max_tokens=16, seeds=(3, 2, 1)))
    assert again[::-1] == first
    # ...and the in-process backend's text, with the same settings.
    local = get_backend({"name": "llama_cpp", "n_threads": 1})
    assert local.generate(CHATS, params) == first


def test_llama_server_command_sets_threads_logits_and_the_state_cache(tmp_path):
    model = tmp_path / "m.gguf"
    cmd = LlamaServer(model, port=8123, n_threads=3).command()
    flags = dict(zip(cmd[3::2], cmd[4::2], strict=False))
    assert cmd[1:3] == ["-m", "dialogue_gym.llm.backends.llama_server"]
    # Prompt threads follow n_threads: the server's default (every core) spin-waits on a
    # shared machine. Logits of every prompt token are not computed.
    assert flags["--n_threads"] == flags["--n_threads_batch"] == "3"
    assert flags["--logits_all"] == "False" and flags["--kv_block"] == "32"
    plain = LlamaServer(model, kv_cache_bytes=0, extra_args=("--logits_all", "True")).command()
    assert plain[1:3] == ["-m", "llama_cpp.server"] and "--kv_block" not in plain
    assert plain[-2:] == ["--logits_all", "True"]  # extra arguments come last and win


@pytest.mark.server
@pytest.mark.llm
def test_env_through_llama_server(llama_server):
    spec = f"openai:{llama_server.url}"
    env = gym.make("EmpathyDialogue-v0", voice="llm", backend=spec, max_turns=2)
    _, info = env.reset(seed=3)
    assert info["user_utterance"] and info["voice_config"]["user"]["backend"] == spec
    _, _, _, _, info = env.step(1)
    assert info["user_utterance"]
    env.close()


@pytest.mark.server
@pytest.mark.llm
@pytest.mark.slow
def test_server_killed_mid_episode_then_back():
    server = LlamaServer(n_ctx=2048, n_threads=1).start()
    try:
        spec = {
            "name": "openai",
            "base_url": server.url,
            "timeout": 20.0,
            "max_retries": 1,
            "backoff": 0.1,
        }
        env = gym.make("EmpathyDialogue-v0", voice="llm", backend=spec)
        env.reset(seed=0)  # the user has spoken: the episode is under way
        server.kill()
        with pytest.raises(BackendError) as err:
            env.step(1)  # the agent speaks; the user's voice cannot answer
        message = str(err.value)
        assert server.url in message and "2 attempts" in message and "Connection" in message
        with pytest.raises(RuntimeError, match=r"failed part-way.*call reset\(\)"):
            env.step(2)  # the core moved on without the user's words: no stepping on
        # Back on the same port: a reset starts a clean episode.
        server = LlamaServer(n_ctx=2048, n_threads=1, port=server.port).start()
        _, info = env.reset(seed=1)
        assert info["user_utterance"] and info["turn"] == 0
        _, _, _, _, info = env.step(2)
        assert info["user_utterance"] and info["turn"] == 1
        env.close()
    finally:
        server.stop()


# --------------------------------------------------------------------------- transformers


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    # Two torch threads on a 2-core machine shared with other processes spin-wait badly.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def smollm2(one_thread) -> TransformersBackend:
    backend = get_backend({"name": "transformers", "device": "cpu"})
    assert isinstance(backend, TransformersBackend)
    backend.model  # noqa: B018  (loads the GGUF once for the module)
    return backend


@pytest.mark.llm
@pytest.mark.slow
def test_transformers_gguf_batch_left_padded(smollm2):
    assert smollm2.tokenizer.padding_side == "left"
    lengths = {len(smollm2.tokenizer(smollm2.prompt(c))["input_ids"]) for c in CHATS}
    assert len(lengths) == 3  # a padded batch
    params = GenerationParams(max_tokens=12, temperature=0.7, seeds=(1, 2, 3))
    first = smollm2.generate(CHATS, params)
    assert len(first) == 3 and all(first)
    assert smollm2.generate(CHATS, params) == first  # same seeds, same texts
    other = smollm2.generate(CHATS, GenerationParams(max_tokens=12, seeds=(4, 5, 6)))
    assert other != first
    # A row's draws depend on its own seed, not on its neighbours (float32 on the CPU).
    alone = smollm2.generate(CHATS[2:], GenerationParams(max_tokens=12, seeds=(3,)))
    assert alone == first[2:]


@pytest.mark.llm
@pytest.mark.slow
def test_transformers_greedy_batched_equals_unbatched(smollm2):
    params = GenerationParams(max_tokens=12, temperature=0.0)
    batched = smollm2.generate(CHATS, params)
    assert batched == [smollm2.generate([chat], params)[0] for chat in CHATS]
    assert all(batched)


@pytest.mark.llm
@pytest.mark.slow
def test_env_with_transformers_backend(smollm2):
    env = gym.make(
        "EmpathyDialogue-v0",
        voice="llm",
        backend={"name": "transformers", "device": "cpu"},
        max_turns=2,
    )
    assert env.unwrapped.voice.backend is smollm2  # one model per process
    _, info = env.reset(seed=0)
    assert info["user_utterance"]
    assert info["voice_config"]["user"]["backend"] == {"name": "transformers", "device": "cpu"}
    env.close()


@pytest.mark.slow
def test_random_weight_model_fixed_new_tokens(tmp_path, one_thread):
    from dialogue_gym.llm.backends.transformers_backend import save_random_model

    path = save_random_model(tmp_path / "tiny", "tiny", tokenizer="bytes")
    backend = TransformersBackend(path, device="cpu", ignore_eos=True, max_batch_size=2)
    params = GenerationParams(max_tokens=6, seeds=(1, 2, 3))
    replies = backend.generate(CHATS, params)  # 3 chats in batches of 2
    assert len(replies) == 3 and backend.stats["batches"] == 2
    assert backend.stats["completion_tokens"] == 3 * 6
    assert backend.generate(CHATS, params) == replies
    with pytest.raises(ValueError, match="one seed per chat"):
        backend.generate(CHATS, GenerationParams(seeds=(1,)))


def test_seeded_sampler_draws_from_the_nucleus():
    import torch

    from dialogue_gym.llm.backends.transformers_backend import _SeededSampler

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    no_ids = torch.zeros((1, 0), dtype=torch.long)

    def share(top_p: float, n: int = 3000) -> list[float]:
        counts = [0, 0, 0]
        for seed in range(n):
            out = _SeededSampler([seed], 0, 1.0, top_p)(no_ids, logits)
            counts[int(out.argmax())] += 1
        return [c / n for c in counts]

    assert share(1.0) == pytest.approx([0.5, 0.3, 0.2], abs=0.04)
    assert share(0.75) == pytest.approx([0.625, 0.375, 0.0], abs=0.04)
    # One row's draw does not depend on the other rows.
    batch = torch.randn(4, 1000)
    together = _SeededSampler([7, 8, 9, 10], 0, 0.7, 0.9)(no_ids.expand(4, 0), batch).argmax(1)
    alone = _SeededSampler([9], 0, 0.7, 0.9)(no_ids, batch[2:3]).argmax(1)
    assert together[2] == alone[0]


def test_the_backends_registry_lists_builds_and_forgets():
    from dialogue_gym.llm.backends import BACKENDS, register_backend, unregister_backend
    from dialogue_gym.registry import Registry

    assert isinstance(BACKENDS, Registry)
    assert available_backends() == tuple(sorted(BACKENDS))
    assert BACKENDS.entry("openai").meta["main_arg"] == "base_url"

    class Echo:
        name = "echo_test"

        def __init__(self, text: str = "hi") -> None:
            self.text = text

        def generate(self, chats, params):
            return [self.text for _ in chats]

    register_backend("echo_test", Echo, main_arg="text")
    try:
        first = get_backend("echo_test:a")
        assert first is get_backend({"name": "echo_test", "text": "a"})  # one per spec
        # Replacing the factory drops the instances the old one built.
        register_backend("echo_test", lambda text="hi": Echo(text.upper()), main_arg="text")
        assert get_backend("echo_test:a").text == "A"
    finally:
        unregister_backend("echo_test")
    assert "echo_test" not in available_backends()
    with pytest.raises(ValueError, match=r"unknown backend 'echo_test'; valid backends: .*openai"):
        get_backend("echo_test:a")
