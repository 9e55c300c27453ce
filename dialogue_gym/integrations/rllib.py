"""RLlib adapter: PPO on RLlib's new API stack for the strategy env, across env runners.

:func:`ppo_config` builds an RLlib :class:`~ray.rllib.algorithms.ppo.PPOConfig` on the new API
stack (RLModule and Learner, ``EnvRunner`` actors with ConnectorV2 pipelines) for
``EmpathyDialogue-v0`` or any registered strategy env id, under any reward wrapper by name:

- **The env travels as a name and plain kwargs, never as an object.** :func:`register_rllib_env`
  registers :func:`make_env` with ``ray.tune.registry.register_env``; each env runner calls it
  in its own process with the env config (:func:`env_config`: the env id, the reward, its
  kwargs, ``gym.make`` kwargs, plugin modules). So with ``voice="llm"`` the LLM handle (a
  :class:`~dialogue_gym.llm.client.BackendClient`, which resolves its backend on first use) is
  created inside each runner and the model loads there on the runner's first user turn; nothing
  of it is pickled from the driver. With ``num_env_runners >= 1`` the driver builds no env at all
  (RLlib's ``create_env_on_local_worker`` stays off); with ``num_env_runners=0`` the driver's own
  runner samples, and builds the env (and loads the model) in the driver.
- **The Dict observation is flattened by RLlib's own** ``FlattenObservations`` env-to-module
  connector: the RLModule sees one 39-float vector, in the order RLlib flattens ``Dict`` spaces
  (keys sorted). :class:`RLModulePolicy` runs the same connector at evaluation.
- **Hyperparameters as the study's SB3 PPO** (:data:`SB3_PPO`) where they map: 512 decisions
  per update, minibatches of 64, 10 epochs, lr 3e-4, GAE lambda 0.95, clip 0.2, entropy 0.01,
  value coefficient 0.5, gradient norm 0.5, no KL penalty, separate 64-64 tanh policy and value
  networks. Pass ``training=`` to change any.
- ``batched=True`` gives each runner one
  :class:`~dialogue_gym.envs.vector.EmpathyDialogueVectorEnv` of ``num_envs_per_env_runner``
  users (RLlib's ``vector_entry_point`` mode), so an LLM voice makes one backend call per round
  for all of a runner's users instead of one per user.

:func:`evaluate_rllib` plays the trained RLModule greedily on the test cards exactly as the
reward study plays its SB3 policies (one episode per card, seed ``EVAL_SEED + k``, template
voice, through :func:`dialogue_gym.evaluation.episodes.evaluate`) and returns the success rate,
mean final emotion and mean turns. :func:`runner_report` asks every remote runner which process
it is and how many envs it built, to check where the envs (and their LLM handles) live.

Ray and RLlib are imported only when these functions run (``pip install 'dialogue_gym[rllib]'``).
RLlib has no language-model policies: use it for the strategy env, TRL or verl for the text env.

Example:
    >>> env_config(reward="emotion_delta", max_turns=8)
    {'env_id': 'EmpathyDialogue-v0', 'reward': 'emotion_delta', 'reward_kwargs': None, 'env_kwargs': {'voice': 'template', 'max_turns': 8}, 'plugins': ()}
    >>> env = make_env(env_config(scenarios="test"))  # what each runner calls
    >>> type(env.unwrapped).__name__, env.action_space
    ('EmpathyDialogueEnv', Discrete(8))
    >>> env.close()

Training (a running Ray; ``docs/rllib.md`` has the whole example)::

    import ray
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    algo = ppo_config(num_env_runners=1, voice="template").build_algo()
    for _ in range(4):
        result = algo.train()
    print(evaluate_rllib(algo))  # {'success_rate': ..., 'final_emotion': ..., 'mean_turns': ...}
    algo.stop()
    ray.shutdown()
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from dialogue_gym.evaluation.episodes import evaluate, summarize
from dialogue_gym.rewards.registry import DEFAULT_REWARD

if TYPE_CHECKING:
    from ray.rllib.algorithms.algorithm import Algorithm
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModule

__all__ = [
    "RLLIB_ENV",
    "SB3_PPO",
    "SB3_PPO_MODEL",
    "RLModulePolicy",
    "env_config",
    "envs_created_here",
    "evaluate_rllib",
    "make_env",
    "ppo_config",
    "register_rllib_env",
    "runner_report",
]

#: The name :func:`register_rllib_env` registers :func:`make_env` under with Ray Tune.
RLLIB_ENV = "dialogue_gym"

#: PPO's settings as the reward study's SB3 PPO (``study.learners._ppo``: SB3's defaults, 512 steps
#: per update, minibatches of 64, entropy 0.01), in RLlib's names. RLlib's own defaults differ
#: (a KL penalty, 30 epochs, lambda 1.0, lr 5e-5), which would make the comparison one of
#: defaults, not of engines. ``vf_clip_param`` is RLlib-only; the sparse return is in [0, 1],
#: so its default 10 never binds.
SB3_PPO: dict[str, Any] = {
    "lr": 3e-4,
    "gamma": 0.99,
    "lambda_": 0.95,
    "clip_param": 0.2,
    "entropy_coeff": 0.01,
    "vf_loss_coeff": 0.5,
    "grad_clip": 0.5,
    "grad_clip_by": "global_norm",
    "use_kl_loss": False,
    "num_epochs": 10,
    "minibatch_size": 64,
    "train_batch_size_per_learner": 512,
}
#: SB3's ``MultiInputPolicy`` networks: separate 64-64 tanh MLPs for the policy and the value.
SB3_PPO_MODEL: dict[str, Any] = {
    "fcnet_hiddens": [64, 64],
    "fcnet_activation": "tanh",
    "vf_share_layers": False,
}

# Envs make_env built in this process (env ids, in order): runner_report reads it in each
# runner, so a test can tell that a runner built its own env and the driver built none.
_CREATED: list[str] = []


def env_config(
    env_id: str = "EmpathyDialogue-v0",
    reward: str | None = DEFAULT_REWARD,
    reward_kwargs: Mapping[str, Any] | None = None,
    plugins: Sequence[str] = (),
    **env_kwargs: Any,
) -> dict[str, Any]:
    """The env config RLlib hands :func:`make_env` in every runner: names and plain data only.

    Args:
        env_id: A registered strategy env id (``gym.make``'s).
        reward: A reward wrapper's name (``dialogue_gym.rewards.REWARDS``), or ``None`` for the
            env's own coarse bonus.
        reward_kwargs: The reward's arguments.
        plugins: Modules each runner imports first (they may register rewards, voices or env
            ids: a runner is a fresh process and sees only what it imports).
        **env_kwargs: ``gym.make`` kwargs (``voice`` defaults to ``"template"``; ``voice="llm"``
            with ``backend=`` a backend's name or spec).

    Raises:
        TypeError: ``backend`` is a live object rather than a name or spec: it would be pickled
            into every runner, where each runner should build its own.

    Example:
        >>> env_config(voice="llm", backend="llama_cpp")["env_kwargs"]
        {'voice': 'llm', 'backend': 'llama_cpp'}
    """
    backend = env_kwargs.get("backend")
    if backend is not None and not isinstance(backend, str | Mapping):
        raise TypeError(
            f"backend must be a backend's name or spec (a dict), got {type(backend).__name__}: "
            "each RLlib runner builds its own LLM handle from the spec, and a live backend "
            "would be pickled from the driver into every runner"
        )
    return {
        "env_id": env_id,
        "reward": reward,
        "reward_kwargs": dict(reward_kwargs) if reward_kwargs is not None else None,
        "env_kwargs": {"voice": "template", **env_kwargs},
        "plugins": tuple(plugins),
    }


def make_env(config: Mapping[str, Any]) -> gym.Env:
    """The env creator: builds one env (or, with ``num_envs``, one batched vector env) in the
    calling process, from an :func:`env_config` dict.

    RLlib calls it inside each env runner with the runner's ``EnvContext`` (the config plus the
    runner's index); in ``vector_entry_point`` mode (``ppo_config(batched=True)``) the config
    also carries ``num_envs`` and the result is an
    :class:`~dialogue_gym.envs.vector.EmpathyDialogueVectorEnv` with next-step autoreset, the
    mode RLlib's runners expect.

    Args:
        config: What :func:`env_config` returns (RLlib passes it as an ``EnvContext``).

    Example:
        >>> venv = make_env({**env_config(), "num_envs": 2})
        >>> type(venv).__name__, venv.num_envs
        ('EmpathyDialogueVectorEnv', 2)
        >>> venv.close()
    """
    import dialogue_gym  # noqa: F401  (registers the env ids in this process: a runner starts bare)
    from dialogue_gym.plugins import load_plugins

    load_plugins(tuple(config.get("plugins", ())), owner="rllib")
    env_id = config.get("env_id", "EmpathyDialogue-v0")
    kwargs = {
        "reward": config.get("reward", DEFAULT_REWARD),
        "reward_kwargs": config.get("reward_kwargs"),
        **config.get("env_kwargs", {}),
    }
    num_envs = config.get("num_envs")
    if num_envs is None:
        env = gym.make(env_id, **kwargs)
    else:
        from dialogue_gym.envs.vector import EmpathyDialogueVectorEnv

        env = EmpathyDialogueVectorEnv(
            int(num_envs), env_id=env_id, autoreset_mode="next_step", **kwargs
        )
    _CREATED.append(env_id)
    return env


def envs_created_here() -> list[str]:
    """The env ids :func:`make_env` built in this process, in order (a copy)."""
    return list(_CREATED)


def register_rllib_env(name: str = RLLIB_ENV) -> str:
    """Register :func:`make_env` with Ray Tune's registry under ``name``; returns ``name``.

    ``ray.tune.registry.register_env`` keeps the creator by reference in the cluster's registry;
    every runner looks it up by name and calls it with the config. Registering again is harmless.
    """
    from ray.tune.registry import register_env

    register_env(name, make_env)
    return name


def _flatten_connector(env: Any, spaces: Any, device: Any) -> Any:
    """The env-to-module connector each runner builds: RLlib's ``FlattenObservations``.

    A module-level function (not a lambda) so the config pickles by reference.
    """
    from ray.rllib.connectors.env_to_module import FlattenObservations

    return FlattenObservations()


def ppo_config(
    env_id: str = "EmpathyDialogue-v0",
    reward: str | None = DEFAULT_REWARD,
    reward_kwargs: Mapping[str, Any] | None = None,
    num_env_runners: int = 1,
    num_envs_per_env_runner: int = 1,
    batched: bool = False,
    seed: int | None = 0,
    sample_timeout_s: float | None = None,
    training: Mapping[str, Any] | None = None,
    model: Mapping[str, Any] | None = None,
    plugins: Sequence[str] = (),
    env_name: str = RLLIB_ENV,
    **env_kwargs: Any,
) -> PPOConfig:
    """An RLlib ``PPOConfig`` (new API stack) for a dialogue env, ready for ``build_algo()``.

    Args:
        env_id: A registered strategy env id (a ``Discrete`` action space).
        reward: The reward wrapper's name (``None``: the env's coarse bonus).
        reward_kwargs: Its arguments.
        num_env_runners: Remote ``EnvRunner`` actors sampling in parallel (each its own
            process, its own envs, its own LLM handle). ``0`` samples in the driver.
        num_envs_per_env_runner: Users each runner steps together.
        batched: Each runner's users as one batched vector env (one LLM call per round).
        seed: RLlib's seed (``debugging(seed=)``: the module's init and each runner's envs).
        sample_timeout_s: How long the algorithm waits for a runner's batch before dropping it
            (default: RLlib's 60 s with the template voice; 600 s with any other voice, as an
            LLM voice's first batch also loads the model and each user turn is a generation).
        training: ``PPOConfig.training`` overrides on top of :data:`SB3_PPO`.
        model: ``DefaultModelConfig`` fields on top of :data:`SB3_PPO_MODEL`.
        plugins: Modules each runner imports before building its env.
        env_name: The name :func:`make_env` is registered under.
        **env_kwargs: ``gym.make`` kwargs (``voice="template"`` unless given).

    Raises:
        ValueError: A negative runner count or fewer than one env per runner.

    Example (needs the ``rllib`` extra, so not run as a doctest)::

        config = ppo_config(num_env_runners=2, reward="emotion_delta", voice="llm")
        assert config.num_env_runners == 2 and config.env_config["reward"] == "emotion_delta"
        algo = config.build_algo()  # after ray.init(); each runner builds its own LLM user
    """
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    if int(num_env_runners) < 0:
        raise ValueError(f"num_env_runners must be >= 0, got {num_env_runners}")
    if int(num_envs_per_env_runner) < 1:
        raise ValueError(f"num_envs_per_env_runner must be >= 1, got {num_envs_per_env_runner}")
    register_rllib_env(env_name)
    runner_kwargs: dict[str, Any] = {}
    if sample_timeout_s is None and env_kwargs.get("voice", "template") != "template":
        sample_timeout_s = 600.0
    if sample_timeout_s is not None:
        runner_kwargs["sample_timeout_s"] = float(sample_timeout_s)
    if batched:
        runner_kwargs["gym_env_vectorize_mode"] = gym.VectorizeMode.VECTOR_ENTRY_POINT
    return (
        PPOConfig()
        .api_stack(enable_rl_module_and_learner=True, enable_env_runner_and_connector_v2=True)
        .framework("torch")
        .environment(
            env_name,
            env_config=env_config(env_id, reward, reward_kwargs, plugins, **env_kwargs),
        )
        .env_runners(
            num_env_runners=int(num_env_runners),
            num_envs_per_env_runner=int(num_envs_per_env_runner),
            env_to_module_connector=_flatten_connector,
            # The driver needs no env when runners sample: it would only load the LLM again.
            create_env_on_local_worker=False,
            rollout_fragment_length="auto",
            **runner_kwargs,
        )
        .learners(num_learners=0)  # the learner in the driver; learners need no env
        .training(**{**SB3_PPO, **(training or {})})
        .rl_module(model_config=DefaultModelConfig(**{**SB3_PPO_MODEL, **(model or {})}))
        .debugging(seed=seed)
    )


def _module_of(algo_or_module: Algorithm | RLModule) -> RLModule:
    get_module = getattr(algo_or_module, "get_module", None)
    return get_module() if callable(get_module) else algo_or_module


class RLModulePolicy:
    """A trained RLlib RLModule as the ``obs -> action`` policy the evaluation and planners take.

    Flattens each ``Dict`` observation with RLlib's own ``FlattenObservations`` connector (the
    one the runners used in training), runs ``forward_inference`` and acts on the module's
    inference distribution: its mode (``deterministic=True``, the usual evaluation) or a sample.
    ``action_probs(obs)`` gives the action probabilities, as
    :class:`~dialogue_gym.integrations.sb3.SB3Policy` does, for a dual-process agent's System 1.

    Args:
        module: The RLModule (``algo.get_module()``), or the ``Algorithm`` itself.
        observation_space: The env's (unflattened) observation space.
        action_space: The env's action space.
        deterministic: Act on the most likely action.

    Raises:
        ValueError: The flattened observation does not fit the module's input.
    """

    def __init__(
        self,
        module: Algorithm | RLModule,
        observation_space: gym.Space,
        action_space: gym.Space,
        deterministic: bool = True,
    ) -> None:
        from ray.rllib.connectors.env_to_module import FlattenObservations

        self.module = _module_of(module)
        self.deterministic = bool(deterministic)
        self._flatten = FlattenObservations(
            input_observation_space=observation_space, input_action_space=action_space
        )
        expected = getattr(self.module, "observation_space", None)
        got = self._flatten.observation_space
        if expected is not None and expected.shape != got.shape:
            raise ValueError(
                f"the module takes observations of shape {expected.shape}, the env's flatten "
                f"to {got.shape}: evaluate on the env id and kwargs the module was trained on"
            )
        self._dist_cls = self.module.get_inference_action_dist_cls()

    def reset(self, seed: int | None = None) -> None:
        """Nothing to clear: the default PPO module is not recurrent."""

    def flatten(self, obs: Any) -> np.ndarray:
        """``obs`` as the module sees it: through ``FlattenObservations``, as in the runners."""
        from ray.rllib.env.single_agent_episode import SingleAgentEpisode

        # The connector flattens an episode's latest observation in place: a one-step episode
        # per call keeps the evaluation on exactly the training's code path.
        episode = SingleAgentEpisode(observations=[obs])
        self._flatten(rl_module=None, batch={}, episodes=[episode], explore=False, shared_data={})
        return np.asarray(episode.get_observations(0), dtype=np.float32)

    def _distribution(self, obs: Any) -> Any:
        import torch
        from ray.rllib.core.columns import Columns

        batch = {Columns.OBS: torch.from_numpy(self.flatten(obs)[None])}
        with torch.no_grad():
            out = self.module.forward_inference(batch)
        return self._dist_cls.from_logits(out[Columns.ACTION_DIST_INPUTS])

    def action_probs(self, obs: Any) -> np.ndarray:
        """The policy's probability of each action at ``obs``."""
        import torch

        # Softmax of the logits in float64, renormalised: sums to 1 to the last digit.
        probs = torch.softmax(self._distribution(obs).logits[0].double(), dim=-1).numpy()
        return probs / probs.sum()

    def __call__(self, obs: Any) -> int:
        dist = self._distribution(obs)
        if self.deterministic:
            dist = dist.to_deterministic()
        return int(dist.sample()[0])


def evaluate_rllib(
    algo_or_module: Algorithm | RLModule,
    env_id: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    seed: int | None = None,
    repeats: int = 1,
    deterministic: bool = True,
) -> dict[str, float]:
    """Play the trained module on the test cards as the reward study plays its SB3 policies.

    One episode per test card, card ``k`` with seed ``EVAL_SEED + k`` (the study's
    ``play_test_cards``), the template voice, the default reward (success does not depend on
    it), greedy actions; all through :func:`dialogue_gym.evaluation.episodes.evaluate`.

    Args:
        algo_or_module: A built ``Algorithm`` (its training env config supplies the env id and
            the kwargs, e.g. ``sim`` and ``max_turns``) or an RLModule.
        env_id: The env id (default: the algorithm's, else ``EmpathyDialogue-v0``).
        env_kwargs: ``gym.make`` kwargs (default: the algorithm's training kwargs); the test
            cards and the template voice are imposed on top, as in the study.
        seed: Base seed (default: the study's ``EVAL_SEED``).
        repeats: Passes over the cards.
        deterministic: Greedy actions.

    Returns:
        ``success_rate``, ``final_emotion``, ``mean_turns``, ``user_left_rate`` and
        ``episodes`` (:func:`dialogue_gym.evaluation.episodes.summarize`).
    """
    from dialogue_gym.study.settings import EVAL_SEED

    trained = dict(getattr(getattr(algo_or_module, "config", None), "env_config", None) or {})
    env_id = env_id or trained.get("env_id", "EmpathyDialogue-v0")
    kwargs = dict(trained.get("env_kwargs", {}) if env_kwargs is None else env_kwargs)
    kwargs.update(voice="template", scenarios="test")
    module = _module_of(algo_or_module)
    results = evaluate(
        lambda env: RLModulePolicy(module, env.observation_space, env.action_space, deterministic),
        env_id=env_id,
        env_kwargs=kwargs,
        seed=EVAL_SEED if seed is None else int(seed),
        repeats=repeats,
    )
    return summarize(results)


def _runner_facts(runner: Any) -> dict[str, Any]:
    """What a runner says of itself (runs inside the runner's process)."""
    envs = getattr(getattr(runner, "env", None), "unwrapped", None)
    users = list(getattr(envs, "envs", ()))
    return {
        "pid": os.getpid(),
        "worker_index": int(getattr(runner, "worker_index", -1)),
        "envs_created": envs_created_here(),
        "voices": [type(user.unwrapped.voice).__name__ for user in users],
    }


def runner_report(algo: Algorithm) -> list[dict[str, Any]]:
    """Each remote env runner's process id, the envs :func:`make_env` built there and the voices
    of its users, via ``EnvRunnerGroup.foreach_env_runner``.

    Compare the pids with ``os.getpid()`` and ``envs_created_here()`` in the driver to see that
    every runner built its own users (and LLM handles) and the driver none.
    """
    return list(algo.env_runner_group.foreach_env_runner(_runner_facts, local_env_runner=False))
