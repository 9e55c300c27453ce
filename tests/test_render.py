"""``render_mode="rgb_array"``: the emotion chart and the last turns as an image, for every env id.

The goldens hash observations and infos, never renders; these tests hold the image itself:
its shape and type, that it follows the episode, that the same episode gives the same pixels,
and that Gymnasium's recording wrappers take it.
"""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import RecordVideo, RenderCollection

from dialogue_gym.core.render import FRAME_SIZE, _wrap, episode_outcome

#: What the text render modes leave out and rgb_array brings in (lazily).
_IMAGE_LIBRARY = "PIL"


def _play(env: gym.Env, act, strategies: list[int], seed: int = 0) -> list[np.ndarray]:
    """Reset, take ``strategies`` (until the episode ends) and return a frame after each."""
    env.reset(seed=seed)
    frames = [env.render()]
    for strategy in strategies:
        _, _, terminated, truncated, _ = env.step(act(strategy))
        frames.append(env.render())
        if terminated or truncated:
            break
    return frames


def test_frame_is_an_rgb_image(make_env, act):
    env = make_env(render_mode="rgb_array")
    frames = _play(env, act, [0, 2])
    for frame in frames:
        assert isinstance(frame, np.ndarray)
        assert frame.shape == (*FRAME_SIZE, 3) and frame.dtype == np.uint8
        assert frame.min() < 100 < frame.max()  # something is drawn on the white page
    assert "rgb_array" in env.metadata["render_modes"] and env.metadata["render_fps"] > 0


def test_frame_changes_after_a_step(make_env, act):
    env = make_env(render_mode="rgb_array")
    frames = _play(env, act, [0, 2, 4])
    for before, after in zip(frames, frames[1:], strict=False):
        assert not np.array_equal(before, after)


def test_same_seed_same_pixels(make_env, act):
    first = _play(make_env(render_mode="rgb_array"), act, [0, 1, 2, 4], seed=7)
    second = _play(make_env(render_mode="rgb_array"), act, [0, 1, 2, 4], seed=7)
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(a, b)
    other = _play(make_env(render_mode="rgb_array"), act, [0, 1, 2, 4], seed=8)
    assert not np.array_equal(first[-1], other[-1])


def test_rendering_changes_nothing_the_agent_sees(make_env, act):
    """Rendering is read-only: observations, rewards and infos are those of an unrendered run."""
    plain, drawn = make_env(), make_env(render_mode="rgb_array")
    for env in (plain, drawn):
        env.reset(seed=3)
    for strategy in (0, 1, 2, 4, 5):
        a = plain.step(act(strategy))
        drawn.render()
        b = drawn.step(act(strategy))
        assert a[1:4] == b[1:4] and a[4]["emotion"] == b[4]["emotion"]
        assert a[4]["user_utterance"] == b[4]["user_utterance"]
        if a[2] or a[3]:
            break


def test_the_end_frame_names_the_outcome(make_env, act):
    """The episode's last frame differs from the same chat mid-episode: it adds the outcome."""
    env = make_env(render_mode="rgb_array", max_turns=2)
    frames = _play(env, act, [2, 4])
    base = env.unwrapped
    assert base._done
    assert episode_outcome(base.core.state, base.sim_config) == "ran out of turns"
    base._done = False  # the same chat, as if still running
    running = env.render()
    base._done = True
    assert not np.array_equal(running, frames[-1])


def test_long_utterances_wrap_and_stay_in_the_frame():
    env = gym.make(
        "EmpathyDialogueText-v0", voice="template", render_mode="rgb_array", max_length=8000
    )
    env.reset(seed=0)
    env.step("How are you feeling? " + "x" * 3000 + " " + "so much to say " * 200)
    frame = env.render()
    assert frame.shape == (*FRAME_SIZE, 3)
    env.close()


def test_wrap_cuts_long_words_and_keeps_blank_lines():
    from dialogue_gym.core.render import _fonts

    font, _ = _fonts()
    lines = _wrap("a " + "x" * 400 + " end", font, 300)
    assert lines[0] == "a" and lines[-1] == "end" and len(lines) > 3
    assert all(font.getlength(line) <= 300 + 2 for line in lines)
    assert _wrap("one\n\ntwo", font, 300) == ["one", "", "two"]


def test_characters_the_font_lacks_are_folded_and_long_headers_cut():
    """Pillow's bundled font is nearly ASCII-only: a missing glyph would be drawn as a box."""
    from dialogue_gym.core.render import _drawable, _fit, _fonts

    font, _ = _fonts()
    assert _drawable("Tomás — naïve Straße, “quoted” 日本", font) == (
        "Tomas - naive Strasse, “quoted” ??"
    )
    assert _fit("short", font, 300) == "short"
    cut = _fit("a very long occupation " * 10, font, 200)
    assert cut.endswith("...") and font.getlength(cut) <= 200


def test_without_pillow_the_error_says_what_to_install(make_env, monkeypatch):
    env = make_env(render_mode="rgb_array")
    env.reset(seed=0)
    monkeypatch.setitem(sys.modules, _IMAGE_LIBRARY, None)  # as if Pillow were not installed
    with pytest.raises(ImportError, match="pip install pillow"):
        env.render()


def test_text_modes_do_not_import_the_image_library():
    """Importing the package and rendering text must not pay for Pillow (a fresh process)."""
    code = (
        "import sys, gymnasium as gym, dialogue_gym\n"
        "env = gym.make('EmpathyDialogue-v0', voice='template', render_mode='ansi')\n"
        "env.reset(seed=0); env.step(0); env.render()\n"
        f"print({_IMAGE_LIBRARY!r} in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_render_collection(env_id, act):
    """``render_mode="rgb_array_list"``: gym.make adds RenderCollection, one frame a step."""
    env = gym.make(env_id, voice="template", render_mode="rgb_array_list")
    assert any(isinstance(w, RenderCollection) for w in _wrappers(env))
    env.reset(seed=0)
    for strategy in (0, 2, 4):
        env.step(act(strategy))
    frames = env.render()
    assert len(frames) == 4 and all(f.shape == (*FRAME_SIZE, 3) for f in frames)
    env.close()


@pytest.mark.slow  # encoding two videos takes about two seconds
def test_record_video(env_id, act, tmp_path):
    """Gymnasium's RecordVideo writes one mp4 per episode, one frame per reset and step."""
    pytest.importorskip("moviepy", reason="RecordVideo needs moviepy (gymnasium[other])")
    from imageio_ffmpeg import count_frames_and_secs

    env = RecordVideo(
        gym.make(env_id, voice="template", render_mode="rgb_array", max_turns=4),
        str(tmp_path / "videos"),  # a folder of its own: RecordVideo warns when it exists
        episode_trigger=lambda episode: True,
        name_prefix="dialogue",
    )
    turns = []
    for seed in (0, 1):
        env.reset(seed=seed)
        done, n = False, 0
        while not done:
            _, _, terminated, truncated, _ = env.step(act(2))
            done, n = terminated or truncated, n + 1
        turns.append(n)
    env.close()
    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    assert [v.name for v in videos] == ["dialogue-episode-0.mp4", "dialogue-episode-1.mp4"]
    for video, n in zip(videos, turns, strict=True):
        frames, _seconds = count_frames_and_secs(str(video))
        assert frames == n + 1


def _wrappers(env: gym.Env) -> list[gym.Env]:
    found = [env]
    while isinstance(found[-1], gym.Wrapper):
        found.append(found[-1].env)
    return found
