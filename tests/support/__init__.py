"""Helpers shared by the test suite: real servers and the databases they need."""
