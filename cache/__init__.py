"""The two-tier cache: an L1 LRU in each pod in front of an L2 in Redis.

- :mod:`cache.codec`: namespaces (a name and a value type) and the JSON codec
  with its size cap;
- :mod:`cache.flight`: in-pod single-flight, one load per key at a time;
- :mod:`cache.shared`: the L2 interface; :mod:`cache.redis_tier` implements it
  with Redis (values, version counters, redis-py locks, invalidation pub/sub);
- :mod:`cache.two_tier`: :class:`~cache.two_tier.TwoTierCache`, which puts
  them together and degrades to L1 alone when Redis is down;
- :mod:`cache.answers`: the answer cache of the tutor pipeline and the rule
  for which answers may be shared between learners;
- :mod:`cache.retrieval`: retrieval results, cached per course index version;
- :mod:`cache.popular`: the questions each course's learners ask most;
- :mod:`tutor.warming`: generating their answers ahead of learners after a
  course changes (run by :mod:`tasks.warming` in workers, or in process).
"""
