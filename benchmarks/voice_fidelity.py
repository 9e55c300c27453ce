"""Voice fidelity: does the user's voice say what the affective core decided, as the user?

Plays seeded episodes of ``EmpathyDialogue-v0`` per voice and model, with a mix of reference
policies chosen so that every user act occurs (the oracle and the stage heuristic end in
thanks, ``always-suggest`` provokes resistance and leaving, ``random`` and ``always-reassure``
give venting and disclosure), records every user line with what the core decided (act, emotion,
band, change, cue), and reads the lines with the independent readers of
:mod:`dialogue_gym.evaluation.metrics.fidelity` (role, emotion agreement, act agreement) and the
lexical persona/fact consistency of :mod:`dialogue_gym.evaluation.metrics.consistency`. The
table also gives the readers' accuracy on the hand-labelled lines, the voice's own check, and
the voice's retries and fallbacks (``info["voice_check"]``).

    python benchmarks/voice_fidelity.py                       # template + SmolLM2, 60 episodes each
    python benchmarks/voice_fidelity.py --episodes 4          # a smoke run
    python benchmarks/voice_fidelity.py --models smollm2 gemma3 --gemma-path /path/to/gemma.gguf
    python benchmarks/voice_fidelity.py --score-only          # re-read the recorded lines

Lines go to ``<out>/<voice>-<model><suffix>.jsonl`` (one JSON object a line), the table to
``<out>/table<suffix>.md`` and ``.json``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import tyro

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.agents import make_policy
from dialogue_gym.core.scenario import load_scenarios
from dialogue_gym.core.vocabulary import USER_ACTS, emotion_band
from dialogue_gym.evaluation.metrics.fidelity import (
    fidelity_table,
    labelled_accuracy,
    load_labelled_lines,
)
from dialogue_gym.user.voices import UserTurn, check_line, load_fragments

#: Voices by label: a registered name, or a spec with the LLM voice's own arguments.
VOICE_SPECS: dict[str, Any] = {"llm-unchecked": {"name": "llm", "check": False, "max_retries": 0}}
#: The reference policies played in turn (episode k uses ``POLICY_MIX[k % 5]``): together they
#: make every user act occur (see the module docstring).
POLICY_MIX = ("oracle", "stage-heuristic", "random", "always-suggest", "always-reassure")


@dataclass
class Args:
    episodes: int = 60
    """episodes per voice and model (episode k: seed + k, test card (seed + k) mod 72)"""
    voices: tuple[str, ...] = ("template", "llm")
    """user voices to measure: template, llm, llm-unchecked (the same prompt, no check, no
    retries: what the model says by itself)"""
    models: tuple[str, ...] = ("smollm2",)
    """embedded models for the llm voice: smollm2 (the packaged GGUF), gemma3 (--gemma-path)"""
    gemma_path: str | None = None
    """a Gemma 3 270M GGUF file, for --models gemma3"""
    seed: int = 0
    """base seed"""
    out: str = "benchmarks/results/voice_fidelity"
    """folder for the recorded lines and the table"""
    suffix: str = ""
    """added to the file names (e.g. -before)"""
    score_only: bool = False
    """do not play: read the lines already recorded under out"""
    progress: bool = True
    """print one line per episode to stderr"""
    fresh_from: int | None = None
    """also a column of the LLM lines from this episode on (episodes nobody looked at while
    the voice's check was tuned)"""


def backend_spec(model: str, args: Args) -> Any:
    """The llama.cpp backend spec of a model label."""
    if model == "smollm2":
        return "llama_cpp"
    if model == "gemma3":
        if not args.gemma_path:
            raise SystemExit("--models gemma3 needs --gemma-path (a Gemma 3 270M GGUF file)")
        return {"name": "llama_cpp", "model_path": args.gemma_path}
    raise SystemExit(f"unknown model {model!r}; known: smollm2, gemma3")


def record(voice: str, model: str, args: Args, path: Path) -> list[dict[str, Any]]:
    """Play ``args.episodes`` seeded episodes; return one record per user line.

    Each episode's lines are appended to ``path`` as it ends, so a long run that is stopped
    keeps what it played (``--score-only`` reads a partial file).
    """
    spec: Any = VOICE_SPECS.get(voice, voice)
    kwargs: dict[str, Any] = {"voice": spec, "scenarios": "test", "reward": None}
    if voice != "template":
        kwargs["backend"] = backend_spec(model, args)
    env = gym.make("EmpathyDialogue-v0", **kwargs)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    path.write_text("", encoding="utf-8")
    for k in range(args.episodes):
        name = POLICY_MIX[k % len(POLICY_MIX)]
        policy = make_policy(name, env)
        seed = args.seed + k
        obs, info = env.reset(seed=seed, options={"card": seed % len(env.unwrapped.cards)})
        policy.reset(seed=seed)
        card_id = info["card_id"]
        emotion = float(info["emotion"])
        rows.append(_row(k, seed, name, card_id, info, emotion, 0.0, None))
        done = False
        while not done:
            tick = time.perf_counter()
            obs, _, terminated, truncated, info = env.step(int(policy(obs)))
            done = terminated or truncated
            rows.append(
                _row(
                    k,
                    seed,
                    name,
                    card_id,
                    info,
                    float(info["emotion"]),
                    float(info["change"]),
                    info.get("success") if done else None,
                )
            )
            rows[-1]["seconds"] = round(time.perf_counter() - tick, 3)
        with open(path, "a", encoding="utf-8") as fh:
            for row in rows:
                if row["episode"] == k:
                    fh.write(json.dumps(row) + "\n")
        if args.progress:
            n = sum(r["episode"] == k for r in rows)
            print(
                f"[{voice}/{model}] episode {k + 1}/{args.episodes} ({name}): {n} lines, "
                f"{time.perf_counter() - started:.0f}s",
                file=sys.stderr,
                flush=True,
            )
    env.close()
    return rows


def _row(
    episode: int,
    seed: int,
    policy: str,
    card_id: str,
    info: dict[str, Any],
    emotion: float,
    change: float,
    success: bool | None,
) -> dict[str, Any]:
    return {
        "episode": episode,
        "seed": seed,
        "policy": policy,
        "card_id": card_id,
        "turn": int(info["turn"]),
        "act": info["user_act"],
        "emotion": emotion,
        "band": emotion_band(emotion),
        "change": change,
        "cue": info.get("cue"),
        "reason": info.get("reason", ""),
        "agent": info.get("agent_utterance"),
        "strategy": info.get("strategy"),
        "line": info["user_utterance"],
        "voice_check": info.get("voice_check"),
        "success": success,
        "user_left": info.get("user_left"),
    }


def voice_check_accuracy() -> dict[str, float]:
    """The voice's own check, read against the hand-labelled lines (a second, independent
    view: the check was written for the voice, the labels before either).

    ``role``: the check's role verdict against the label, every line; ``act``: on the role-ok
    lines, whether the check accepts each line for the act it performs (its first label).
    """
    lines = load_labelled_lines()
    card = load_scenarios("test")[0]

    def turn(line: Any, act: str) -> UserTurn:
        persona = dataclasses.replace(card.persona, name=line.name)
        return UserTurn(
            card=dataclasses.replace(card, persona=persona),
            act=act,
            emotion=50.0,
            band="middle",
            reason="",
            cue=line.cue,
            agent_utterance="Tell me more.",
            history=(),
            turn=1,
            seed=0,
        )

    role = [("role" not in check_line(x.text, turn(x, "vent"))) == x.role_ok for x in lines]
    acts = [
        "act" not in check_line(x.text, turn(x, sorted(x.acts)[0]))
        for x in lines
        if x.role_ok and x.acts
    ]
    return {"role": sum(role) / len(role), "act": sum(acts) / len(acts)}


#: The table's rows: (key, label, format).
ROWS = (
    ("lines", "user lines", "{:.0f}"),
    ("role_violation", "role violations (lower is better)", "{:.1%}"),
    ("emotion_agreement", "emotion agreement", "{:.1%}"),
    ("act_agreement", "act agreement", "{:.1%}"),
    *((f"act/{a}", f"  act agreement: {a}", "{:.1%}") for a in ("opening", *USER_ACTS)),
    ("repeated_line", "lines saying an earlier line again", "{:.1%}"),
    ("thanks_at_success", "successes ending in thanks", "{:.1%}"),
    ("goodbye_at_leave", "users who left saying so", "{:.1%}"),
    ("prompt_to_line", "persona/fact consistency: prompt-to-line", "{:.1%}"),
    ("line_to_line", "persona/fact consistency: line-to-line", "{:.1%}"),
    ("retried", "lines resampled at least once", "{:.1%}"),
    ("mean_retries", "mean resamples a line", "{:.2f}"),
    ("fallback", "fallbacks to the template line", "{:.1%}"),
    ("repaired", "lines mended with the act's marker", "{:.1%}"),
    ("model_lines", "the model's own lines (not fallbacks)", "{:.0f}"),
    ("model/role_violation", "  their role violations", "{:.1%}"),
    ("model/emotion_agreement", "  their emotion agreement", "{:.1%}"),
    ("model/act_agreement", "  their act agreement", "{:.1%}"),
    ("copied_example", "  of them a template line word for word", "{:.1%}"),
    ("seconds_per_line", "seconds a line (this machine, loaded)", "{:.1f}"),
)


def copied_share(rows: list[dict[str, Any]]) -> float:
    """Share of the model's own lines (not fallbacks) that are a template fragment word for
    word: the few-shot examples are fragments, and a copy is the template's fidelity."""
    frags = load_fragments()
    pool = {f for options in frags.user.values() for f in options}
    own = [r for r in rows if r.get("voice_check") and not r["voice_check"].get("fallback")]
    if not own:
        return float("nan")
    cards = {c.id: c for c in load_scenarios("all")}

    def filled(text: str, r: dict[str, Any]) -> set[str]:
        card = cards[r["card_id"]]
        return {f.format(name=card.persona.name, topic=card.topic) for f in pool}

    hits = 0
    for r in own:
        line = r["line"]
        if r.get("cue") and line.endswith(r["cue"]):
            line = line[: -len(r["cue"])].strip()
        hits += line in filled(line, r)
    return hits / len(own)


def score(out: Path, suffix: str, fresh_from: int | None = None) -> dict[str, dict[str, Any]]:
    """Read every recorded ``*<suffix>.jsonl`` under ``out``: one table column per file (and,
    with ``fresh_from``, one more per LLM file for its episodes from ``fresh_from`` on)."""
    cards = {c.id: c for c in load_scenarios("all")}
    columns: dict[str, dict[str, Any]] = {}
    for path in sorted(out.glob(f"*{suffix}.jsonl")):
        name = path.name[: -len(f"{suffix}.jsonl")]
        if suffix == "" and name.endswith(("-before", "-after")):
            continue
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        parts = {name: rows}
        if fresh_from is not None and not name.startswith("template"):
            parts[f"{name}, ep. {fresh_from}+"] = [r for r in rows if r["episode"] >= fresh_from]
        for label, part in parts.items():
            if part:
                columns[label] = _column(part, cards)
    return columns


def _column(rows: list[dict[str, Any]], cards: dict[str, Any]) -> dict[str, Any]:
    table = fidelity_table(rows, cards)
    table["episodes"] = len({r["episode"] for r in rows})
    if any(r.get("voice_check") for r in rows):
        table["copied_example"] = copied_share(rows)
        table["repaired"] = sum(
            bool(r["voice_check"] and r["voice_check"].get("repaired")) for r in rows
        ) / len(rows)
    timed = [r["seconds"] for r in rows if r.get("seconds") is not None]
    if timed:
        table["seconds_per_line"] = sum(timed) / len(timed)
    return table


def write_table(columns: dict[str, dict[str, Any]], out: Path, suffix: str) -> str:
    names = list(columns)
    head = "| | " + " | ".join(f"{n} ({columns[n]['episodes']} ep.)" for n in names) + " |"
    lines = [head, "|---|" + "---|" * len(names)]
    for key, label, fmt in ROWS:
        if not any(key in columns[n] for n in names):
            continue
        cells = []
        for n in names:
            value = columns[n].get(key)
            ok = value is not None and value == value  # not NaN
            cells.append(fmt.format(value) if ok else "–")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    readers = {
        "all": labelled_accuracy(),
        "held_out": labelled_accuracy(split="held_out"),
    }
    check = voice_check_accuracy()
    lines += [
        "",
        "Readers' accuracy on the hand-labelled lines "
        f"({readers['all']['lines']:.0f}; held-out {readers['held_out']['lines']:.0f}):",
        "",
        "| reader | all | held-out |",
        "|---|---|---|",
    ]
    for key in ("role", "sentiment", "change", "band_agreement", "acts_exact"):
        a, h = readers["all"][key], readers["held_out"][key]
        lines.append(f"| {key} | {a:.1%} | {h:.1%} |")
    lines += [
        "",
        f"The voice's own check on the same lines: role {check['role']:.1%}, "
        f"act {check['act']:.1%}.",
    ]
    text = "\n".join(lines) + "\n"
    (out / f"table{suffix}.md").write_text(text, encoding="utf-8")
    (out / f"table{suffix}.json").write_text(
        json.dumps({"columns": columns, "readers": readers, "voice_check": check}, indent=1) + "\n",
        encoding="utf-8",
    )
    return text


def main(args: Args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.score_only:
        for voice in args.voices:
            for model in args.models if voice != "template" else ("none",):
                path = out / f"{voice}-{model}{args.suffix}.jsonl"
                rows = record(voice, model, args, path)
                print(f"wrote {len(rows)} lines to {path}", file=sys.stderr)
    print(write_table(score(out, args.suffix, args.fresh_from), out, args.suffix))


if __name__ == "__main__":
    main(tyro.cli(Args, description=__doc__))
