"""Benchmarks of the LiveTutor server, each comparing against a baseline in the same run.

Run one with ``python -m bench.NAME --help`` from the repository root; see
``docs/benchmarks.md`` for what each measures and the figures of a recent run.
"""
