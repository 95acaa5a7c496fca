"""Tests of the ``devtools`` package."""
