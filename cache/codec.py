"""Cache namespaces and the value codec.

A :class:`Namespace` names a family of keys and the type of their values.
Values travel as JSON (msgspec), are decoded into that type on the way out,
so an L2 value that does not decode or does not match the type is treated
as a miss, and are refused above a size cap.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")

# Part of every key: a change of the value encoding retires every old value.
SCHEMA = "1"

_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_encoder = msgspec.json.Encoder()


class Namespace(Generic[T]):
    """A family of cache keys whose values all have type ``T``."""

    __slots__ = ("_decoder", "name", "type")

    def __init__(self, name: str, type_: type[T]) -> None:
        if not _NAME.fullmatch(name):
            raise ValueError(f"cache namespace {name!r} must be a short lower-case identifier")
        self.name = name
        self.type = type_
        self._decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(type_)

    def decode(self, raw: bytes | str) -> T:
        """The value encoded in ``raw``; :class:`msgspec.MsgspecError` if it is not one."""
        return self._decoder.decode(raw)

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"


def encode(value: Any) -> bytes:
    """``value`` as JSON."""
    return _encoder.encode(value)


def digest(*parts: str) -> str:
    """A fixed-length key from its parts (no text of theirs shows in Redis key names)."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()
