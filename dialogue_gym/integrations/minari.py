"""Minari adapter: record episodes of a policy as a Minari offline-RL dataset.

:func:`record_dataset` plays a policy (a reference policy by name, a trained SB3 PPO as
``"ppo:PATH"``, or any ``obs -> action``) in ``EmpathyDialogue-v0`` under a chosen reward wrapper,
through Minari's own :class:`minari.DataCollector`, and writes a dataset that
``minari.load_dataset`` reads: observations (the env's ``Dict`` observation, stored per key),
actions, rewards (those the reward wrapper paid), terminations, truncations, and the turn's
``info`` in ``infos``.

**What Minari stores of ``info``.** Minari's ``DataCollector`` needs the same ``info`` keys,
types and shapes on every step of an episode, the reset included (the env's own ``info`` fails
at the first step: the reset's lacks the step's keys, and jax reports a pytree structure
error), and it stores leaves as arrays: numbers, booleans and strings work in all its formats;
a list of dicts (the chat) does not, and a nested dict comes back as a dict of arrays from HDF5
but as an array of dicts from Arrow. So :class:`DialogueStepData` writes a fixed
schema, :data:`INFO_SCHEMA`: the same keys on every row, with the reset's row filled with
neutral values, and

- the transcript as ``infos["transcript"]``: on every row, the chat so far as a JSON string
  (``json.dumps(info["messages"].to_list())``: a list of ``{"role", "content", ...}``);
  :func:`decode_transcript` reads one back, :func:`episode_transcript` gives an episode's whole
  chat;
- each reward component as its own float column ``reward_components.<key>`` (a ``/`` in a
  component's name becomes ``.``, as HDF5 reads ``/`` as a group separator);
  :func:`reward_components` gives them back under their own names.

Row ``t`` of ``infos`` is the ``info`` that came with observation ``t``: row 0 is the reset's,
row ``t >= 1`` the one ``step`` returned with the ``t``-th action, as Minari aligns them
(``len(infos[key]) == len(actions) + 1``).

Every episode's seed and options (its card) are in Minari's episode metadata, so the dataset
replays exactly: ``env.reset(seed=..., options=...)`` then the recorded actions give the same
observations, rewards and chat (``tests/test_minari.py`` checks it). Episode ``k`` plays card
``k % n_cards`` with seed ``seed + k``, as :func:`dialogue_gym.evaluation.episodes.evaluate`
does, so datasets of different policies meet the same users.

Minari writes datasets under ``$MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``).
It comes with ``pip install 'dialogue_gym[minari]'`` (Minari, and jax, which Minari's
``DataCollector`` uses to buffer steps); this module imports Minari only when it records.

Example:
    >>> decode_transcript('[{"role": "user", "content": "Hi."}]')
    [{'role': 'user', 'content': 'Hi.'}]
    >>> column_name("final_emotion/emotion")
    'reward_components.final_emotion.emotion'
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

import dialogue_gym
from dialogue_gym.agents.reference import REFERENCE_POLICIES, make_policy
from dialogue_gym.evaluation.episodes import AnyPolicy, EpisodeResult, ModelPolicy, run_episode
from dialogue_gym.rewards.base import COMPONENTS_KEY

try:  # Minari's own callback bases, when the extra is installed
    from minari import EpisodeMetadataCallback, StepDataCallback
except ImportError:  # the module still imports (docs, doctests); record_dataset says what's missing
    EpisodeMetadataCallback = StepDataCallback = object  # type: ignore[assignment,misc]

if TYPE_CHECKING:  # pragma: no cover
    import minari

__all__ = [
    "COMPONENT_PREFIX",
    "DATA_FORMATS",
    "INFO_SCHEMA",
    "MODEL_PREFIXES",
    "DialogueEpisodeMetadata",
    "DialogueStepData",
    "column_name",
    "datasets_path",
    "decode_transcript",
    "default_dataset_id",
    "episode_transcript",
    "policy_label",
    "record_dataset",
    "resolve_policy",
    "reward_components",
]

#: Minari's storage formats; ``arrow`` (pyarrow) is the default here, ``hdf5`` needs h5py.
DATA_FORMATS = ("arrow", "parquet", "hdf5")

#: The ``infos`` every step of a dataset has: key -> (type, the reset row's value when the env
#: gives none). ``transcript`` is the chat so far as JSON; the reward components follow as
#: ``reward_components.<key>`` float columns.
INFO_SCHEMA: dict[str, tuple[type, Any]] = {
    "emotion": (float, 0.0),
    "emotion_before": (float, None),  # the reset row: the opening emotion
    "change": (float, 0.0),
    "user_act": (str, ""),
    "user_utterance": (str, ""),
    "agent_utterance": (str, ""),
    "strategy": (str, ""),
    "reason": (str, ""),
    "cue": (str, ""),
    "card_id": (str, ""),  # the card's opaque key: its full id spells the hidden need
    "card": (str, ""),  # the card's full id: the terminal row only
    "turn": (int, 0),
    "resolved": (bool, False),
    "premature": (bool, False),
    "success": (bool, False),
    "user_left": (bool, False),
    "need": (str, ""),
    "transcript": (str, "[]"),
}

#: Prefix of the reward components' float columns in ``infos``.
COMPONENT_PREFIX = "reward_components."

#: ``--policy PREFIX:PATH`` -> the SB3 class that loads the zip (``module:Class``).
MODEL_PREFIXES = {
    "ppo": "stable_baselines3:PPO",
    "recurrent-ppo": "sb3_contrib:RecurrentPPO",
}


def column_name(component: str) -> str:
    """The ``infos`` column of a reward component (``/`` -> ``.``, for HDF5).

    Example:
        >>> column_name("sparse")
        'reward_components.sparse'
    """
    return COMPONENT_PREFIX + component.replace("/", ".")


def _text(value: Any) -> str:
    # HDF5 hands strings back as bytes; Arrow as str.
    return value.decode("utf-8") if isinstance(value, bytes | np.bytes_) else str(value)


def decode_transcript(value: str | bytes) -> list[dict[str, Any]]:
    """One ``infos["transcript"]`` entry back as the chat: a list of message dicts.

    Args:
        value: The JSON string (or the bytes an HDF5 dataset gives back).

    Example:
        >>> decode_transcript(b'[{"role": "assistant", "content": "I hear you."}]')[0]["content"]
        'I hear you.'
    """
    return json.loads(_text(value))


def episode_transcript(episode: Any) -> list[dict[str, Any]]:
    """The whole chat of a Minari episode (its last ``transcript`` row).

    Args:
        episode: A :class:`minari.EpisodeData` (``dataset[i]``) or its ``infos`` mapping.

    Example:
        >>> episode_transcript({"transcript": ['[]', '[{"role": "user", "content": "Hi."}]']})
        [{'role': 'user', 'content': 'Hi.'}]
    """
    infos = episode if isinstance(episode, Mapping) else episode.infos
    return decode_transcript(infos["transcript"][-1])


def reward_components(infos: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """An episode's reward components under their own names (``final_emotion/emotion``...).

    Component names come from the reward registry and hold no ``.``, so every ``.`` after
    the prefix is read back as the ``/`` it stands for.

    Example:
        >>> cols = {"reward_components.final_emotion": [0.0, 0.4], "turn": [0, 1]}
        >>> {k: v.tolist() for k, v in reward_components(cols).items()}
        {'final_emotion': [0.0, 0.4]}
    """
    return {
        key[len(COMPONENT_PREFIX) :].replace(".", "/"): np.asarray(values, dtype=float)
        for key, values in infos.items()
        if key.startswith(COMPONENT_PREFIX)
    }


class DialogueStepData(StepDataCallback):
    """Minari step-data callback: each step's ``info`` as the fixed :data:`INFO_SCHEMA`.

    The reset's ``info`` fixes the reward components (their keys are in it from the start), so
    every row of an episode has the same columns, as Minari requires. Observation, action,
    reward, termination and truncation pass through unchanged.
    """

    def __init__(self) -> None:
        self.components: tuple[str, ...] = ()

    def __call__(
        self,
        env: gym.Env,
        obs: Any,
        info: dict[str, Any],
        action: Any = None,
        rew: Any = None,
        terminated: bool | None = None,
        truncated: bool | None = None,
    ) -> dict[str, Any]:
        if action is None:  # a reset: this episode's component columns
            self.components = tuple((info.get(COMPONENTS_KEY) or {}).keys())
        return {
            "action": action,
            "observation": obs,
            "reward": rew,
            "terminated": terminated,
            "truncated": truncated,
            "info": self.encode(info),
        }

    def encode(self, info: Mapping[str, Any]) -> dict[str, Any]:
        """The schema's row for one ``info`` (missing keys get the reset row's values)."""
        row: dict[str, Any] = {}
        for key, (kind, default) in INFO_SCHEMA.items():
            if key == "transcript":
                messages = info.get("messages") or ()
                chat = messages.to_list() if hasattr(messages, "to_list") else list(messages)
                value = json.dumps([dict(m) for m in chat], ensure_ascii=False)
            elif key in info and info[key] is not None:
                value = info[key]
            elif key == "emotion_before":
                value = info.get("emotion", 0.0)
            else:
                value = default
            row[key] = kind(value)
        components = info.get(COMPONENTS_KEY) or {}
        for key in self.components:
            row[column_name(key)] = float(components.get(key, 0.0))
        return row


class DialogueEpisodeMetadata(EpisodeMetadataCallback):
    """Minari episode-metadata callback: Minari's reward statistics plus the outcome.

    Adds ``card_id``, ``turns``, ``success``, ``user_left``, ``need`` and ``final_emotion`` to
    each episode's metadata, so a dataset can be filtered by outcome without reading its steps
    (``dataset.filter_episodes(lambda ep: ...)`` reads the steps; the metadata does not).
    """

    def __call__(self, episode: dict) -> dict:
        metadata = super().__call__(episode)
        infos = episode.get("infos") or {}
        if "card_id" in infos:
            metadata.update(
                card_id=_text(infos["card"][-1]) if "card" in infos else _text(infos["card_id"][0]),
                turns=len(episode["rewards"]),
                success=bool(infos["success"][-1]),
                user_left=bool(infos["user_left"][-1]),
                need=_text(infos["need"][-1]),
                final_emotion=float(infos["emotion"][-1]),
            )
        return metadata


class _JsonSpec(gym.Wrapper):
    """The env, with an ``env.spec`` Minari can save as JSON.

    Gymnasium cannot serialise a callable ``vector_entry_point`` (the registered ids give the
    batched vector env's class there), and Minari saves ``env.spec`` as JSON; a dataset's env
    is rebuilt with ``gym.make``, which does not need it.
    """

    @property
    def spec(self) -> gym.envs.registration.EnvSpec | None:
        spec = self.env.spec
        if spec is None or isinstance(spec.vector_entry_point, str | None):
            return spec
        return replace(spec, vector_entry_point=None)


#: Characters a Minari dataset name may not hold.
_NAME_UNSAFE = re.compile(r"[^-\w]")


def policy_label(policy: str) -> str:
    """A policy spec as a dataset-name part: ``"ppo:runs/best.zip"`` -> ``"ppo-best"``.

    Example:
        >>> policy_label("stage-heuristic"), policy_label("ppo:out/model v2.zip")
        ('stage-heuristic', 'ppo-model_v2')
    """
    prefix, sep, path = policy.partition(":")
    if not sep:
        return _NAME_UNSAFE.sub("_", policy)
    return f"{prefix}-{_NAME_UNSAFE.sub('_', Path(path).name.removesuffix('.zip'))}"


def default_dataset_id(policy: str, reward: str | None, env_id: str = "EmpathyDialogue-v0") -> str:
    """``dialogue_gym/<env name>/<policy>-<reward>-v0``: Minari's ``namespace/name-vN`` form.

    Example:
        >>> default_dataset_id("oracle", "final_emotion")
        'dialogue_gym/EmpathyDialogue/oracle-final_emotion-v0'
    """
    env_name = env_id.rsplit("-v", 1)[0]
    return f"dialogue_gym/{env_name}/{policy_label(policy)}-{reward or 'none'}-v0"


def resolve_policy(policy: str | AnyPolicy | Callable[[gym.Env], AnyPolicy], env: gym.Env) -> Any:
    """A policy for ``env`` from what :func:`record_dataset` accepts.

    Args:
        policy: A reference policy name (``REFERENCE_POLICIES``); ``"ppo:PATH"`` (or
            ``"recurrent-ppo:PATH"``), an SB3 zip loaded on the CPU and played
            deterministically; a model with SB3's ``predict``; a factory ``env -> policy``;
            or an ``obs -> action`` callable with ``reset(seed=)``.
        env: The env the policy acts in (the oracle reads its hidden need).

    Raises:
        ValueError: An unknown name or prefix, or a model file that does not exist.
    """
    if isinstance(policy, str):
        prefix, sep, path = policy.partition(":")
        if not sep:
            return make_policy(policy, env)
        if prefix not in MODEL_PREFIXES:
            raise ValueError(
                f"unknown policy {policy!r}: a reference policy ({', '.join(REFERENCE_POLICIES)}) "
                f"or PREFIX:PATH to a saved model, PREFIX one of {', '.join(MODEL_PREFIXES)}"
            )
        file = Path(path)
        if not file.exists() and file.with_suffix(".zip").exists():
            file = file.with_suffix(".zip")
        if not file.is_file():
            raise ValueError(f"no saved model at {path!r} (policy {policy!r})")
        module, _, name = MODEL_PREFIXES[prefix].partition(":")
        loader = getattr(importlib.import_module(module), name)
        return ModelPolicy(loader.load(str(file), device="cpu"), deterministic=True)
    if callable(getattr(policy, "predict", None)):
        return ModelPolicy(policy, deterministic=True)
    if callable(getattr(policy, "reset", None)):
        return policy  # a policy object (``obs -> action`` with ``reset``)
    if isinstance(policy, type) or _takes_env(policy):
        return policy(env)
    return policy


def _takes_env(factory: Callable[..., Any]) -> bool:
    """Whether ``factory`` is ``env -> policy`` (one parameter named ``env``)."""
    try:
        params = list(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return False
    return params == ["env"]


@contextlib.contextmanager
def datasets_path(path: str | os.PathLike[str] | None) -> Iterator[Path]:
    """Point Minari at ``path`` (``MINARI_DATASETS_PATH``) for the block; ``None`` leaves it.

    Minari reads the variable each time it saves or loads, so a test or a one-off export can
    write somewhere else without touching the user's ``~/.minari``.

    Example:
        >>> import tempfile
        >>> with datasets_path(tempfile.gettempdir()) as root:
        ...     os.environ["MINARI_DATASETS_PATH"] == str(root)
        True
    """
    saved = os.environ.get("MINARI_DATASETS_PATH")
    if path is not None:
        os.environ["MINARI_DATASETS_PATH"] = str(Path(path).resolve())
    root = os.environ.get("MINARI_DATASETS_PATH") or str(Path.home() / ".minari" / "datasets")
    try:
        yield Path(root)
    finally:
        if path is not None:
            if saved is None:
                os.environ.pop("MINARI_DATASETS_PATH", None)
            else:
                os.environ["MINARI_DATASETS_PATH"] = saved


#: The file a recording leaves in Minari's temporary folder: the PID of the process writing it.
OWNER_FILE = ".dialogue_gym_owner"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process, alive
    return True


def clean_stale_recordings(root: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary folders that killed recordings left in Minari's datasets folder.

    Minari's ``DataCollector`` buffers episodes in a ``tmp...`` folder beside the datasets and
    removes it when it closes; a recording killed with ``kill -9`` never closes, and the folder
    (11 MB for 72 episodes) stayed forever. Each recording writes its PID into its folder
    (``OWNER_FILE``); a folder whose owner is no longer alive is removed. Folders without the
    file (another program's Minari) are left alone.

    Returns:
        The folders removed.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "tmpdead").mkdir(); _ = (root / "tmpdead" / OWNER_FILE).write_text("999999999")
        >>> (root / "tmplive").mkdir(); _ = (root / "tmplive" / OWNER_FILE).write_text(str(os.getpid()))
        >>> [p.name for p in clean_stale_recordings(root)], sorted(p.name for p in root.iterdir())
        (['tmpdead'], ['tmplive'])
    """
    import shutil

    removed = []
    for folder in sorted(Path(root).glob("tmp*")):
        owner = folder / OWNER_FILE
        try:
            pid = int(owner.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            continue
        if not _alive(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _require_minari() -> Any:
    try:
        import minari
    except ImportError:
        raise ImportError(
            "recording a dataset needs Minari: pip install 'dialogue_gym[minari]'"
        ) from None
    try:
        import jax.tree_util  # noqa: F401  (Minari's DataCollector buffers steps with it)
    except ImportError:
        raise ImportError(
            "Minari's DataCollector needs jax: pip install 'dialogue_gym[minari]' "
            "(or 'minari[create]')"
        ) from None
    return minari


#: Minari's nudges for optional metadata this adapter fills or leaves on purpose.
_QUIET = r"`(code_permalink|author|author_email|eval_env)` is set to None"


def record_dataset(
    policy: str | AnyPolicy | Callable[[gym.Env], AnyPolicy],
    dataset_id: str | None = None,
    *,
    episodes: int | None = None,
    seed: int = 0,
    reward: str | None = "sparse",
    reward_kwargs: Mapping[str, Any] | None = None,
    env_id: str = "EmpathyDialogue-v0",
    env_kwargs: Mapping[str, Any] | None = None,
    data_format: str = "arrow",
    overwrite: bool = False,
    description: str | None = None,
    author: str | None = "dialogue_gym",
    author_email: str | None = None,
    code_permalink: str | None = None,
    on_episode: Callable[[int, EpisodeResult], None] | None = None,
) -> minari.MinariDataset:
    """Play ``policy`` and save its episodes as a Minari dataset, through Minari's DataCollector.

    Args:
        policy: A reference policy name, ``"ppo:PATH"``, a model with ``predict``, a factory
            ``env -> policy`` or a policy (see :func:`resolve_policy`).
        dataset_id: Minari's ``(namespace/)name-vN`` id (default: :func:`default_dataset_id`
            for a named policy).
        episodes: How many (default: one per card of the env's scenarios). Episode ``k``
            plays card ``k % n_cards`` with seed ``seed + k``.
        seed: Base seed.
        reward: The reward wrapper whose rewards are recorded (``rewards.REWARDS``; ``None``:
            the bare env's bonus).
        reward_kwargs: Its arguments.
        env_id: The env (its action space must be what the policy returns).
        env_kwargs: Passed to ``gym.make`` (default: the template voice, the test cards).
        data_format: One of :data:`DATA_FORMATS`.
        overwrite: Delete a local dataset with the same id first (else that is an error).
        description: The dataset's description (default: says policy, reward and env).
        author: Minari's ``author`` metadata.
        author_email: Minari's ``author_email`` metadata.
        code_permalink: Minari's ``code_permalink`` metadata.
        on_episode: Called with ``(k, result)`` after each episode (progress, summaries).

    Returns:
        The dataset, as ``minari.load_dataset(dataset_id)`` also returns it.

    Raises:
        ImportError: Minari (or jax) is not installed (the message names the extra).
        ValueError: An unknown policy, reward or format; the id is malformed or taken.

    Example:
        >>> with datasets_path(tmp):  # doctest: +SKIP
        ...     data = record_dataset("stage-heuristic", reward="final_emotion", episodes=2)
        ...     data.total_episodes, data[0].infos["transcript"][-1][:10]
        (2, '[{"role": ')
    """
    minari = _require_minari()
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format must be one of {list(DATA_FORMATS)}, got {data_format!r}")
    if dataset_id is None:
        if not isinstance(policy, str):
            raise ValueError("give a dataset_id for a policy that is not named by a string")
        dataset_id = default_dataset_id(policy, reward, env_id)
    from minari.dataset.minari_dataset import parse_dataset_id

    parse_dataset_id(dataset_id)  # a malformed id fails now, not after the episodes
    if dataset_id in minari.list_local_datasets():
        if not overwrite:
            raise ValueError(
                f"a Minari dataset {dataset_id!r} already exists: pick another id, or replace "
                "it (overwrite=True, --overwrite)"
            )
        minari.delete_dataset(dataset_id)

    with datasets_path(None) as root:
        clean_stale_recordings(root)
        buffers_before = set(root.glob("tmp*"))
    kwargs = {"voice": "template", "scenarios": "test", **(env_kwargs or {})}
    kwargs.pop("reward", None)
    kwargs.pop("reward_kwargs", None)
    env = gym.make(env_id, reward=reward, reward_kwargs=reward_kwargs, **kwargs)
    collector = minari.DataCollector(
        _JsonSpec(env),
        step_data_callback=DialogueStepData,
        episode_metadata_callback=DialogueEpisodeMetadata,
        record_infos=True,
        data_format=data_format,
    )
    # Minari's buffer folder (the tmp* folder the collector just made; Minari names it in no
    # public attribute), marked with this process: a recording killed before close() is
    # removed by the next one (clean_stale_recordings).
    new_buffers = set(root.glob("tmp*")) - buffers_before
    if len(new_buffers) == 1:
        (new_buffers.pop() / OWNER_FILE).write_text(str(os.getpid()), encoding="utf-8")
    try:
        agent = resolve_policy(policy, collector)
        n_cards = len(collector.unwrapped.cards)
        for k in range(n_cards if episodes is None else episodes):
            result = run_episode(collector, agent, seed=seed + k, card=k % n_cards)
            if on_episode is not None:
                on_episode(k, result)
        label = policy if isinstance(policy, str) else type(policy).__name__
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_QUIET, category=UserWarning)
            return collector.create_dataset(
                dataset_id=dataset_id,
                algorithm_name=label,
                author=author,
                author_email=author_email,
                code_permalink=code_permalink,
                description=description
                or (
                    f"{label} on {env_id} ({kwargs.get('voice')} voice, "
                    f"{kwargs.get('scenarios')} cards), rewards of the {reward!r} wrapper; "
                    "infos: dialogue_gym.integrations.minari.INFO_SCHEMA"
                ),
                requirements=[f"dialogue_gym=={dialogue_gym.__version__}"],
            )
    finally:
        collector.close()
