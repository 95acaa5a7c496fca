"""The tutoring domain: one question in, one grounded, streamed answer out.

- :mod:`tutor.pipeline`: :class:`~tutor.pipeline.Tutor`, which runs asks as streams
  (cache, retrieval, prompt, generation, storage) and takes over orphaned ones;
- :mod:`tutor.generation`: the one generation path the pipeline and cache warming share;
- :mod:`tutor.prompts`: the prompt for each tutoring mode;
- :mod:`tutor.llm`: the provider interface; :mod:`tutor.llm_openai` (any
  OpenAI-compatible endpoint) and :mod:`tutor.llm_offline` (the labelled offline tutor)
  implement it, :mod:`tutor.providers` picks one;
- :mod:`tutor.breaker`: the circuit breaker around the model;
- :mod:`tutor.warming`: answers to the most asked questions, generated ahead of learners.
"""
