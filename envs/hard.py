"""EmpathyDialogueHard-v0: the same env with a harder user, on whom the coarse bonus is hard to learn.

The default user of ``EmpathyDialogue-v0`` is easy: PPO learns the sparse success bonus to about
97% within 60k decisions, as does the stage heuristic. ``EmpathyDialogueHard-v0`` is the same env
class with four simulator settings moved (:data:`HARD_USER_SIM`), chosen by measurement
(``benchmarks/hard_user.py``, ``docs/simulator.md``) so that the oracle still succeeds, the stage
heuristic stays far above a random policy, and PPO on the sparse bonus often never finds the
reward (some seeds do, most do not). The same user is ``EmpathyDialogue-v0`` with
``sim=dict(HARD_USER_SIM)``, so a study may pass the settings as ``--sim`` overrides instead.

Example:
    >>> import gymnasium as gym
    >>> import dialogue_gym
    >>> env = gym.make("EmpathyDialogueHard-v0", voice="template", scenarios="test")
    >>> env.unwrapped.sim_config.explore_gain, env.unwrapped.sim_config.leave_threshold
    (0.15, 20.0)
    >>> cfg = gym.make("EmpathyDialogueHard-v0", voice="template", sim={"noise": 3.0})
    >>> cfg.unwrapped.sim_config.noise, cfg.unwrapped.sim_config.explore_gain  # merged
    (3.0, 0.15)
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from dialogue_gym.core.config import SimConfig
from dialogue_gym.envs.empathy import EmpathyDialogueEnv

__all__ = ["HARD_USER_SIM", "EmpathyDialogueHardEnv", "hard_user_sim"]

#: The hard user's ``SimConfig`` overrides (every other field keeps its default). Pass them as
#: ``gym.make("EmpathyDialogue-v0", sim=dict(HARD_USER_SIM))`` or to the study's ``--sim``.
HARD_USER_SIM: Mapping[str, float] = MappingProxyType(
    {
        # Opens up slowly: each question draws out 0.15 of the need, not 0.25 (a restatement
        # 0.8 of that; both times 1 - resistance), so help lands only after 4 to 6 explorations
        # (alternating questions and restatements; 2 to 4 by default).
        "explore_gain": 0.15,
        # Fragile: leaves when emotion falls to 20, not 0 (a hard card starts at 25).
        "leave_threshold": 20.0,
        # Advice before understanding, or the wrong advice, hurts twice as much or more.
        "premature_penalty": 12.0,
        "wrong_help_penalty": 8.0,
    }
)


def hard_user_sim(sim: SimConfig | Mapping[str, Any] | None = None) -> Any:
    """What the hard env gives ``SimConfig.coerce``: ``HARD_USER_SIM`` under the caller's ``sim``.

    ``None`` is the hard user; a mapping overrides some of its settings (the rest stay hard); a
    whole :class:`SimConfig` is taken as it is (it names every field). Anything else is passed
    on unchanged, so it is refused with the base env's error.

    Example:
        >>> hard_user_sim({"noise": 0.0})["noise"], hard_user_sim(None)["leave_threshold"]
        (0.0, 20.0)
    """
    if sim is None:
        return dict(HARD_USER_SIM)
    if isinstance(sim, Mapping):
        return {**HARD_USER_SIM, **sim}
    return sim


class EmpathyDialogueHardEnv(EmpathyDialogueEnv):
    """`EmpathyDialogue-v0` with a harder user: guarded, fragile, hurt by early advice.

    ## Description

    The same conversation as `EmpathyDialogue-v0` (a simulated user with a **hidden need**; the
    agent picks one of ESConv's eight support strategies each turn; explore, comfort, then give
    the help that fits) with a user who is harder to help. Four simulator settings differ from
    the defaults (`dialogue_gym.envs.hard.HARD_USER_SIM`):

    | `SimConfig` field | default | hard | the user |
    |---|---|---|---|
    | `explore_gain` | 0.25 | 0.15 | opens up slowly: help lands after 4 (easy card) to 6 (hard card) questions and restatements, not 2 to 4 |
    | `leave_threshold` | 0 | 20 | fragile: leaves when emotion falls to 20 (hard cards start at 25) |
    | `premature_penalty` | 6 | 12 | advice before understanding hurts twice as much |
    | `wrong_help_penalty` | 3 | 8 | so does well-timed help of the wrong kind |

    A policy that knows the path still gets there within the 10 turns; one that must find it
    from the coarse success bonus rarely does. Measured on the 72 test cards (study evaluation,
    `benchmarks/hard_user.py`; `docs/simulator.md` has every figure and command):

    | policy | default user | hard user |
    |---|---|---|
    | oracle | 99.5% | 96.8% |
    | stage heuristic | 98.6% | 56.0% |
    | random | 6.5% | 0.5% |
    | PPO on `sparse`, 60k decisions (mean of seeds) | 96.5% (seeds 0, 1) | 33.6% (seeds 0-4) |
    | PPO on `sparse`, 100k decisions | – | 45.3% (seeds 0-4) |
    | PPO on `sparse`, 200k decisions | – | 54.2% (seeds 0-4) |

    The bonus is a discovery problem here: a PPO seed that finds the path learns it to 85-95%,
    one that does not settles on comforting and stays there (two of five seeds at 0% after
    200k decisions); more decisions let more seeds find it, so the mean is below 50% up to
    100k decisions and just above at 150k-200k. Compare rewards at the study's budget and over
    seeds.

    ## Action Space

    `Discrete(8)`, ESConv's strategies in `dialogue_gym.STRATEGIES` order, as in
    `EmpathyDialogue-v0`. An action outside the space raises `ValueError`.

    ## Observation Space

    The `Dict` of `float32` Boxes of `EmpathyDialogue-v0` (`emotion`, `score`, `turn`,
    `user_act`, `need_cues`, `history`, `last_act`). Need cues appear as the agent explores:
    with the slower `explore_gain` the third cue of the hidden need (revealed at understanding
    0.7) often comes only after help would already land.

    ## Rewards

    As in `EmpathyDialogue-v0`: the unwrapped env pays the coarse sparse bonus, `1.0` on the
    turn the user thanks the agent with the need resolved, else `0.0`; `gym.make(...,
    reward=name)` applies a wrapper of `dialogue_gym.rewards.REWARDS` (`"sparse"` by default).

    ## Starting State

    As in `EmpathyDialogue-v0`: a card drawn uniformly from the split (or named with
    `reset(options={"card": ...})`), emotion at the card's `initial_emotion` (25–45), trust by
    the persona's character type and the card's difficulty. The same seed draws the same card
    and noise as `EmpathyDialogue-v0`; only the dynamics differ.

    ## Episode End

    - Termination, success: the need is resolved and emotion >= `success_threshold` (70).
    - Termination, failure: emotion <= `leave_threshold`, **20** here; the user leaves.
    - Truncation: `max_turns` agent turns (default 10).

    `info` is that of `EmpathyDialogue-v0`.

    ## Arguments

    ```python
    gym.make(
        "EmpathyDialogueHard-v0",
        sim=None,   # None: the hard user; a dict overrides some of its settings (the others
                    # stay hard); a whole SimConfig is used as it is
        ...,        # every other argument as EmpathyDialogue-v0 (reward, voice, scenarios...)
    )
    ```

    `gym.make("EmpathyDialogue-v0", sim=dict(HARD_USER_SIM))` builds the same user (the reward
    study's `--sim explore_gain=0.15 leave_threshold=20 premature_penalty=12
    wrong_help_penalty=8`).

    ## Registered Configurations

    - `EmpathyDialogueHard-v0`: the defaults of `EmpathyDialogue-v0` with the hard user's
      `SimConfig` settings above.
    """

    def __init__(self, sim: SimConfig | Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        # Every other argument is EmpathyDialogue-v0's, passed on as given (and checked there).
        super().__init__(sim=hard_user_sim(sim), **kwargs)
