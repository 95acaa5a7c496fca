"""The whole Redis keyspace: every key, every pub/sub channel, and the pub/sub envelope.

No other module spells a key. Every name starts with ``lt:``; the strings are
a contract with running deployments (pods of the old and the new release share
one Redis during an upgrade), so a name here never changes, only new ones are
added. ``tests/core/test_keys.py`` pins each of them.

Ids that users choose (sessions, courses, user names) go into names escaped
(:func:`_id`): ``%`` and ``:`` are percent-encoded, so an id can never reach
into another family's names (a course called ``text:X`` is not course ``X``'s
wordings) and no two distinct inputs give one name. Ids of today's usual
alphabet (hex, letters, digits, ``._-~/@``) are written unchanged.

Backplane (:mod:`realtime.redis_bus`, swept by :mod:`tasks.cleanup`)::

    lt:s:<session>         channel  a session's frames        session_channel(session)
    lt:pod:<pod>           channel  control (cancel) for one pod        pod_channel(pod)
    lt:j:<stream>          stream   journal: entry 0-<seq> {t: text},
                                    end 1-0 {e: json}                   journal(stream)
    lt:m:<stream>          hash     the stream's meta                   stream_meta(stream)
    lt:lease:<stream>      string   the owning pod, with a TTL it renews
                                    while generating                    lease(stream)
    lt:running             set      running stream ids (scanned for
                                    orphans)                            RUNNING
    lt:run:<session>       set      the session's running stream ids    session_running(session)
    lt:sent:<session>      zset     the session's streams of the last
                                    journal TTL, scored by when their
                                    start or end went out (catch-up
                                    after a lost subscriber)            session_streams(session)
    lt:p:<session>         zset     "<pod>/<connection>" scored by when
                                    it expires                          presence(session)

Rate limits (:mod:`realtime.redis_ratelimit`)::

    lt:rl:<key>            hash     a token bucket {tokens, at}         rate_limit(key)

Connection limits (:mod:`realtime.connection_limits`)::

    lt:uc:<user>           zset     the user's open WebSockets,
                                    "<pod>/<connection>" scored by when
                                    it expires                          user_connections(user)

Answer and retrieval cache, L2 tier (:mod:`cache.redis_tier`)::

    lt:c:<ns>:<ver>:<key>  string   a cached value, with a TTL          cache_value(key)
                                    (a namespace named lock, ver or
                                    inval is written %6Cock, %76er,
                                    %69nval)
    lt:c:lock:<key>        string   single-flight lock (SET NX PX)      cache_lock(key)
    lt:c:ver:<ns>          string   a namespace's version counter       cache_version(namespace)
    lt:c:inval             channel  invalidations as JSON               CACHE_INVALIDATION

Popular questions (:mod:`cache.popular`)::

    lt:fq:<course>         zset     normalised question -> times asked  popular_counts(course)
    lt:fq:text:<course>    hash     normalised question -> first
                                    wording seen                        popular_wordings(course)
    lt:fq:who:<course>     hash     normalised question -> digests of
                                    the first learners who asked it     popular_learners(course)
    lt:fq:removed:<course> set      normalised questions instructors
                                    removed                             popular_removed(course)

An instructor's connections all join the bus session :func:`user_channel`
(``~u/<user>``, outside the alphabet of client-chosen session ids), so its
channel is ``lt:s:~u/<user>``; document progress from the workers goes there.

Every pub/sub message on a session or pod channel is an envelope
``<origin>\\x1f<unix time sent>\\x1f<frame json>`` (:func:`encode_envelope`,
:func:`decode_envelope`): the origin lets a pod skip what it published itself,
the send time measures delivery latency.
"""

from __future__ import annotations

# Each prefix once; the functions below are the only way to build a name.
_SESSION = "lt:s:"
_POD = "lt:pod:"
_JOURNAL = "lt:j:"
_META = "lt:m:"
_LEASE = "lt:lease:"
_SESSION_RUNNING = "lt:run:"
_SESSION_STREAMS = "lt:sent:"
_PRESENCE = "lt:p:"
_RATE_LIMIT = "lt:rl:"
_USER_CONNECTIONS = "lt:uc:"
_CACHE = "lt:c:"
_CACHE_LOCK = "lt:c:lock:"
_CACHE_VERSION = "lt:c:ver:"
_POPULAR = "lt:fq:"
_POPULAR_TEXT = "lt:fq:text:"
_POPULAR_LEARNERS = "lt:fq:who:"
_POPULAR_REMOVED = "lt:fq:removed:"
# What follows ``lt:c:`` in the cache's own names; never read as a namespace.
_CACHE_RESERVED = frozenset({"lock", "ver", "inval"})

RUNNING = "lt:running"
"""Set of every running stream id, scanned for orphans whose owner died."""

CACHE_INVALIDATION = "lt:c:inval"
"""Channel of the cache's invalidation broadcasts (JSON, no envelope)."""

# SCAN patterns of the cleanup pass (never KEYS).
PRESENCE_SCAN = _PRESENCE + "*"
SESSION_RUNNING_SCAN = _SESSION_RUNNING + "*"
JOURNAL_SCAN = _JOURNAL + "*"

ENVELOPE_SEP = "\x1f"


def _id(part: str) -> str:
    """``part`` with ``%`` and ``:`` percent-encoded: it holds no ``:`` and decodes back."""
    return part.replace("%", "%25").replace(":", "%3A")


def _unescape(part: str) -> str:
    """The id :func:`_id` escaped (every ``%`` it wrote starts ``%25`` or ``%3A``)."""
    return part.replace("%3A", ":").replace("%25", "%")


# -- backplane ----------------------------------------------------------------


def session_channel(session: str) -> str:
    """Pub/sub channel of a session's frames."""
    return _SESSION + _id(session)


def session_of_channel(channel: str) -> str | None:
    """The session a :func:`session_channel` belongs to; None for any other channel."""
    if channel.startswith(_SESSION):
        return _unescape(channel[len(_SESSION) :])
    return None


def pod_channel(pod: str) -> str:
    """Pub/sub channel of control messages (cancel) for one pod."""
    return _POD + _id(pod)


def journal(stream: str) -> str:
    """Redis Stream journal of a stream: ``0-<seq>`` {t: text}, end ``1-0`` {e: json}."""
    return _JOURNAL + _id(stream)


def stream_meta(stream: str) -> str:
    """Hash of a stream's meta."""
    return _META + _id(stream)


def lease(stream: str) -> str:
    """The pod that owns a stream, with a TTL it renews while generating."""
    return _LEASE + _id(stream)


def stream_of_lease(key: str) -> str:
    """The stream id of a :func:`lease` key."""
    return _unescape(key.removeprefix(_LEASE))


def session_running(session: str) -> str:
    """Set of a session's running stream ids."""
    return _SESSION_RUNNING + _id(session)


def session_streams(session: str) -> str:
    """Sorted set of a session's recent stream ids, scored by when their start or end was sent."""
    return _SESSION_STREAMS + _id(session)


def presence(session: str) -> str:
    """Sorted set of a session's connections, ``<pod>/<connection>`` scored by expiry (ms)."""
    return _PRESENCE + _id(session)


def user_channel(user: str) -> str:
    """The bus session every connection of an instructor or admin joins (never a client id)."""
    return f"~u/{user}"


# -- rate limits ----------------------------------------------------------------


def rate_limit(key: str) -> str:
    """Hash of one token bucket."""
    return _RATE_LIMIT + _id(key)


def user_connections(user: str) -> str:
    """Sorted set of a user's open WebSockets, ``<pod>/<connection>`` scored by expiry (ms)."""
    return _USER_CONNECTIONS + _id(user)


# -- cache ----------------------------------------------------------------------


def cache_value(key: str) -> str:
    """A cached value; ``key`` is the tier key ``<namespace>:<version>:<key>``.

    The namespace is escaped, and one that reads as the cache's own names
    (``lock``, ``ver``, ``inval``) has its first letter percent-encoded, so a
    value never shares a name with a lock, a version counter or the channel.
    """
    namespace, sep, rest = key.partition(":")
    namespace = _id(namespace)
    if namespace in _CACHE_RESERVED:
        namespace = f"%{ord(namespace[0]):02X}{namespace[1:]}"
    return _CACHE + namespace + sep + rest


def cache_lock(key: str) -> str:
    """The short single-flight lock on a tier key (the whole rest of the name)."""
    return _CACHE_LOCK + key


def cache_version(namespace: str) -> str:
    """A cache namespace's version counter."""
    return _CACHE_VERSION + _id(namespace)


def popular_counts(course: str) -> str:
    """Sorted set of a course's normalised questions by times asked."""
    return _POPULAR + _id(course)


def popular_wordings(course: str) -> str:
    """Hash of a course's normalised questions to the first wording seen."""
    return _POPULAR_TEXT + _id(course)


def popular_learners(course: str) -> str:
    """Hash of a course's normalised questions to the digests of the learners who asked them."""
    return _POPULAR_LEARNERS + _id(course)


def popular_removed(course: str) -> str:
    """Set of a course's normalised questions that instructors removed from sharing."""
    return _POPULAR_REMOVED + _id(course)


# -- envelope -------------------------------------------------------------------


def encode_envelope(origin: str, sent_at: float, text: str) -> str:
    """``<origin>\\x1f<sent_at, 6 decimals>\\x1f<text>``; ``text`` may hold the separator."""
    if ENVELOPE_SEP in origin:
        raise ValueError("an envelope's origin cannot contain the separator")
    return f"{origin}{ENVELOPE_SEP}{sent_at:.6f}{ENVELOPE_SEP}{text}"


def decode_envelope(data: str) -> tuple[str, float | None, str]:
    """``(origin, sent_at, text)``; ``sent_at`` is None when missing or unreadable."""
    origin, _, rest = data.partition(ENVELOPE_SEP)
    stamp, _, text = rest.partition(ENVELOPE_SEP)
    try:
        sent_at = float(stamp) if stamp else None
    except ValueError:
        sent_at = None
    return origin, sent_at, text
