"""Background jobs on Celery: PDF indexing, session cleanup, cache regeneration.

Not built yet: the embedded server has no background jobs so far.
"""
