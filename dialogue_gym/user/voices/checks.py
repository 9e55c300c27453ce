"""The LLM user voice's own check of a line, before it is spoken: role, act and mood.

A small model asked to play a person in distress often slips into the role it was trained for
and comforts or advises the supporter ("I'm so sorry to hear that... it's okay to feel sad"),
says goodbye in the middle of the chat, or sounds cheerful at emotion 25. :func:`check_line`
catches those slips cheaply so that the voice can resample the line (another seed) and, after
a bounded number of tries, fall back to the template line for the act.

This check is the voice's own and is deliberately short: the phrases a supporter uses, the
markers of each act, and the words that plainly contradict the emotion band. It is *not* how
fidelity is measured: :mod:`dialogue_gym.evaluation.metrics.fidelity` has independent readers
(other phrase lists, a scored sentiment lexicon, negation), validated on hand-labelled lines,
and ``benchmarks/voice_fidelity.py`` reports both, so the voice does not grade its own homework.

Example:
    >>> from dialogue_gym.core.scenario import load_scenarios
    >>> from dialogue_gym.user.voices.turns import UserTurn
    >>> card = load_scenarios("test")[0]
    >>> turn = UserTurn(card=card, act="thank", emotion=75.0, band="good", reason="",
    ...     cue=None, agent_utterance="You did it.", history=(), turn=6, seed=1)
    >>> check_line("Thank you, this really helped.", turn)
    ()
    >>> check_line("I'm so sorry to hear that. How can I help?", turn)
    ('role', 'act')
"""

from __future__ import annotations

import re
from functools import lru_cache

from dialogue_gym.user.voices.cleaning import conveys
from dialogue_gym.user.voices.turns import UserTurn

__all__ = ["CHECKS", "check_line"]

#: What :func:`check_line` can find wrong, in the order it reports them.
CHECKS: tuple[str, ...] = ("role", "act", "mood")


def _rx(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


# The supporter's side of the chat: comforting, advising, inviting the other to talk, or the
# model stepping out of the fiction. The user may apologise ("sorry, I'm a mess") or quote
# others ("they say it's normal"): only what is addressed to the listener counts.
_SUPPORTER_LINES = _rx(
    r"\bsorry (?:to hear|you(?:'re| are| feel| have)|that you|for your)",
    r"\byou(?:'re| are) not alone\b",
    r"\b(?:it's|it is) (?:okay|ok|alright|normal|natural|understandable) to feel\b(?!.*\bbut\b)",
    r"\b(?:that|it) (?:must|would) be (?:so |really |very )?(?:hard|difficult|tough|painful)",
    r"\bsounds like you\b",
    r"\bi can (?:only )?imagine\b",
    r"\b(?:must|would) be (?:so |really |very )?(?:hard|difficult|tough|painful) for you\b",
    r"\bhow (?:hard|difficult|tough|painful) (?:it|this|that) (?:must be|is) for you\b",
    r"\bi (?:can )?understand how you\b",
    r"\bthank(?:s| you) for (?:sharing|opening up|telling me)\b",
    r"\b(?:i'm|i am) (?:always |not |just )?here (?:for you|to (?:listen|help|support))",
    r"\b(?:i'm|i am) (?:just |still |always )?listening\b",
    r"\bhere,? (?:too,? )?to listen\b",
    r"\b(?:i'm|i am) (?:so |really )?glad (?:that )?you\b",
    r"\bhow you(?:'re| are) feeling\b",
    r"\b(?:happy|glad) to help\b",
    r"\bunderstand (?:how|what) you\b",
    r"\bcares? about you\b",
    r"\bwhat can i do (?:for|to help) you\b",
    r"\b(?:might|may|could|would|will) help you\b",
    r"\bit (?:might|may|could) help to\b",
    r"\byou(?:'re| are) doing (?:your|the) best\b",
    r"\btakes? (?:a lot of |real )?(?:courage|strength)\b",
    r"\bwhat brings you\b",
    r"\bwhat do you want to talk about\b",
    r"\bhow can i (?:help|support|assist)\b",
    r"\bwhat(?:'s| is) on your mind\b",
    r"\btell me (?:more|about)\b",
    r"\bhow (?:are|have) you (?:been )?(?:feeling|doing|coping)\b",
    r"\byou (?:should|could try|might try|might want to|need to|have to|must|ought to|deserve)\b",
    r"\bhave you (?:tried|considered|thought about)\b",
    r"\b(?:my advice|i (?:would |'d )?(?:suggest|recommend))\b",
    r"\b(?:take care of|be kind to|don't be hard on) yourself\b",
    r"\bremember(?:,)? (?:that )?you\b",
    r"\bas an ai\b|\blanguage model\b|\b(?:i'm|i am) an? (?:ai|assistant)\b",
    r"\bthe (?:user|supporter|client)\b",
    r"^you are \w+, \d+",  # the system prompt said back
    # Offers of help or company to the listener, and wishes for their mood: a hand reading
    # of 40 accepted SmolLM2 lines (seeds 100-129) found these were most of the slips the
    # phrases above let through ("I'd love to help you", "I'll be there for you").
    r"\b(?:help|support|comfort|cheer) you\b",
    r"\bbe there for you\b",
    r"\b(?:hope|wish) you(?:'re| are| feel| get)? (?:feel(?:ing)? )?(?:better|well)\b",
    r"\bfeel(?:ing)? better soon\b",
    r"\b(?:things|tips|ideas) to get you\b",
    r"\bwhat happened\s*\?",
    r"\bwhat about your (?:family|friends|life|day|work)\b",
)
_THIRD_PERSON_VERBS = (
    r"(?:is|was|has|had|feels|felt|wants|needs|thinks|says|would|will|can|can't|doesn't|didn't"
    r"|does|did|seems|keeps|knows|hopes|struggles|'s)"
)

# The markers of each act the line must perform. Venting and disclosing are checked by what
# they must not do (a goodbye, thanks) and, for a disclosure, by the cue.
_THANKS = _rx(r"\bthank", r"\bgrateful\b", r"\bappreciate")
_GOODBYE = _rx(
    r"\bbye\b",
    r"\b(?:log|sign)(?:ging)? off\b",
    r"\b(?:have|need|going|got) to go\b",
    r"\bgonna go\b",
    r"\b(?:head|heading) (?:off|out)\b",
    r"\bi(?:'m| am) (?:done|leaving|off)\b",
    r"\b(?:stop|leave it) (?:here|there)\b",
    r"\btalk (?:another|some other) time\b",
    r"\bend (?:this|the) (?:chat|conversation)\b",
    r"\btime (?:to|for) myself\b",
)
_PUSHBACK = _rx(
    r"\bnot (?:really |quite )?what i\b",
    r"\b(?:don't|doesn't|didn't|won't|isn't|not) (?:really )?(?:help|helping|helpful|work|fit|"
    r"apply|get it|understand|listening)\b",
    r"\beasy (?:for you )?to say\b",
    r"\bnot (?:that|so) simple\b",
    r"\bi'?ve (?:already )?tried\b",
    r"\bheard (?:that|it) before\b",
    r"\bnot sure (?:that|this|it|about)\b",
    r"\bnot for me\b",
    r"\bi don't think (?:so|that|it|this|you(?:'re| are))\b",
    r"\bdoesn't feel (?:quite )?right\b",
    r"\bdisagree\b",
    r"\bmore complicated\b",
    r"\bsomething (?:a little |a bit )?(?:else|different)\b",
    r"^(?:no|hmm|maybe\.)",
    r"\bhave to think about\b",
    r"\bwhy (?:are|would|do) you\b",
)
_ASSENT = _rx(
    r"^(?:yeah|yes|yep|right|true|exactly|maybe you're right)\b",
    r"\byou(?:'re| are) right\b",
    r"\bthat(?:'s| is) (?:true|right|fair|it|a good)\b",
    r"\bmakes (?:a lot of |so much )?sense\b",
    r"\bgood point\b",
    r"\bi (?:agree|suppose so|guess so|think so)\b",
    r"\bi (?:can|could|will|'ll) try\b",
)
# Push-back that no venting or agreeing line has: the line resists whatever the act says.
_STRONG_PUSHBACK = _rx(
    r"\bnot (?:really |quite )?what i\b",
    r"\b(?:don't|doesn't|didn't|isn't|not) (?:really )?(?:help|helping|helpful|get it|listening)\b",
    r"\bdoesn't feel (?:quite )?right\b",
    r"\beasy (?:for you )?to say\b",
    r"\bnot (?:that|so) simple\b",
    r"\bi'?ve (?:already )?tried\b",
    r"(?:^|[.!?,] )no[,.!]",
)
_QUESTION = _rx(r"\?")

# Mood words that plainly contradict the band: cheer in distress, despair in relief.
_CHEERFUL = _rx(
    r"(?<!don't )(?<!not )\b(?:feel|feeling|felt|i'm|i am|things are|it's|everything is) (?:so |really |a lot |much )?"
    r"(?:better|great|good|happy|wonderful|amazing|fantastic|relieved|hopeful|lighter|calm)\b",
    r"\bgoing (?:really |so )?well\b",
)
_CHEER_WORDS = _rx(
    r"\b(?:great|wonderful|amazing|fantastic|awesome|excited|exciting|thrilled|delighted|perfect|"
    r"relieved|hopeful|glad|happy|lovely|helpful)\b|(?<!i'd )(?<!would )\blove\b"
    r"|\b(?:good|great|nice) (?:idea|point|advice)\b"
)
_NEGATED_BEFORE = re.compile(r"(?:\bnot|n't|\bnever|\bno)(?:\s+\w+){0,2}\s*$", re.IGNORECASE)


def _cheerful(text: str) -> bool:
    """Cheer the line expresses: a cheerful phrase, or a cheer word not negated just before
    ("I don't feel great" is not cheer)."""
    if _CHEERFUL.search(text):
        return True
    return any(not _NEGATED_BEFORE.search(text[: m.start()]) for m in _CHEER_WORDS.finditer(text))


_DESPAIR = _rx(
    r"\b(?:hopeless|desperate|miserable|devastated|unbearable|worthless|awful|terrible|horrible)\b",
    r"\b(?:feel|feeling|i'm|i am|it's) (?:so |even |much )?(?:worse|awful)\b",
    r"\bgive up\b|\bno point\b",
)
_HELPED = _rx(
    r"\b(?:that|this|it|you) (?:really )?(?:helps|helped)\b",
    r"\bfeel (?:a bit |a little )?better\b",
    r"\b(?:really |very )?helpful\b",
    r"\b(?:good|great) (?:idea|point|advice)\b",
)


@lru_cache(maxsize=512)
def _third_person(name: str) -> re.Pattern[str]:
    first = re.escape(name.split()[0]) if name.strip() else "\x00"
    # "Maya feels...", "Maya's job...", or the persona addressed by its own name ("Hey, Maya.",
    # "Maya, listen").
    return re.compile(
        rf"(?<!i'm )(?<!i am )(?<!is )\b{first}(?: {_THIRD_PERSON_VERBS}\b|'s\b)"
        rf"|, {first}\b\s*(?:[.!?,]|$)|(?:^|[.!?]\s+){first}, |\bas {first}\b|\byou are {first}\b",
        re.IGNORECASE,
    )


def _role_ok(text: str, name: str) -> bool:
    return not (_SUPPORTER_LINES.search(text) or _third_person(name).search(text))


def _act_ok(text: str, turn: UserTurn) -> bool:
    act = turn.act
    thanks = bool(_THANKS.search(text))
    goodbye = bool(_GOODBYE.search(text))
    if act == "leave":
        return goodbye
    if goodbye:  # only a leaving user says goodbye (a thanking one may: success ends the chat)
        return act == "thank"
    if act == "thank":
        return thanks and not _PUSHBACK.search(text.split(".")[0])
    if act == "resist":
        return bool(_PUSHBACK.search(text)) and not thanks
    if act == "agree":
        return (
            bool(_ASSENT.search(text))
            and not re.search(r"\bbut\b", text, re.IGNORECASE)
            and not _STRONG_PUSHBACK.search(text)
        )
    if act == "ask":
        return bool(_QUESTION.search(text))
    if act == "disclose":
        # With nothing to convey (a question put to the user outside the dynamics, as the
        # Q&A probe does) any answer in role will do.
        return conveys(text, turn.cue) if turn.cue else True
    first_person = bool(re.search(r"\b(?:i|i'm|i've|me|my)\b", text, re.IGNORECASE))
    if turn.agent_utterance is None:  # the opening: "Could we talk about my exams?" will do
        return first_person
    # Venting: about oneself, neither thanking, asking, agreeing nor pushing back (each is
    # another act).
    if thanks or "?" in text or _ASSENT.search(text) or _STRONG_PUSHBACK.search(text):
        return False
    return first_person


def _mood_ok(text: str, turn: UserTurn) -> bool:
    if turn.band in ("failing", "low") and _cheerful(text):
        return False
    return not (turn.band in ("good", "top") and _DESPAIR.search(text))


def check_line(text: str, turn: UserTurn) -> tuple[str, ...]:
    """What is wrong with ``text`` as the user's line for ``turn`` (empty: nothing).

    - ``"role"``: the line speaks as the supporter (comforts, advises, invites the other to
      talk, steps out of the fiction) or of the persona in the third person;
    - ``"act"``: it does not perform ``turn.act`` (thanks when thanking, a goodbye when
      leaving, push-back when resisting, assent when agreeing, a question when asking, the
      cue when disclosing one; venting talks about oneself), or says goodbye while the chat
      goes on;
    - ``"mood"``: its mood words contradict the emotion band (cheer at ``failing``/``low``,
      despair at ``good``/``top``).

    Args:
        text: The cleaned line (need cue already appended where the voice appends it).
        turn: What the core decided this turn.

    Returns:
        The failed checks, in :data:`CHECKS` order.

    Example:
        >>> from dialogue_gym.core.scenario import load_scenarios
        >>> card = load_scenarios("test")[0]
        >>> turn = UserTurn(card=card, act="vent", emotion=25.0, band="low", reason="",
        ...     cue=None, agent_utterance="Tell me more.", history=(), turn=1, seed=1)
        >>> check_line("Things have been going really well for me lately.", turn)
        ('mood',)
        >>> check_line(f"{card.persona.name} feels lost.", turn)
        ('role', 'act')
    """
    failed = []
    if not _role_ok(text, turn.card.persona.name):
        failed.append("role")
    if not _act_ok(text, turn):
        failed.append("act")
    if not _mood_ok(text, turn):
        failed.append("mood")
    # A line that says "that helps" after a drop the user resents is the mood gone wrong too.
    if turn.act == "resist" and _HELPED.search(text) and "mood" not in failed:
        failed.append("mood")
    return tuple(failed)
