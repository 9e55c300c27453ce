"""``dialogue-gym dataset``: record a policy's episodes as a Minari dataset.

The body is :func:`dialogue_gym.integrations.minari.record_dataset`; this module is its command
line. ``main`` imports Minari only after parsing, so ``--help`` works without the extra and a
missing extra is one line naming it (``pip install 'dialogue_gym[minari]'``).

Example:
    >>> args = parse_args(["--policy", "oracle", "--reward", "final_emotion", "--episodes", "4"])
    >>> args.policy, args.reward, args.episodes, args.data_format, args.voice
    ('oracle', 'final_emotion', 4, 'arrow', 'template')
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Sequence
from pathlib import Path

from dialogue_gym.agents.reference import REFERENCE_POLICIES
from dialogue_gym.cli.common import (
    OneLineParser,
    UsageError,
    add_env_args,
    env_kwargs_from,
    positive_int,
    seed_number,
)
from dialogue_gym.evaluation.episodes import EpisodeResult
from dialogue_gym.integrations.minari import (
    DATA_FORMATS,
    MODEL_PREFIXES,
    datasets_path,
    default_dataset_id,
    record_dataset,
)
from dialogue_gym.rewards import REWARDS

__all__ = ["build_parser", "main", "parse_args"]

#: What ``pip install 'dialogue_gym[minari]'`` brings that recording needs: module -> package.
NEEDS = {"minari": "minari", "jax": "jax"}


def _policy(text: str) -> str:
    prefix, sep, path = text.partition(":")
    if sep and prefix in MODEL_PREFIXES and path:
        return text
    if not sep and text in REFERENCE_POLICIES:
        return text
    raise argparse.ArgumentTypeError(
        f"expected a reference policy ({', '.join(REFERENCE_POLICIES)}) or "
        f"{'|'.join(MODEL_PREFIXES)}:PATH to a saved SB3 model, got {text!r}"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``dialogue-gym dataset`` parser."""
    parser = OneLineParser(
        prog="dialogue-gym dataset",
        description="Play a policy on EmpathyDialogue-v0 and save its episodes as a Minari "
        "dataset (observations, actions, the chosen reward wrapper's rewards, and each turn's "
        "info with the transcript) that minari.load_dataset(ID) reads. Episode k plays card "
        "k mod n_cards with seed + k. Needs pip install 'dialogue_gym[minari]'.",
        epilog="Datasets go to $MINARI_DATASETS_PATH (default ~/.minari/datasets) or "
        "--datasets-path. The info columns: docs/datasets.md.",
    )
    parser.add_argument(
        "--policy",
        type=_policy,
        default="stage-heuristic",
        metavar="POLICY",
        help=f"a reference policy ({', '.join(REFERENCE_POLICIES)}), or ppo:PATH for a "
        "saved Stable-Baselines3 PPO zip (recurrent-ppo:PATH for sb3-contrib's "
        "RecurrentPPO), played deterministically (default: stage-heuristic)",
    )
    parser.add_argument(
        "--reward",
        choices=sorted(REWARDS),
        default="sparse",
        help="the reward wrapper whose rewards are recorded (default: sparse; final_emotion "
        "is RLVER's)",
    )
    parser.add_argument(
        "--episodes",
        type=positive_int,
        default=None,
        help="how many episodes (default: one per card of --scenarios)",
    )
    parser.add_argument("--seed", type=seed_number, default=0, help="episode k uses seed + k")
    parser.add_argument(
        "--dataset-id",
        default=None,
        help="Minari's (namespace/)name-vN id (default: "
        "dialogue_gym/EmpathyDialogue/<policy>-<reward>-v0)",
    )
    parser.add_argument(
        "--data-format",
        choices=DATA_FORMATS,
        default="arrow",
        help="Minari's storage format (default: arrow; hdf5 needs h5py)",
    )
    parser.add_argument(
        "--datasets-path",
        type=Path,
        default=None,
        help="write under this folder instead of $MINARI_DATASETS_PATH",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a local dataset with the same id"
    )
    add_env_args(parser, voice="template")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``dialogue-gym dataset``'s arguments."""
    return build_parser().parse_args(argv)


def _require_extra(data_format: str) -> None:
    needs = dict(NEEDS, **({"h5py": "h5py"} if data_format == "hdf5" else {}))
    missing = [pkg for module, pkg in needs.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise UsageError(f"dataset needs {', '.join(missing)}: pip install 'dialogue_gym[minari]'")


def main(argv: Sequence[str] | None = None) -> int:
    """Record the dataset; print where it is and how it went.

    Returns:
        0 (errors are raised: the console script prints them as one line).
    """
    args = parse_args(argv)
    _require_extra(args.data_format)
    dataset_id = args.dataset_id or default_dataset_id(args.policy, args.reward)
    results: list[EpisodeResult] = []
    with datasets_path(args.datasets_path) as root:
        dataset = record_dataset(
            args.policy,
            dataset_id,
            episodes=args.episodes,
            seed=args.seed,
            reward=args.reward,
            env_kwargs=env_kwargs_from(args),
            data_format=args.data_format,
            overwrite=args.overwrite,
            on_episode=lambda k, result: results.append(result),
        )
    n = len(results)
    success = sum(r.success for r in results) / n
    mean_return = sum(r.episode_return for r in results) / n
    print(
        f"wrote {dataset.total_episodes} episodes ({dataset.total_steps} steps) of "
        f"{args.policy} under the {args.reward} reward to {root / dataset_id}"
    )
    print(f"success {success:.2f}, mean return {mean_return:.3f}")
    print(f"load it with: minari.load_dataset({dataset_id!r})  (MINARI_DATASETS_PATH={root})")
    return 0
