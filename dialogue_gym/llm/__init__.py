"""Everything that calls a language model: backends, the batched client, prompts.

- :mod:`~dialogue_gym.llm.backends`: the backend protocol (one batched ``generate``) and its
  registry (``llama_cpp``, ``transformers``, ``openai``);
- :mod:`~dialogue_gym.llm.client`: :class:`BackendClient`, the one handle every LLM caller
  (voices, realiser, recogniser, judge) holds, and the prompt loader;
- :mod:`~dialogue_gym.llm.batching`: one backend call per round for a batch of envs;
- ``prompts/``: the prompt templates.
"""
