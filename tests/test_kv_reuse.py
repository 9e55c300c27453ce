"""KV states reused between turns, with seeded replay exact (issue 13, item 3).

- the block schedule (fast, no model): whatever came before and whatever the cache holds, a
  prompt is read in the same blocks, and the model is left holding exactly its whole blocks;
  the cache stays within its bytes;
- the real model (``llm``): the chunked read gives the very logits of a one-piece read; the same
  seeded episode gives the same transcript alone, interleaved with other conversations, with
  a cache small enough to evict, and with the cache off; states are reused from the third turn
  of a conversation and cost what the docs say.
"""

from __future__ import annotations

import ctypes
import dataclasses
import random
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.llm.backends import get_backend
from dialogue_gym.llm.backends.llama_cpp import LlamaCppBackend, PromptStateCache

# --------------------------------------------------------------------------- the schedule


class FakeLlama:
    """Just enough of ``llama_cpp.Llama`` for :class:`PromptStateCache`: the "KV cache" is
    the list of (position, token, chunk) cells, so a restored state can be told apart from
    an evaluated one only if it differs."""

    def __init__(self) -> None:
        self.input_ids = np.zeros(4096, dtype=np.intc)
        self.n_tokens = 0
        self._requires_eval = True
        self.cells: list[tuple[int, int, int]] = []  # (position, token, chunk start)
        self.evals: list[tuple[int, int]] = []  # (n_past, n_tokens) of each eval
        self._ctx = self
        self.ctx = self

    # llama_cpp.Llama
    def reset(self) -> None:
        self.n_tokens = 0

    def eval(self, tokens: list[int]) -> None:
        self.kv_cache_seq_rm(-1, self.n_tokens, -1)
        self.evals.append((self.n_tokens, len(tokens)))
        start = self.n_tokens
        for i, t in enumerate(tokens):
            self.cells.append((start + i, int(t), start))
        self.input_ids[start : start + len(tokens)] = tokens
        self.n_tokens += len(tokens)

    # its _ctx
    def kv_cache_seq_rm(self, seq: int, p0: int, p1: int) -> bool:
        self.cells = [c for c in self.cells if c[0] < p0]
        return True


@pytest.fixture
def fake_state_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """llama.cpp's sequence-state calls over :class:`FakeLlama`'s cells (12 bytes a cell)."""
    import llama_cpp

    def get_size(ctx: FakeLlama, seq: int) -> int:
        return 12 * len(ctx.cells)

    def get_data(ctx: FakeLlama, dst: Any, size: int, seq: int) -> int:
        raw = np.array(ctx.cells, dtype=np.int32).tobytes()
        ctypes.memmove(dst, raw, len(raw))
        return len(raw)

    def set_data(ctx: FakeLlama, src: Any, size: int, seq: int) -> int:
        cells = np.frombuffer(bytes(src)[:size], dtype=np.int32).reshape(-1, 3)
        ctx.cells = [tuple(int(x) for x in c) for c in cells]
        return size

    monkeypatch.setattr(llama_cpp, "llama_state_seq_get_size", get_size)
    monkeypatch.setattr(llama_cpp, "llama_state_seq_get_data", get_data)
    monkeypatch.setattr(llama_cpp, "llama_state_seq_set_data", set_data)


def cold_cells(prompt: list[int], block: int) -> list[tuple[int, int, int]]:
    """The cells a cold read leaves before the final piece: every whole block, in blocks."""
    m = max(0, (len(prompt) - 2) // block)
    return [(p, prompt[p], p - p % block) for p in range(m * block)]


def conversations(
    rng: random.Random, n: int, turns: int, append_only: bool = False
) -> list[list[list[int]]]:
    """Prompts shaped like the voice's: a shared head, a per-conversation persona, a changing
    per-turn line, then a history that grows; or (``append_only``) each prompt the previous
    one with more history after it."""
    head = [1] * 7
    out = []
    for c in range(n):
        persona = [rng.randrange(100, 200) for _ in range(rng.randrange(20, 90))]
        history: list[int] = []
        prompts = []
        for t in range(turns):
            line = [rng.randrange(200, 300) for _ in range(rng.randrange(3, 12))]
            if append_only:
                history += line
                prompts.append(head + persona + [10 + c] + history)
            else:
                prompts.append(head + persona + [10 + c, t] + line + history)
            history += [rng.randrange(300, 400) for _ in range(rng.randrange(5, 30))]
        out.append(prompts)
    return out


@pytest.mark.parametrize("append_only", [False, True])
@pytest.mark.parametrize("max_bytes", [10**9, 4000, 0])
def test_every_prompt_is_read_in_the_same_blocks_whatever_the_order(
    fake_state_api: None, max_bytes: int, append_only: bool
) -> None:
    rng = random.Random(max_bytes)
    block = 8
    convs = conversations(rng, n=4, turns=5, append_only=append_only)
    llm = FakeLlama()
    cache = PromptStateCache(max_bytes=max_bytes, block=block)
    # Interleave the conversations' turns in a random order (each conversation's in order).
    queue = [c for c, prompts in enumerate(convs) for _ in prompts]
    rng.shuffle(queue)
    nxt = [0] * len(convs)
    for c in queue:
        prompt = convs[c][nxt[c]]
        nxt[c] += 1
        llm.evals.clear()
        cache.prime(llm, prompt)
        m = cache.boundaries(len(prompt))
        # The model holds exactly the prompt's whole blocks, as a cold read leaves them, and
        # leaves at least 2 tokens to read (one token alone is read along another path).
        assert llm.n_tokens == m * block <= len(prompt) - 2
        assert list(llm.input_ids[: llm.n_tokens]) == prompt[: m * block]
        assert llm.cells == cold_cells(prompt, block)
        # What was evaluated here was whole blocks at block positions.
        assert all(start % block == 0 and size == block for start, size in llm.evals)
        # Sampling must wait for the final piece's logits.
        assert llm._requires_eval
        assert cache.nbytes <= max_bytes
        # Generated tokens land after the prompt and must never be taken for prompt KV.
        llm.eval(prompt[m * block :] + [999, 998])
    stats = cache.stats
    assert stats["prompts"] == len(queue)
    assert stats["reused_tokens"] + stats["evaluated_tokens"] == sum(
        cache.boundaries(len(p)) * block for prompts in convs for p in prompts
    )
    if max_bytes >= 10**6:
        # From its second or third turn on, a conversation starts from a saved state, or
        # from the blocks the model still holds when its previous turn came just before.
        assert stats["hits"] + stats["live_hits"] >= len(convs) * 3
        assert stats["evictions"] == 0
    if max_bytes == 0:
        assert stats["hits"] == stats["saves"] == 0


def test_a_shared_prefix_outlives_one_off_states(fake_state_api: None) -> None:
    block = 4
    llm = FakeLlama()
    shared = list(range(1, 13))  # three blocks that some prompts start with

    def one_off(k: int) -> list[int]:
        return [900 + k, *range(100 + 10 * k, 117 + 10 * k)]  # 18 tokens, nothing shared

    # Room for the 12-token shared state and three 16-token ones (12 bytes a cell, 4 a token).
    cache = PromptStateCache(max_bytes=12 * 16 + 3 * 16 * 16 + 100, block=block)
    cache.prime(llm, [*shared, 50, 51, 52, 53, 54, 55])
    # The next prompt keeps the shared blocks the model holds, and saves their state (where
    # the two prompts part is a branch point); the one after keeps them too.
    cache.prime(llm, [*shared, 60, 61, 62, 63, 64, 65])
    cache.prime(llm, [*shared, 66, 67, 68, 69, 70, 71])
    assert cache.stats["live_hits"] == 2 and cache.stats["hits"] == 0
    assert sorted(cache.state_sizes())[0] == 12 * 16  # the 12 shared tokens' state
    for r in range(3):
        # Four one-off prompts between two uses of the shared prefix: plain LRU would evict it.
        for k in range(4):
            cache.prime(llm, one_off(4 * r + k))
        hits = cache.stats["hits"]
        prompt = [*shared, 80 + r, 81, 82, 83, 84, 85]
        cache.prime(llm, prompt)
        assert cache.stats["hits"] == hits + 1, r
        assert llm.cells == cold_cells(prompt, block)
    assert cache.stats["evictions"] > 0 and cache.nbytes <= cache.max_bytes


def test_block_and_budget_are_checked() -> None:
    with pytest.raises(ValueError, match="block"):
        PromptStateCache(block=0)
    with pytest.raises(ValueError, match="max_bytes"):
        PromptStateCache(max_bytes=-1)
    assert LlamaCppBackend(kv_cache_bytes=0).kv_cache is None
    assert LlamaCppBackend(prefix_cache=True).kv_cache is None
    backend = LlamaCppBackend(kv_block=16)
    assert backend.kv_cache is not None and backend.kv_cache.block == 16
    assert backend.n_threads_batch == backend.n_threads


# --------------------------------------------------------------------------- the real model


def one_piece_and_chunked_logits(llm: Any, prompt: list[int], block: int) -> tuple:
    """The last token's logits after a one-piece read and after the cache's chunked read."""
    n_vocab = llm.n_vocab()

    def logits() -> np.ndarray:
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,)).copy()

    llm.reset()
    llm.eval(prompt)
    whole = logits()
    cache = PromptStateCache(block=block)
    cache.prime(llm, prompt)  # cold: evaluated in blocks
    llm.eval(prompt[llm.n_tokens :])
    chunked = logits()
    llm.reset()
    llm.eval(list(range(500, 700)))  # something else in between
    cache.prime(llm, prompt)  # warm: restored from the saved state
    assert cache.stats["hits"] == 1
    llm.eval(prompt[llm.n_tokens :])
    return whole, chunked, logits()


@pytest.fixture(scope="module")
def model() -> LlamaCppBackend:
    backend = get_backend("llama_cpp")
    assert isinstance(backend, LlamaCppBackend)
    backend._load()
    return backend


#: A system message of about 300 tokens, shaped like the user voice's.
LONG_PROMPT = (
    "<|im_start|>system\nYou are Maya, 34, a female nurse who lost her job last month. The "
    "clinic closed its night ward and let six of them go; she was told on a Friday, by email. "
    "The rent is due on the first and her savings cover two months if nothing else breaks. Her "
    "sister Jo has not called back since the argument at their mother's birthday, and Maya "
    "keeps rehearsing what she would say if she did.\nFacts of your life (never contradict "
    "them): How long were you at the clinic? Nine years. Who else knows? Only my neighbour "
    "Tom. What do you do in the evenings? I walk the dog and avoid the news.\nYou are warm, "
    "proud and a little sarcastic. Your way of speaking: short sentences, dry jokes, you change "
    "the subject when it gets close.\nYou are the one who needs help: you are telling a "
    "supporter about losing your job. You are not an assistant.\nYou feel low and on edge.\n"
    "Answer as Maya, in one to three short sentences.<|im_end|>\n<|im_start|>user\nHow have "
    "the last few weeks been for you, honestly?<|im_end|>\n<|im_start|>assistant\nHonestly? "
    "Long. I keep the alarm set for the night shift and then lie there. Tom brought soup on "
    "Tuesday, which was kind and also mortifying.<|im_end|>\n<|im_start|>user\nThat sounds "
    "exhausting. What has been the hardest part of it so far, the money or the people?"
    "<|im_end|>\n<|im_start|>assistant\n"
)


@pytest.mark.llm
@pytest.mark.parametrize(
    ("block", "length"),
    # Lengths one past a block boundary: a final piece of one token would be read along
    # llama.cpp's one-token path, whose logits differ from a batch's (here at 127 in blocks
    # of 7; at 130, 257 and 481 tokens in blocks of 32 with the voice's prompts).
    [(32, 130), (32, 161), (32, 257), (64, 257), (7, 127), (32, None)],
)
def test_chunked_and_restored_reads_give_one_piece_logits_bit_for_bit(
    model: LlamaCppBackend, block: int, length: int | None
) -> None:
    llm = model._llm
    prompt = llm.tokenize(LONG_PROMPT.encode(), add_bos=False, special=True)
    assert len(prompt) > 257
    prompt = prompt[:length]
    with model._lock:
        whole, chunked, restored = one_piece_and_chunked_logits(llm, prompt, block)
        llm.reset()
    assert np.array_equal(whole, chunked)
    assert np.array_equal(whole, restored)


def transcripts(spec: Any, order: list[int], seeds: tuple[int, ...], steps: int) -> dict:
    """Episodes of ``len(seeds)`` users on one backend, their turns interleaved in ``order``:
    each user's lines by its seed (its actions depend on its seed alone)."""
    envs = [
        gym.make("EmpathyDialogue-v0", voice="llm", scenarios="test", backend=spec, max_turns=steps)
        for _ in seeds
    ]
    for env in envs:
        voice = env.unwrapped.voice
        voice.params = dataclasses.replace(voice.params, max_tokens=10)
    lines: dict[int, list[str]] = {seed: [] for seed in seeds}
    for i in order:
        lines[seeds[i]].append(envs[i].reset(seed=seeds[i])[1]["user_utterance"])
    for t in range(steps):
        for i in order:
            lines[seeds[i]].append(envs[i].step((3 * t + seeds[i]) % 8)[4]["user_utterance"])
    for env in envs:
        env.close()
    return lines


@pytest.mark.llm
@pytest.mark.slow
def test_a_seeded_episode_is_the_same_whatever_ran_beside_it() -> None:
    steps = 3
    ours = 11
    spec = {"name": "llama_cpp", "kv_block": 24}
    # Alone on a cold cache.
    alone = transcripts(spec, [0], (ours,), steps)[ours]
    # Interleaved with two other users, ours last, on the cache the first run left warm...
    warm = transcripts(spec, [1, 2, 0], (5, 6, ours), steps)[ours]
    # ...ours first, with a cache that holds about one state (evictions all along)...
    small = {"name": "llama_cpp", "kv_block": 24, "kv_cache_bytes": 9 * 2**20}
    evicting = transcripts(small, [0, 2, 1], (ours, 7, 8), steps)[ours]
    # ...and with the cache off: every prompt read whole from an empty context.
    off = transcripts({"name": "llama_cpp", "kv_cache_bytes": 0}, [0], (ours,), steps)[ours]
    assert len(alone) == steps + 1 and all(alone)
    assert warm == alone
    assert evicting == alone
    assert off == alone
    reused = get_backend(spec).kv_cache
    assert reused is not None and reused.stats["hits"] > 0 and reused.stats["reused_tokens"] > 0
    assert get_backend(small).kv_cache.stats["evictions"] > 0


@pytest.mark.llm
def test_states_are_reused_between_turns_and_cost_about_23_kb_a_token() -> None:
    spec = {"name": "llama_cpp", "kv_block": 32, "kv_cache_bytes": 2**28}
    backend = get_backend(spec)
    env = gym.make("EmpathyDialogue-v0", voice="llm", scenarios="test", backend=spec)
    voice = env.unwrapped.voice
    voice.params = dataclasses.replace(voice.params, max_tokens=4)
    env.reset(seed=2)
    env.step(0)
    before = dict(backend.kv_cache.stats)
    env.step(1)  # the third prompt of this conversation
    stats = backend.kv_cache.stats
    used = ("hits", "live_hits")  # restored, or kept from the turn just before
    assert sum(stats[k] for k in used) > sum(before[k] for k in used)
    assert stats["reused_tokens"] - before["reused_tokens"] >= 128  # the persona's part
    assert backend.stats["prompt_tokens_read"] < backend.stats["prompt_tokens"]
    sizes = backend.kv_cache.state_sizes()
    tokens = [len(s.tokens) for s in backend.kv_cache._states.values()]
    per_token = [s / t for s, t in zip(sizes, tokens, strict=True)]
    # SmolLM2-135M: 30 layers x (K + V) x 3 KV heads x 64 dims x 2 bytes = 23,040 bytes.
    assert all(23_040 <= b < 23_200 for b in per_token), per_token
    assert backend.kv_cache.nbytes <= backend.kv_cache.max_bytes
    env.close()
