"""``dialogue-gym ui``: a local web page for people, on top of the library (the ``ui`` extra).

Four tabs: **Play** (talk to the simulated user as the agent, by typing or by strategy buttons,
with live plots of the emotion, the hidden state and the reward), **Browse** (episode logs as
chats with their emotion curves and reward components), **Compare** (two runs on the same card,
side by side) and **Study report** (a study's results folder as a page).

The logic is plain Python, tested without a browser: :mod:`~dialogue_gym.ui.play` (a
conversation: :class:`~dialogue_gym.ui.play.PlaySession`), :mod:`~dialogue_gym.ui.browse`
(episode logs: load, filter, show, compare) and :mod:`~dialogue_gym.ui.report_view` (a results
folder). :mod:`~dialogue_gym.ui.app` lays them out with Gradio and is the only module that
imports it; ``dialogue_gym.cli.ui`` is the command. This sub-package sits at the top layer,
beside the CLI, and reads the simulated user only through the published simulator view.

Example:
    >>> from dialogue_gym.ui.play import STRATEGY_ENV, PlayOptions, PlaySession
    >>> session = PlaySession.start(PlayOptions(env_id=STRATEGY_ENV, card="0", seed=3))
    >>> session.act(2).strategy  # Reflection of feelings
    'Reflection of feelings'
    >>> session.close()
"""
