"""The OpenEnv server (``dialogue-gym serve``), tested over loopback with OpenEnv's own client.

Servers are real: OpenEnv's ``HTTPEnvServer`` under uvicorn, in a thread of this process or
started as ``dialogue-gym serve`` in a subprocess; clients are
:class:`~dialogue_gym.integrations.openenv.DialogueEnvClient` (OpenEnv's WebSocket
``EnvClient``). Every env uses the template voice (no LLM). The tests that start a server are
marked ``server`` (``make test`` runs them; plain ``pytest`` leaves them out) and skip when
OpenEnv is not installed (the ``serve`` extra).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from openenv_servers import served as _served
from openenv_servers import server_pool
from repo_scripts import load_script

import dialogue_gym
from dialogue_gym.cli import main
from dialogue_gym.envs.text import EXAMPLE_UTTERANCES

ROOT = Path(__file__).resolve().parents[1]
TEXT = "EmpathyDialogueText-v0"
STRATEGY = "EmpathyDialogue-v0"


@pytest.fixture(scope="module")
def server() -> Iterator[Callable[..., str]]:
    """``server(env_id, max_sessions=40, idle_timeout=None, **env_kwargs)``: the URL of a
    server with that configuration (uvicorn in a thread), started on first use."""
    with server_pool(STRATEGY) as get:
        yield get


def _active(url: str) -> int:
    return _served().server_sessions(url)["active_sessions"]


def _wait_for_sessions(url: str, count: int, within: float) -> float:
    """Seconds until the server holds ``count`` sessions; fails after ``within`` seconds."""
    start = time.monotonic()
    while (active := _active(url)) != count:
        assert time.monotonic() - start < within, f"{active} sessions after {within} s, not {count}"
        time.sleep(0.05)
    return time.monotonic() - start


def _in_process(env_id: str, seed: int, actions: list[Any], **env_kwargs: Any) -> list[tuple]:
    """One episode in process: ``[(obs, info), (obs, reward, terminated, truncated, info)...]``
    with ``info`` in its JSON form."""
    jsonable = _served().jsonable
    env = gym.make(env_id, voice="template", **env_kwargs)
    obs, info = env.reset(seed=seed)
    steps: list[tuple] = [(obs, jsonable(info))]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        steps.append((obs, float(reward), terminated, truncated, jsonable(info)))
        if terminated or truncated:
            break
    env.close()
    return steps


def _assert_same_step(remote: tuple, local: tuple) -> None:
    assert len(remote) == len(local)
    for key, value in local[0].items():
        if isinstance(value, str):
            assert remote[0][key] == value
        else:
            assert remote[0][key].dtype == value.dtype and remote[0][key].shape == value.shape
            np.testing.assert_array_equal(remote[0][key], value, err_msg=key)
    assert set(remote[0]) == set(local[0])
    assert remote[1:] == local[1:]  # reward, terminated, truncated, info


def _actions(env_id: str, seed: int, n: int = 10) -> list[Any]:
    picks = np.random.default_rng(seed).integers(0, 8, size=n).tolist()
    return [EXAMPLE_UTTERANCES[i] for i in picks] if env_id == TEXT else picks


# -- isolation and fidelity -------------------------------------------------------------------


@pytest.mark.server
def test_32_concurrent_sessions_each_have_their_own_user(server):
    served = _served()
    url = server(STRATEGY, max_sessions=40)
    seeds = list(range(100, 132))
    actions = {seed: _actions(STRATEGY, seed) for seed in seeds}

    async def play() -> dict[int, list[tuple]]:
        clients = {seed: served.DialogueEnvClient(base_url=url) for seed in seeds}
        await asyncio.gather(*(client.connect() for client in clients.values()))
        try:
            firsts = await asyncio.gather(*(clients[s].gym_reset(seed=s) for s in seeds))
            steps = {seed: [first] for seed, first in zip(seeds, firsts, strict=True)}
            assert await asyncio.to_thread(_active, url) == len(seeds)
            order = np.random.default_rng(0)
            for turn in range(10):
                live = [s for s in seeds if not any(step[2] or step[3] for step in steps[s][1:])]
                # The sessions' steps reach the server interleaved, in a new order each round.
                live = [live[i] for i in order.permutation(len(live))]
                results = await asyncio.gather(
                    *(clients[s].gym_step(actions[s][turn]) for s in live)
                )
                for seed, result in zip(live, results, strict=True):
                    steps[seed].append(result)
            return steps
        finally:
            await asyncio.gather(*(client.close() for client in clients.values()))

    remote = asyncio.run(play())
    for seed in seeds:
        local = _in_process(STRATEGY, seed, actions[seed])
        assert len(remote[seed]) == len(local), seed
        for got, want in zip(remote[seed], local, strict=True):
            _assert_same_step(got, want)
    # Different seeds, different users: no two sessions told the same story.
    stories = {json.dumps([step[-1]["emotion"] for step in remote[s]]) for s in seeds}
    assert len(stories) == len(seeds)
    assert len({remote[s][0][1]["card_id"] for s in seeds}) > 1
    _wait_for_sessions(url, 0, within=5.0)  # every client closed: every session freed


@pytest.mark.server
@pytest.mark.parametrize("env_id", [STRATEGY, TEXT])
def test_a_seeded_episode_is_the_same_over_the_wire_as_in_process(server, env_id):
    served = _served()
    url = server(env_id, reward="emotion_delta", scenarios="test")
    actions = _actions(env_id, seed=7)
    local = _in_process(env_id, 7, actions, reward="emotion_delta", scenarios="test")
    with served.DialogueEnvClient(base_url=url).sync() as env:
        remote = [env.gym_reset(seed=7)]
        for action in actions:
            remote.append(env.gym_step(action))
            if remote[-1][2] or remote[-1][3]:
                break
        state = env.state()
        # The typed form gives the same as the Gymnasium form: one more episode, same seed.
        result = env.reset(seed=7, options={"card": local[0][1]["card_id"]})
        assert result.observation.info == local[0][1] and result.reward is None
        if env_id == TEXT:
            typed = served.UtteranceAction(utterance=actions[0])
        else:
            typed = served.StrategyAction(strategy=actions[0])
        result = env.step(typed)
        assert result.observation.info == local[1][-1] and result.reward == local[1][1]
    assert len(remote) == len(local) > 2
    for got, want in zip(remote, local, strict=True):
        _assert_same_step(got, want)
    assert any(step[1] != 0.0 for step in remote[1:])  # emotion_delta pays every turn
    assert (state.step_count, state.card_id, state.done) == (
        len(local) - 1,
        local[0][1]["card_id"],
        True,
    )


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.server
def test_bad_actions_get_the_envs_error_and_the_session_goes_on(server):
    served = _served()
    url = server(STRATEGY, scenarios="test", max_turns=3)
    with served.DialogueEnvClient(base_url=url).sync() as env:
        with pytest.raises(served.DialogueServerError, match=r"call reset\(\) before step"):
            env.step(0)
        env.reset(seed=0)
        with pytest.raises(served.DialogueServerError) as err:
            env.step(99)
        assert err.value.code == "EXECUTION_ERROR"
        assert "outside the action space Discrete(8)" in err.value.message
        assert "0=Question" in err.value.message  # the env's own message, whole
        with pytest.raises(served.DialogueServerError) as err:
            env.step(served.UtteranceAction(utterance="hello"))  # the other env's action
        assert err.value.code == "VALIDATION_ERROR"
        assert "strategy: Field required" in str(err.value)
        with pytest.raises(served.DialogueServerError, match="unknown argument"):
            env.reset(seed=0, sneed=1)
        # None of it touched the episode: the next good step is turn 1.
        result = env.step(0)
        assert result.observation.info["turn"] == 1 and env.state().step_count == 1
        while not result.done:
            result = env.step(4)
        with pytest.raises(served.DialogueServerError, match=r"episode has ended: call reset"):
            env.step(0)
        assert env.reset(seed=1).observation.info["turn"] == 0
    _wait_for_sessions(url, 0, within=5.0)

    # OpenEnv's stateless HTTP /step: the env's message, not a bare 500.
    request = urllib.request.Request(
        f"{url}/step",
        data=json.dumps({"action": {"strategy": 1}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(request, timeout=10)
    assert http.value.code == 409 and "reset()" in json.loads(http.value.read())["detail"]


@pytest.mark.server
def test_bad_utterances_get_the_text_envs_error(server):
    served = _served()
    url = server(TEXT, scenarios="test")
    with served.DialogueEnvClient(base_url=url).sync() as env:
        env.reset(seed=3)
        with pytest.raises(served.DialogueServerError) as err:
            env.step("I hear you\x00")
        assert err.value.code == "EXECUTION_ERROR" and "position 10" in err.value.message
        with pytest.raises(served.DialogueServerError, match="longer than|at most|1000"):
            env.step("word " * 400)
        with pytest.raises(served.DialogueServerError, match="utterance: Field required"):
            env.step(3)  # a strategy index, to the env that takes words
        result = env.step(EXAMPLE_UTTERANCES[0])
        assert result.observation.info["strategy"] == "Question"
        assert result.observation.utterance == result.observation.info["user_utterance"]


# -- limits ---------------------------------------------------------------------------------


@pytest.mark.server
def test_the_session_limit_is_enforced_with_a_clear_error(server):
    served = _served()
    url = server(STRATEGY, max_sessions=2)
    first = served.DialogueEnvClient(base_url=url).sync()
    second = served.DialogueEnvClient(base_url=url).sync()
    with first, second:
        first.reset(seed=0)
        second.reset(seed=1)
        assert served.server_sessions(url)["available_slots"] == 0
        third = served.DialogueEnvClient(base_url=url).sync()
        with third, pytest.raises(served.DialogueServerError) as err:
            third.reset(seed=2)
        assert err.value.code == "CAPACITY_REACHED"
        assert "2/2 sessions" in err.value.message
        assert err.value.details["max_sessions"] == 2
        assert second.step(0).observation.info["turn"] == 1  # the others are untouched
        second.close()
        _wait_for_sessions(url, 1, within=5.0)
        with served.DialogueEnvClient(base_url=url).sync() as fourth:
            assert fourth.reset(seed=2).observation.info["turn"] == 0
    _wait_for_sessions(url, 0, within=5.0)


@pytest.mark.server
@pytest.mark.slow
def test_an_idle_session_is_closed_after_the_timeout(server):
    served = _served()
    url = server(STRATEGY, max_sessions=4, idle_timeout=1.0)
    with served.DialogueEnvClient(base_url=url).sync() as env:
        env.reset(seed=0)
        env.step(0)
        assert _active(url) == 1
        # The client goes quiet with its connection open; OpenEnv's reaper looks every
        # max(timeout / 4, 5) s.
        waited = _wait_for_sessions(url, 0, within=12.0)
        assert waited > 0.5
        with pytest.raises(served.DialogueServerError, match="session is closed"):
            env.step(1)


#: A client in a process of its own: it opens a session, steps, says so, and waits to be killed.
VANISHING_CLIENT = textwrap.dedent(
    """
    import sys, time
    from dialogue_gym.integrations.openenv import DialogueEnvClient
    env = DialogueEnvClient(base_url=sys.argv[1]).sync()
    env.reset(seed=0)
    env.step(0)
    print("ready", flush=True)
    time.sleep(600)
    """
)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.server
@pytest.mark.slow
def test_a_client_killed_mid_episode_frees_its_session(server):
    served = _served()
    url = server(STRATEGY, max_sessions=4)  # no idle timeout: only the disconnect can free it
    errors = _Records()
    logging.getLogger("uvicorn.error").addHandler(errors)
    client = subprocess.Popen(
        [sys.executable, "-c", VANISHING_CLIENT, url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        line = client.stdout.readline().decode().strip()
        assert line == "ready", line + client.stdout.read().decode()
        status = served.server_sessions(url)
        assert status["active_sessions"] == 1 and status["idle_timeout_s"] is None
        client.send_signal(signal.SIGKILL)  # mid-episode, no close message: the OS drops it
        client.wait(timeout=10)
        _wait_for_sessions(url, 0, within=5.0)
    finally:
        logging.getLogger("uvicorn.error").removeHandler(errors)
        if client.poll() is None:
            client.kill()
            client.wait()
    # A vanished client is routine: no traceback in the server's log (huggingface/OpenEnv#1159).
    assert not errors.records, [r.getMessage() for r in errors.records]


# -- the command line -----------------------------------------------------------------------


def test_serve_without_openenv_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "openenv", None)  # find_spec: not installed
    assert main(["serve", "--voice", "template"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "dialogue-gym serve: error: serve needs OpenEnv (openenv-core): "
        "pip install 'dialogue_gym[serve]'"
    )


def test_help_does_not_import_openenv():
    code = (
        "import sys\nfrom dialogue_gym.cli import main\n"
        "try:\n    main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert not sys.modules.get('openenv') and not sys.modules.get('uvicorn'), 'imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "--max-sessions" in done.stdout and "--idle-timeout" in done.stdout


def test_serve_options_become_env_kwargs(capsys):
    from dialogue_gym.cli import build_parser
    from dialogue_gym.cli.serve import serve_env_kwargs

    args = build_parser().parse_args(["serve", "--env", TEXT, "--voice", "template"])
    assert serve_env_kwargs(args) == {
        "voice": "template",
        "scenarios": "train",
        "max_turns": 10,
        "reward": "sparse",  # no recogniser named: the id's own reads the words
    }
    assert main(["serve", "--recogniser", "lexical", "--voice", "template"]) == 2
    err = capsys.readouterr().err
    assert "--recogniser applies to EmpathyDialogueText-v0, EmpathyDialogueText-v1 only" in err
    assert set(dialogue_gym.ENV_IDS) >= {STRATEGY, TEXT}


# -- docs and benchmark ---------------------------------------------------------------------


def test_the_serving_page_documents_every_field():
    served = _served()
    page = (ROOT / "docs" / "serving.md").read_text()
    models = (
        served.StrategyAction,
        served.UtteranceAction,
        served.DialogueObservation,
        served.DialogueState,
    )
    for model in models:
        assert f"`{model.__name__}`" in page
        for name, field in model.model_fields.items():
            assert f"`{name}`" in page, f"{model.__name__}.{name} is not on docs/serving.md"
            assert field.description, f"{model.__name__}.{name} has no description"


@pytest.mark.server
@pytest.mark.benchmark
def test_the_load_benchmark_quick(tmp_path):

    _served()  # the script imports the client

    bench = load_script(ROOT / "benchmarks" / "openenv_load.py", "openenv_load")
    out = tmp_path / "load.json"
    results = bench.main(bench.parse_args(["--quick", "--out", str(out)]))
    saved = json.loads(out.read_text())
    (row,) = saved["rows"]
    assert row["sessions"] == 2 and row["steps"] == 20 and not row["bounded"]
    assert 0 < row["p50_ms"] <= row["p99_ms"] and row["steps_per_s"] > 0
    assert saved["in_process_ms_per_step"] == results["in_process_ms_per_step"] > 0
    assert "2 cores" in saved["machine"] or "cores" in saved["machine"]


# -- frames the protocol does not expect ------------------------------------------------------


def _ws(url: str) -> Any:
    from websockets.sync.client import connect

    return connect(url.replace("http://", "ws://") + "/ws", max_size=None, open_timeout=10)


@pytest.mark.server
def test_a_frame_that_is_no_object_is_refused_and_the_session_goes_on(server):
    url = server(STRATEGY, scenarios="test", max_turns=3)
    with _ws(url) as ws:
        ws.send(json.dumps({"type": "reset", "data": {"seed": 0}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "observation"
        for frame in ("[1, 2]", "42", "null", '"step"'):
            ws.send(frame)
            answer = json.loads(ws.recv(timeout=10))
            assert answer["type"] == "error" and answer["data"]["code"] == "INVALID_JSON"
            assert "JSON object" in answer["data"]["message"]
        # The conversation is still there: the next step is its first turn.
        ws.send(json.dumps({"type": "step", "data": {"strategy": 0}}))
        step = json.loads(ws.recv(timeout=10))
        assert step["type"] == "observation" and step["data"]["observation"]["info"]["turn"] == 1


@pytest.mark.server
def test_an_error_does_not_echo_a_huge_field_back(server):
    url = server(STRATEGY, scenarios="test")
    with _ws(url) as ws:
        ws.send(json.dumps({"type": "reset", "data": {"seed": 0}}))
        ws.recv(timeout=10)
        ws.send(json.dumps({"type": "step", "data": {"strategy": "x" * 2_000_000}}))
        answer = ws.recv(timeout=30)
        assert len(answer) < 5_000  # not the 2 MB field back
        error = json.loads(answer)
        assert error["data"]["code"] == "VALIDATION_ERROR"
        assert "<2000000 characters, not echoed>" in answer


@pytest.mark.server
@pytest.mark.slow
def test_a_silent_connection_is_closed_and_frees_its_slot():
    from websockets.exceptions import ConnectionClosed

    served = _served()
    app = served.make_app(
        STRATEGY, {"voice": "template"}, max_sessions=1, first_message_timeout=1.0
    )
    with served.running_server(app) as url:
        with _ws(url) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert (
                closed.value.rcvd.code == 1008
                and "no message within 1 s" in closed.value.rcvd.reason
            )
        # The one slot is free again: a client that talks gets a session.
        with served.DialogueEnvClient(base_url=url).sync() as env:
            assert env.reset(seed=0).observation.info["turn"] == 0
