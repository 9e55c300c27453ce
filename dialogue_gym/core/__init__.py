"""The simulated user's world model: vocabulary, settings, scenario cards, the affective core.

Nothing here knows about Gymnasium, LLMs or rewards; every layer above builds on it.

- :mod:`~dialogue_gym.core.vocabulary`: ESConv's strategies, needs, user acts, Plutchik's emotions;
- :mod:`~dialogue_gym.core.config`: :class:`SimConfig`, the simulator's assumptions;
- :mod:`~dialogue_gym.core.validation`: argument specs and the one validator, raising
  :class:`InvalidArgument`;
- :mod:`~dialogue_gym.core.scenario`: scenario cards (persona, situation, hidden need) and loading;
- :mod:`~dialogue_gym.core.affect`: :class:`AffectiveCore`, the user's hidden state and appraisal;
- :mod:`~dialogue_gym.core.transcript`: chat messages and the read-only transcript in ``info``;
- :mod:`~dialogue_gym.core.render`: the transcript with emotion bars, as text.
"""

from dialogue_gym.core.affect import AffectiveCore, Appraisal
from dialogue_gym.core.config import SimConfig
from dialogue_gym.core.scenario import ScenarioCard, load_scenarios
from dialogue_gym.core.transcript import Message, Transcript
from dialogue_gym.core.validation import InvalidArgument
from dialogue_gym.core.vocabulary import NEEDS, PLUTCHIK, STRATEGIES, USER_ACTS

__all__ = [
    "NEEDS",
    "PLUTCHIK",
    "STRATEGIES",
    "USER_ACTS",
    "AffectiveCore",
    "Appraisal",
    "InvalidArgument",
    "Message",
    "ScenarioCard",
    "SimConfig",
    "Transcript",
    "load_scenarios",
]
