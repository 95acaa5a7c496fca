"""LiveTutor tests: they mirror the source tree and run real servers."""
