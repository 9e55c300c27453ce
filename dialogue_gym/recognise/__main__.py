"""``python -m dialogue_gym.recognise``: the recognisers' accuracy on the labelled set."""

from dialogue_gym.recognise.labelled import main

main()
