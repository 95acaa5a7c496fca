"""``document.progress`` frames from a worker to the pods, over the backplane.

The worker publishes on the same pub/sub channels the pods subscribe to
(:func:`core.keys.session_channel`, see :mod:`realtime.redis_bus`), in the same
envelope, so any pod holding a connection of the uploader forwards the frame.
"""

from __future__ import annotations

import json
import socket
import time

import redis
import structlog

from core import keys
from knowledge.vectors import DocumentRecord
from realtime import protocol

log = structlog.get_logger("livetutor.tasks")


class ProgressPublisher:
    """Publishes a record's progress to its uploader's channel and session."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._origin = f"worker-{socket.gethostname()}"

    def __call__(self, record: DocumentRecord) -> None:
        frame = protocol.document_progress(
            record.id, record.course, record.status, record.progress, record.reason
        )
        text = json.dumps(frame, separators=(",", ":"))
        envelope = keys.encode_envelope(self._origin, time.time(), text)
        targets = [keys.user_channel(record.user)] if record.user else []
        if record.session:
            targets.append(record.session)
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                for target in targets:
                    pipe.publish(keys.session_channel(target), envelope)
                pipe.execute()
        except redis.RedisError as exc:
            # Progress is best effort: GET /documents/{id} has the truth.
            log.warning("progress.publish_failed", document=record.id, error=type(exc).__name__)
