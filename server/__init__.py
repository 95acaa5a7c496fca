"""LiveTutor server: the Starlette app, its routes, the tutor pipeline, storage and CLI."""
