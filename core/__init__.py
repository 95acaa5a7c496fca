"""The bottom layer: what every other package needs, importing none of them.

- :mod:`core.settings`: one typed settings object per subsystem, read once from the environment;
- :mod:`core.errors`: the error tree, one root;
- :mod:`core.auth`: principals, roles and the token codec;
- :mod:`core.metrics`: the pod's Prometheus registry;
- :mod:`core.redis_link`: one way to connect to Redis (async and blocking, direct or Sentinel);
- :mod:`core.keys`: the whole Redis keyspace: every key, channel and the pub/sub envelope;
- :mod:`core.text`: the search tokenizer and question normalisation;
- :mod:`core.retrieval`: passages and the retriever interface;
- :mod:`core.ids`: new ids and the shape of client-chosen ones;
- :mod:`core.taskset`: held background tasks;
- :mod:`core.logs`: structured logging.
"""
