"""Rendering a conversation: the transcript with the user's emotion as a bar (``"ansi"`` and
``"human"``), or an image of the emotion chart and the last turns (``"rgb_array"``).

The image is drawn with Pillow, imported inside :func:`render_frame` only, so importing the env
and the text modes never pay for it.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dialogue_gym.core.affect import UserState
from dialogue_gym.core.config import SimConfig
from dialogue_gym.core.scenario import ScenarioCard
from dialogue_gym.core.vocabulary import emotion_band


def emotion_bar(score: float, width: int = 20) -> str:
    """A fixed-width bar for an emotion score in [0, 100].

    Example:
        >>> emotion_bar(50.0, width=10)
        '[#####.....]  50 middle'
    """
    filled = round(max(0.0, min(100.0, score)) / 100.0 * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {score:3.0f} {emotion_band(score)}"


def render_transcript(messages: Sequence[Mapping[str, Any]], card: ScenarioCard) -> str:
    """The conversation so far, one line a message; user lines carry their emotion bar."""
    lines = [
        f"== {card.id}: {card.persona.name}, {card.persona.age}, {card.persona.occupation} "
        f"({card.problem_type}, {card.emotion_type})"
    ]
    for msg in messages:
        if msg["role"] == "user":
            lines.append(
                f"{emotion_bar(msg.get('emotion', 0.0))} {card.persona.name}: {msg['content']}"
            )
        else:
            strategy = msg.get("strategy", "")
            lines.append(f"{'':>{20 + 11}} Agent [{strategy}]: {msg['content']}")
    return "\n".join(lines)


# --- rgb_array: the emotion chart and the last turns as an image ---------------------------

#: Height and width of a frame, in pixels. Both are multiples of 16, the macro-block size
#: video encoders work in, so ``RecordVideo`` writes frames as they are (imageio would
#: otherwise resize them and warn).
FRAME_SIZE: tuple[int, int] = (480, 640)

# Colours (RGB). Chosen to stay readable on a projector and for red-green colour blindness:
# the emotion line is blue, success green-teal, leaving orange-red.
_BACKGROUND = (255, 255, 255)
_INK = (33, 37, 41)
_MUTED = (120, 126, 133)
_GRID = (228, 230, 233)
_LINE = (31, 119, 180)
_SUCCESS = (0, 150, 136)
_LEAVE = (214, 69, 65)
_USER = (31, 119, 180)
_AGENT = (94, 60, 153)
_HEADER = (241, 243, 245)

_FONT_SIZE = 13
_LINE_HEIGHT = 17
# More characters of one message than a frame's text area holds (about 13 lines of 110), so a
# long utterance is wrapped only as far as it can show.
_MAX_CHARS = 1500


def episode_outcome(state: UserState, config: SimConfig) -> str:
    """How an ended episode ended: ``"resolved"``, ``"user left"`` or ``"ran out of turns"``.

    The env's own rule: success is a resolved need with emotion at or above the success
    threshold; the user leaves at or below the leave threshold (``state.left``).

    Example:
        >>> from dialogue_gym.core.affect import UserState
        >>> from dialogue_gym.core.config import SimConfig
        >>> episode_outcome(UserState(emotion=72.0, trust=0.5, resolved=True), SimConfig())
        'resolved'
        >>> episode_outcome(UserState(emotion=55.0, trust=0.5), SimConfig())
        'ran out of turns'
    """
    if state.left:
        return "user left"
    if state.resolved and state.emotion >= config.success_threshold:
        return "resolved"
    return "ran out of turns"


@functools.lru_cache(maxsize=1)  # parsing the font is most of a frame's cost
def _fonts() -> tuple[Any, Any]:
    """The text font and a larger one for headings: Pillow's bundled font, laid out the same
    on every machine.

    Pillow lays text out with libraqm when it is installed and with its own basic engine
    otherwise; the two can place glyphs a pixel apart, so the basic engine is asked for
    explicitly to keep frames identical across installs of the same Pillow.
    """
    from io import BytesIO

    from PIL import ImageFont

    base = ImageFont.load_default(size=_FONT_SIZE)
    data = getattr(base, "font_bytes", None)
    if data is None:  # a Pillow without FreeType: its bitmap font, one size
        return base, base
    basic = ImageFont.Layout.BASIC
    return (
        ImageFont.truetype(BytesIO(data), _FONT_SIZE, layout_engine=basic),
        ImageFont.truetype(BytesIO(data), _FONT_SIZE + 2, layout_engine=basic),
    )


#: Stand-ins for common characters that neither the font nor Unicode decomposition covers.
_FOLDED = {
    "ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O", "ł": "l",
    "Ł": "L", "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "Th", "–": "-",
    "—": "-", "•": "*", "€": "EUR", "\t": " ",
}  # fmt: skip
_SHOWN: dict[str, str] = {}  # character -> what is drawn for it, learnt once per character


def _drawable(text: str, font: Any) -> str:
    """``text`` with each character the font has no glyph for replaced by one it has.

    Pillow's bundled font covers little beyond ASCII, and a missing glyph is drawn as a box
    ("Tomás" came out "Tom?s" with a box for the "á"). Accented letters lose their accent
    (Unicode decomposition), a few others get a stand-in (:data:`_FOLDED`), the rest "?".
    """
    out = []
    for ch in text:
        shown = _SHOWN.get(ch)
        if shown is None:
            shown = _SHOWN[ch] = _fold(ch, font)
        out.append(shown)
    return "".join(out)


def _fold(ch: str, font: Any) -> str:
    if ch == "\n" or " " <= ch <= "~" or _has_glyph(ch, font):
        return ch
    if ch in _FOLDED:
        return _FOLDED[ch]
    base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    if base and all(" " <= c <= "~" or _has_glyph(c, font) for c in base):
        return base
    return "?"


def _has_glyph(ch: str, font: Any) -> bool:
    """Whether ``font`` draws ``ch`` as something other than its missing-glyph box."""
    if not ch.isprintable():
        return False
    missing = font.getmask("\uffff")  # a non-character: always the missing-glyph box
    got = font.getmask(ch)
    return got.size != missing.size or bytes(got) != bytes(missing)


def _wrap(text: str, font: Any, width: float) -> list[str]:
    """Greedy word wrap of ``text`` to ``width`` pixels; a word longer than a line is cut.

    Widths are sums of per-character advances, cached: measuring every candidate line with
    Pillow took most of a frame's time, and a line a few pixels off its kerned width still
    fits the margin.
    """
    advances: dict[str, float] = {}

    def length(piece: str) -> float:
        total = 0.0
        for ch in piece:
            if ch not in advances:
                advances[ch] = font.getlength(ch)
            total += advances[ch]
        return total

    space = length(" ")
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line, used = "", 0.0
        for word in paragraph.split():
            size = length(word)
            if line and used + space + size <= width:
                line, used = f"{line} {word}", used + space + size
                continue
            if line:
                lines.append(line)
            while size > width:  # a long token (a URL, a run of letters): cut it
                cut = 1
                while cut < len(word) and length(word[: cut + 1]) <= width:
                    cut += 1
                lines.append(word[:cut])
                word = word[cut:]
                size = length(word)
            line, used = word, size
        lines.append(line)
    return lines


def _fit(text: str, font: Any, width: float) -> str:
    """``text`` cut to ``width`` pixels, ending in "..." when cut (a long occupation)."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        text = text[:-1]
    return text.rstrip() + "..."


def _dashed(draw: Any, y: float, x0: float, x1: float, fill: tuple[int, int, int]) -> None:
    """A horizontal dashed line (Pillow draws only solid ones)."""
    x = x0
    while x < x1:
        draw.line([(x, y), (min(x + 6, x1), y)], fill=fill, width=1)
        x += 10


def render_frame(
    messages: Sequence[Mapping[str, Any]],
    card: ScenarioCard,
    *,
    max_turns: int,
    config: SimConfig,
    outcome: str | None = None,
    need: str | None = None,
) -> np.ndarray:
    """The conversation so far as an RGB image: the emotion chart and the last turns.

    The top half charts the user's emotion score turn by turn (0 is the opening) against the
    success threshold (dashed, green) and the leave threshold (dashed, red), on a turn axis
    fixed at ``max_turns`` so frames of one episode line up in a video. The bottom half shows
    the latest messages that fit, wrapped, newest last; agent lines carry their strategy.
    With ``outcome`` (the episode has ended) the status line names it and the hidden
    ``need``. Pillow draws it (imported here, so the env's import and the text render modes
    never load it); the same conversation gives the same pixels.

    Args:
        messages: The chat (``env.unwrapped.messages``); user messages carry ``emotion``.
        card: The episode's scenario card (its persona heads the frame).
        max_turns: The episode's horizon, the chart's last turn.
        config: The simulator's assumptions (its thresholds are drawn).
        outcome: How the episode ended (:func:`episode_outcome`), or None while it runs.
        need: The hidden need, shown with the outcome.

    Returns:
        An array of shape ``FRAME_SIZE + (3,)``, dtype ``uint8``.

    Example:
        >>> import gymnasium as gym
        >>> import dialogue_gym
        >>> env = gym.make("EmpathyDialogue-v0", voice="template", render_mode="rgb_array")
        >>> _ = env.reset(seed=0)
        >>> frame = env.render()
        >>> frame.shape, frame.dtype
        ((480, 640, 3), dtype('uint8'))
    """
    try:
        from PIL import Image, ImageDraw
    except ImportError as err:  # Pillow is needed by this render mode only
        raise ImportError(
            'render_mode="rgb_array" draws with Pillow, which is not installed: pip install pillow'
        ) from err

    height, width = FRAME_SIZE
    image = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    font, big = _fonts()
    turns = (len(messages) - 1) // 2
    emotions = [float(m.get("emotion", 0.0)) for m in messages if m["role"] == "user"]

    # Header: who the user is and where the episode stands.
    draw.rectangle([(0, 0), (width, 26)], fill=_HEADER)
    persona = card.persona
    counter = f"turn {turns}/{max_turns}"
    counter_x = width - 10 - big.getlength(counter)
    who = _drawable(
        f"{persona.name}, {persona.age}, {persona.occupation} "
        f"({card.problem_type}, {card.emotion_type})",
        big,
    )
    draw.text((10, 5), _fit(who, big, counter_x - 20), font=big, fill=_INK)
    draw.text((counter_x, 5), counter, font=big, fill=_INK)

    # The chart: emotion 0-100 against turns 0..max_turns.
    left, right, top, bottom = 44, width - 86, 40, 214

    def x_of(turn: float) -> float:
        return left + (right - left) * turn / max(max_turns, 1)

    def y_of(score: float) -> float:
        return bottom - (bottom - top) * max(0.0, min(100.0, score)) / 100.0

    for score in (0, 25, 50, 75, 100):
        y = y_of(score)
        draw.line([(left, y), (right, y)], fill=_GRID)
        label = f"{score}"
        draw.text((left - 6 - font.getlength(label), y - 8), label, font=font, fill=_MUTED)
    step = max(1, -(-max_turns // 10))  # at most about ten tick labels on the turn axis
    for turn in range(0, max_turns + 1, step):
        label = f"{turn}"
        draw.text(
            (x_of(turn) - font.getlength(label) / 2, bottom + 3), label, font=font, fill=_MUTED
        )
    draw.rectangle([(left, top), (right, bottom)], outline=_MUTED)
    for threshold, colour, name in (
        (config.success_threshold, _SUCCESS, "success"),
        (config.leave_threshold, _LEAVE, "leave"),
    ):
        y = y_of(threshold)
        _dashed(draw, y, left, right, colour)
        draw.text((right + 6, y - 8), f"{name} {threshold:g}", font=font, fill=colour)
    points = [(x_of(t), y_of(e)) for t, e in enumerate(emotions)]
    if len(points) > 1:
        draw.line(points, fill=_LINE, width=2)
    for x, y in points:
        draw.ellipse([(x - 3, y - 3), (x + 3, y + 3)], fill=_LINE)

    # Status: the emotion now, and at the end how it ended.
    now = emotions[-1] if emotions else 0.0
    status = f"emotion {now:.1f} ({emotion_band(now)})"
    if outcome is not None:
        status += f"   ended: {outcome}" + (f", hidden need: {need}" if need else "")
    draw.text((left, bottom + 20), _fit(status, big, width - left - 10), font=big, fill=_INK)

    # The last turns, newest at the bottom: as many lines as fit. The newest message shows
    # from its start (cut at the bottom if it alone overflows); older ones fill the space above
    # it, the oldest shown cut at the top.
    text_top, text_left = bottom + 44, 10
    draw.line([(0, text_top - 6), (width, text_top - 6)], fill=_GRID)
    room = (height - text_top - 4) // _LINE_HEIGHT
    block: list[tuple[str, tuple[int, int, int]]] = []
    for msg in reversed(messages):
        if msg["role"] == "user":
            who = f"{persona.name} ({float(msg.get('emotion', 0.0)):.0f}): "
            colour = _USER
        else:
            who = f"Agent [{msg.get('strategy', '')}]: "
            colour = _AGENT
        content = str(msg["content"])
        if len(content) > _MAX_CHARS:  # more than the frame holds: wrap only what can show
            content = content[:_MAX_CHARS] + "..."
        lines = _wrap(_drawable(who + content, font), font, width - 2 * text_left)
        if not block:
            lines = lines[:room]
        block[:0] = [(line, colour) for line in lines]
        if len(block) >= room:
            break
    for i, (line, colour) in enumerate(block[-room:]):
        draw.text((text_left, text_top + i * _LINE_HEIGHT), line, font=font, fill=colour)
    return np.asarray(image, dtype=np.uint8)
