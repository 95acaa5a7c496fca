"""Two-tier answer cache: an L1 in-process LRU in front of an L2 Redis cache.

Not built yet: the tutor pipeline answers every question without a cache.
"""
