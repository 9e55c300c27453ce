"""``python -m dialogue_gym.user.recognise``: the recognisers' accuracy on the labelled set."""

from dialogue_gym.user.recognise.labelled import main

main()
