"""The SB3 adapter's reset: per-env options and seeds (issue 12, defects 7 and 10).

The rest of the adapter (SB3's conventions, PPO on it, ``gym.make_vec`` without an autoreset
setting) is tested in tests/test_vector.py.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.integrations.sb3 import SB3VecEnv, make_sb3_vec_env

KWARGS = {"voice": "template", "scenarios": "test", "max_turns": 3}


def single_reset(seed: int, options: dict | None) -> tuple[dict, dict]:
    """What one env shows after ``reset(seed=seed, options=options)``: the reference."""
    env = gym.make("EmpathyDialogue-v0", **KWARGS)
    return env.reset(seed=seed, options=options)


def same_obs(batched: dict, i: int, single: dict) -> bool:
    return all(np.array_equal(batched[key][i], value) for key, value in single.items())


@pytest.mark.parametrize(
    "build",
    [
        lambda: make_sb3_vec_env(n_envs=3, **KWARGS),
        lambda: SB3VecEnv(gym.make_vec("EmpathyDialogue-v0", num_envs=3, **KWARGS)),
        lambda: SB3VecEnv(
            gym.make_vec("EmpathyDialogue-v0", num_envs=3, vectorization_mode="sync", **KWARGS)
        ),
    ],
    ids=["adapter-same-step", "batched-next-step", "sync-next-step"],
)
def test_each_env_gets_its_own_options(build):
    venv = build()
    cards = venv.envs[0].unwrapped.cards
    options = [{"card": 1}, {"card": 5}, {}]  # the third draws its card from its seed
    venv.seed(7)
    venv.set_options(options)
    obs = venv.reset()
    for i, opts in enumerate(options):
        want_obs, want_info = single_reset(7 + i, opts or None)
        assert venv.reset_infos[i]["card_id"] == want_info["card_id"]
        assert venv.reset_infos[i]["user_utterance"] == want_info["user_utterance"]
        assert same_obs(obs, i, want_obs)  # seeded: exactly as if reset alone
    assert [c.id for c in venv.get_attr("card")[:2]] == [cards[1].id, cards[5].id]
    # The episodes go on from there: a step sees the chosen users.
    _, _, _, infos = venv.step(np.array([0, 0, 0]))
    assert [info["card_id"] for info in infos[:2]] == [cards[1].key, cards[5].key]
    # SB3 forgets options after a reset: the next one draws every card again.
    venv.seed(7)
    venv.reset()
    assert venv.reset_infos[0]["card_id"] == single_reset(7, None)[1]["card_id"]
    venv.close()


def test_the_same_options_for_every_env_and_a_wrong_count():
    venv = make_sb3_vec_env(n_envs=2, seed=0, **KWARGS)
    card = venv.envs[0].unwrapped.cards[4]
    venv.set_options({"card": card.id})
    venv.reset()
    assert [info["card_id"] for info in venv.reset_infos] == [card.key, card.key]
    venv.set_options([{"card": 1}])
    with pytest.raises(ValueError, match=r"options.*1 .*2 envs"):
        venv.reset()
    venv.close()


@pytest.mark.parametrize("seed", [np.int64(3), np.uint32(3), 3, [3, 4], np.array([3, 4])])
def test_numpy_integers_are_seeds(seed):
    venv = make_sb3_vec_env(n_envs=2, seed=seed, **KWARGS)
    ref = make_sb3_vec_env(n_envs=2, seed=3, **KWARGS)
    got, want = venv.reset(), ref.reset()
    assert all(np.array_equal(got[k], want[k]) for k in want)
    assert venv.reset_infos == ref.reset_infos
    venv.close()
    ref.close()


@pytest.mark.parametrize(
    ("seed", "error"),
    [
        (-1, ValueError),
        (1.5, TypeError),
        ("3", TypeError),
        (True, TypeError),
        ([1], ValueError),  # one seed for two envs
        ([1, -2], ValueError),
        ([1, 2.0], TypeError),
    ],
)
def test_a_bad_seed_is_a_clear_error(seed, error):
    with pytest.raises(error) as err:
        make_sb3_vec_env(n_envs=2, seed=seed, **KWARGS)
    message = str(err.value)
    assert message.startswith("seed") and repr(seed) in message, message
    assert "non-negative integer" in message and "None" in message, message
