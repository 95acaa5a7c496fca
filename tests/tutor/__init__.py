"""Tests of the ``tutor`` package."""
