"""Realtime layer: the WebSocket protocol (free of I/O), coalescing and the reference client."""
