"""Every LLM caller of every user of a vector env goes through one batched call per round.

The user voice, the agent realiser (``agent_voice="llm"``), the LLM recogniser of
EmpathyDialogueText-v0 and the SAGE judge (``appraisal="llm"``) each hold a backend handle; the
vector env swaps all of them for its batcher. A counting backend (deterministic replies, one
record per call) shows how many calls of how many chats each kind of LLM work costs.
"""

from __future__ import annotations

import copy
import pickle
import threading
from collections import Counter

import gymnasium as gym
import numpy as np
import pytest
from fake_backends import judge_reply, quoted_message, system_of

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.core.vocabulary import STRATEGIES
from dialogue_gym.envs.text import EXAMPLE_UTTERANCES
from dialogue_gym.envs.vector import EmpathyDialogueVectorEnv
from dialogue_gym.llm.backends import BackendError, GenerationParams
from dialogue_gym.llm.batching import Batcher, BatchingBackend
from dialogue_gym.llm.client import BackendClient


def kind_of(chat) -> str:
    """Which simulator part asked: the judge, the recogniser, or a voice."""
    system = system_of(chat)
    if system.startswith("You judge"):
        return "judge"
    if system.startswith("You label"):
        return "recognise"
    return "voice"


class KindCountingBackend:
    """Deterministic replies per kind of chat; records ``(kind, chats)`` per call.

    The judge gets a valid appraisal whose change depends on the seed, the recogniser the
    strategy the example utterance stands for, a voice a line naming its seed. ``down``
    makes every call raise ``BackendError``.
    """

    name = "kind-counting"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.down = False
        self.lock = threading.Lock()

    def generate(self, chats, params: GenerationParams) -> list[str]:
        kinds = {kind_of(c) for c in chats}
        with self.lock:
            self.calls.append(("+".join(sorted(kinds)), len(chats)))
        if self.down:
            raise BackendError("kind-counting backend: the server went away")
        seeds = params.seeds or (0,) * len(chats)
        return [self._reply(c, s) for c, s in zip(chats, seeds, strict=True)]

    @staticmethod
    def _reply(chat, seed: int) -> str:
        kind = kind_of(chat)
        if kind == "judge":
            return judge_reply(seed % 7 - 2, "They seem to care.")
        if kind == "recognise":
            said = quoted_message(chat)
            for name, text in zip(STRATEGIES, EXAMPLE_UTTERANCES, strict=True):
                if said == text:
                    return name
            return "Others"
        return f"I keep thinking about it, number {seed % 101}. It is a lot."

    def by_kind(self) -> Counter:
        return Counter(kind for kind, _ in self.calls)


N = 4
# Unchecked voice: a line failing the check costs extra (resampling) calls, and these tests
# count calls per kind of LLM work; the resampling rounds have their own tests (test_voice.py).
VOICE = {"name": "llm", "check": False}
TEXT_KWARGS = {"voice": VOICE, "recogniser": "llm", "appraisal": "llm", "scenarios": "test"}


def text_actions(strategies) -> list[str]:
    return [EXAMPLE_UTTERANCES[s] for s in strategies]


def test_text_env_recogniser_judge_and_voice_are_each_one_call_of_n():
    backend = KindCountingBackend()
    envs = gym.make_vec("EmpathyDialogueText-v0", num_envs=N, backend=backend, **TEXT_KWARGS)
    envs.reset(seed=0)
    assert backend.calls == [("voice", N)]  # the N openings, together
    for k in range(3):
        backend.calls.clear()
        envs.step(text_actions([(k + i) % 7 for i in range(N)]))
        # One call of N chats per kind per round, not N calls of one chat.
        assert sorted(backend.calls) == [("judge", N), ("recognise", N), ("voice", N)]
    assert envs.unwrapped.backend_calls == 1 + 3 * 3
    envs.close()


def test_realiser_judge_and_voice_are_each_one_call_of_n():
    backend = KindCountingBackend()
    envs = gym.make_vec(
        "EmpathyDialogue-v0",
        num_envs=N,
        voice=VOICE,
        agent_voice="llm",
        appraisal="llm",
        backend=backend,
        scenarios="test",
    )
    envs.reset(seed=0)
    backend.calls.clear()
    envs.step(list(range(N)))
    # The realiser's and the user's chats are both "voice" chats: two calls, in order.
    assert backend.calls == [("voice", N), ("judge", N), ("voice", N)]
    envs.close()


def test_every_llm_caller_of_every_user_holds_the_batcher():
    backend = KindCountingBackend()
    envs = EmpathyDialogueVectorEnv(
        3, env_id="EmpathyDialogueText-v0", backend=backend, **TEXT_KWARGS
    )
    proxies = set()
    for env in envs.envs:
        clients = env.unwrapped.backend_clients()
        assert len(clients) == 3  # user voice, judge, recogniser (the realiser is unused)
        assert all(isinstance(c, BackendClient) for c in clients)
        proxies.update(id(c.backend) for c in clients)
        assert all(isinstance(c.backend, BatchingBackend) for c in clients)
    assert len(proxies) == 1  # one backend, one proxy, shared by all 9 handles
    envs.close()


def test_batched_text_env_equals_single_envs():
    seed, steps = 11, 3
    envs = gym.make_vec(
        "EmpathyDialogueText-v0", num_envs=3, backend=KindCountingBackend(), **TEXT_KWARGS
    )
    singles = [
        gym.make("EmpathyDialogueText-v0", backend=KindCountingBackend(), **TEXT_KWARGS)
        for _ in range(3)
    ]
    _, infos = envs.reset(seed=seed)
    for i, env in enumerate(singles):
        assert env.reset(seed=seed + i)[1]["user_utterance"] == infos["user_utterance"][i]
    rng = np.random.default_rng(0)
    for _ in range(steps):
        actions = text_actions(rng.integers(7, size=3))
        obs, rewards, _, _, infos = envs.step(actions)
        for i, env in enumerate(singles):
            o, r, _, _, info = env.step(actions[i])
            for key in ("strategy", "change", "appraisal_source", "user_utterance"):
                assert infos[key][i] == info[key]
            assert info["appraisal_source"] == "llm"  # the judge's change, not the rule's
            # Gymnasium nests a dict entry of info key by key.
            assert infos["recognition"]["source"][i] == info["recognition"]["source"] == "llm"
            assert np.array_equal(obs["emotion"][i], o["emotion"]) and rewards[i] == r
    envs.close()


def test_silent_users_skip_the_recogniser_and_the_others_still_batch():
    backend = KindCountingBackend()
    envs = gym.make_vec("EmpathyDialogueText-v0", num_envs=N, backend=backend, **TEXT_KWARGS)
    envs.reset(seed=0)
    backend.calls.clear()
    envs.step(["", EXAMPLE_UTTERANCES[0], "   ", EXAMPLE_UTTERANCES[2]])
    chats = Counter()
    for kind, n in backend.calls:
        chats[kind] += n
    assert chats == {"recognise": 2, "judge": 2, "voice": N}  # silence: no model call
    assert len(backend.calls) <= 4  # rounds may mix, but never one call per user
    envs.close()


def test_attached_batcher_never_travels():
    envs = EmpathyDialogueVectorEnv(
        2, env_id="EmpathyDialogueText-v0", backend="llama_cpp", **TEXT_KWARGS
    )  # the embedded model's spec; never loaded here
    base = envs.envs[0].unwrapped
    assert all(isinstance(c.backend, BatchingBackend) for c in base.backend_clients())
    for clone in (pickle.loads(pickle.dumps(base)), copy.deepcopy(base)):
        for client in clone.backend_clients():
            assert client._backend is None and client.spec == "llama_cpp"
    envs.close()


def test_a_failed_step_makes_the_vector_env_demand_a_reset():
    backend = KindCountingBackend()
    envs = gym.make_vec("EmpathyDialogue-v0", num_envs=3, voice=VOICE, backend=backend)
    envs.reset(seed=0)
    backend.down = True
    with pytest.raises(BackendError, match="went away"):
        envs.step([0, 1, 2])
    backend.down = False
    with pytest.raises(RuntimeError, match=r"reset\(\).*BackendError"):
        envs.step([0, 1, 2])
    obs, infos = envs.reset(seed=1)
    assert (obs["turn"] == 0).all()
    _, _, _, _, infos = envs.step([0, 1, 2])
    assert (infos["turn"] == 1).all()
    envs.close()


# --------------------------------------------------------------------------- the batcher


class Named:
    """A backend that tags its replies and counts its calls."""

    def __init__(self, tag: str) -> None:
        self.name = tag
        self.calls = 0

    def generate(self, chats, params):
        self.calls += 1
        return [f"{self.name}:{c[-1]['content']}" for c in chats]


def test_workers_waiting_on_different_backends_do_not_wait_for_each_other():
    small, large = Named("small"), Named("large")
    batcher = Batcher()
    proxies = [batcher.proxy(small), batcher.proxy(large)]
    assert batcher.proxy(small) is proxies[0]  # one proxy per backend
    assert batcher.proxy(proxies[0]) is proxies[0]  # a proxy is unwrapped, never nested
    out: list[str | None] = [None] * 4

    def work(i: int) -> None:
        try:
            chat = [{"role": "user", "content": str(i)}]
            out[i] = proxies[i % 2].generate([chat], None)[0]
        finally:
            batcher.finish()

    batcher.start(4)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    assert out == ["small:0", "large:1", "small:2", "large:3"]
    assert (small.calls, large.calls, batcher.calls) == (1, 1, 2)


def test_outside_a_round_a_call_goes_straight_through():
    proxy = Batcher().proxy(Named("m"))
    assert proxy.generate([[{"role": "user", "content": "hi"}]], None) == ["m:hi"]
