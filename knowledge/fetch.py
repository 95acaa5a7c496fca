"""Fetching a PDF by URL without letting the URL reach inside the network (SSRF).

Every hop is checked before it is requested: the scheme is http(s) and the URL
carries no credentials (``user:password@``); the host name is resolved once and
every address it resolves to must be globally routable unless a
``LIVETUTOR_FETCH_ALLOWLIST`` entry (host name or CIDR) allows it; the
connection then goes to the checked address itself, so a DNS answer that
changes between check and connect cannot slip through. Redirects are followed
by hand, each one checked the same way.

Globally routable means :attr:`ipaddress.IPv4Address.is_global` and more, so
that the answer does not depend on the Python version: IPv4 written as IPv6
(``::ffff:0:0/96``) is judged by its IPv4 address; the transition ranges that
carry an IPv4 address to somewhere else (6to4 ``2002::/16``, Teredo
``2001::/32``, NAT64 ``64:ff9b::/96`` and ``64:ff9b:1::/48``) are refused
outright, whatever they embed; so are site-local ``fec0::/10``, unique-local,
link-local, multicast, unspecified, documentation, benchmarking and the other
special-purpose ranges, and the cloud metadata addresses.

One monotonic deadline (``timeout_s``) covers the whole fetch: name
resolution, connect, TLS, every redirect, the headers and the body. It is
checked before each read and bounds each read's timeout, so a server that
trickles a byte at a time cannot hold a fetch past it. Size is capped and the
body must start like a PDF.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import SplitResult, urljoin, urlsplit

from core.errors import DocumentRejected, FetchRefused, KnowledgeUnavailable
from knowledge.pdf import looks_like_pdf

_METADATA = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
}
# IPv6 ranges that carry an IPv4 address (or a path to one) elsewhere: refused
# whatever they embed, since the relay or translator decides where they lead.
_TRANSITION = (
    (ipaddress.ip_network("2002::/16"), "a 6to4 address"),
    (ipaddress.ip_network("2001::/32"), "a Teredo address"),
    (ipaddress.ip_network("64:ff9b::/96"), "a NAT64 address"),
    (ipaddress.ip_network("64:ff9b:1::/48"), "a NAT64 address"),
)
# Special-purpose IPv6 ranges that some Python versions count as global.
_NOT_GLOBAL_V6 = (
    (ipaddress.ip_network("fec0::/10"), "a site-local address"),
    (ipaddress.ip_network("fc00::/7"), "a unique-local address"),
    (ipaddress.ip_network("2001:db8::/32"), "a documentation address"),
    (ipaddress.ip_network("3fff::/20"), "a documentation address"),
    (ipaddress.ip_network("2001:2::/48"), "a benchmarking address"),
    (ipaddress.ip_network("100::/64"), "a discard-only address"),
    (ipaddress.ip_network("5f00::/16"), "a segment-routing address"),
)
# Special-purpose IPv4 ranges that some Python versions count as global.
_NOT_GLOBAL_V4 = (
    (ipaddress.ip_network("192.0.0.0/24"), "an IETF protocol address"),
    (ipaddress.ip_network("192.88.99.0/24"), "a 6to4 relay address"),
)
_READ_BLOCK = 65_536

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """Limits and exceptions of one fetch."""

    allowlist: tuple[str, ...] = ()
    timeout_s: float = 30.0
    max_bytes: int = 50_000_000
    max_redirects: int = 5

    def allows_host(self, host: str) -> bool:
        """The host name itself is allowlisted."""
        return host.lower() in {a.lower() for a in self.allowlist if "/" not in a}

    def allows_address(self, address: IPAddress) -> bool:
        """An allowlisted CIDR (or bare address) contains ``address``."""
        for entry in self.allowlist:
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                continue
            if address in network:
                return True
        return False


class _Deadline:
    """One monotonic deadline for a whole fetch."""

    def __init__(self, timeout_s: float) -> None:
        self._at = time.monotonic() + timeout_s

    def remaining(self) -> float:
        """Seconds left; :class:`TimeoutError` once there are none."""
        left = self._at - time.monotonic()
        if left <= 0:
            raise TimeoutError("fetch deadline passed")
        return left


def forbidden(address: IPAddress) -> str | None:
    """Why an address must not be fetched from, or None when it is globally routable."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return forbidden(address.ipv4_mapped)
        for network, why in _TRANSITION:
            if address in network:
                return why
    if address in _METADATA:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    special = _NOT_GLOBAL_V6 if isinstance(address, ipaddress.IPv6Address) else _NOT_GLOBAL_V4
    for network, why in special:
        if address in network:
            return why
    if address.is_private:
        return "a private address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "a non-public address"
    return None


def check_url(url: str) -> SplitResult:
    """``url`` split; :class:`DocumentRejected` unless it is http(s) without credentials."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError when the port is not a number in range
    except ValueError:
        raise DocumentRejected("the URL is not valid") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DocumentRejected("only http and https URLs can be fetched")
    if "@" in parts.netloc:
        raise DocumentRejected(
            "URLs with credentials (user:password@) are not fetched; give a URL without them"
        )
    return parts


def resolve(host: str, port: int, timeout_s: float | None = None) -> list[IPAddress]:
    """Every address ``host`` resolves to, within ``timeout_s`` (:class:`TimeoutError` after)."""
    answer: list[Any] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, ValueError) as exc:  # ValueError: a name IDNA cannot encode
            answer.append(exc)
        finally:
            done.set()

    # getaddrinfo cannot be given a timeout: it runs on a daemon thread of its
    # own, which the resolver ends (its own timeouts) if the fetch gives up first.
    threading.Thread(target=lookup, name="fetch-resolve", daemon=True).start()
    if not done.wait(timeout_s):
        raise TimeoutError("name resolution did not finish in time")
    if isinstance(answer[0], Exception):
        raise DocumentRejected(f"the host {host!r} does not resolve") from answer[0]
    infos = answer[0]
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def check_host(
    host: str, port: int, policy: FetchPolicy, timeout_s: float | None = None
) -> IPAddress:
    """The address to connect to; :class:`FetchRefused` if any resolved address is forbidden."""
    addresses = resolve(host, port, timeout_s)
    if not addresses:
        raise DocumentRejected(f"the host {host!r} does not resolve")
    if policy.allows_host(host):
        return addresses[0]
    for address in addresses:
        why = forbidden(address)
        if why and not policy.allows_address(address):
            raise FetchRefused(f"refused to fetch from {host}: it resolves to {why}")
    return addresses[0]


class _DeadlineReader(io.RawIOBase):
    """The socket's bytes, each read given only what is left of the deadline."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        super().__init__()
        self._sock = sock
        # The socket's own reader keeps it open until the response is done
        # with it, as http.client expects when it hands the socket over.
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._sock.settimeout(self._deadline.remaining())
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _Bounded:
    """What :class:`http.client.HTTPResponse` reads from: the socket under the deadline."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


def _bounded_response(deadline: _Deadline) -> type[http.client.HTTPResponse]:
    class BoundedResponse(http.client.HTTPResponse):
        def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
            # HTTPResponse reads only through sock.makefile("rb"): the status
            # line, the headers and the body all go through the deadline.
            super().__init__(cast(socket.socket, _Bounded(sock, deadline)), *args, **kwargs)

    return BoundedResponse


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: IPAddress, deadline: _Deadline) -> None:
        super().__init__(host, port, timeout=deadline.remaining())
        self._address = str(address)
        self._deadline = deadline
        self.response_class = _bounded_response(deadline)

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self._deadline.remaining())


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: IPAddress, deadline: _Deadline) -> None:
        super().__init__(
            host, port, timeout=deadline.remaining(), context=ssl.create_default_context()
        )
        self._address = str(address)
        self._deadline = deadline
        self.response_class = _bounded_response(deadline)

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self._deadline.remaining())
        # The handshake as a whole is bounded by the socket's timeout.
        raw.settimeout(self._deadline.remaining())
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def fetch_pdf(url: str, policy: FetchPolicy) -> tuple[bytes, str]:
    """The PDF at ``url`` and the final URL; :class:`DocumentRejected` when refused."""
    deadline = _Deadline(policy.timeout_s)
    try:
        return _fetch(url, policy, deadline)
    except TimeoutError:
        raise DocumentRejected(f"the fetch took longer than {policy.timeout_s:g} s") from None


def _fetch(url: str, policy: FetchPolicy, deadline: _Deadline) -> tuple[bytes, str]:
    for _ in range(policy.max_redirects + 1):
        parts = check_url(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = check_host(host, port, policy, deadline.remaining())
        cls = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
        conn = cls(host, port, address, deadline)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        try:
            conn.request("GET", path, headers={"User-Agent": "LiveTutor", "Accept": "*/*"})
            response = conn.getresponse()
            if response.status in (301, 302, 303, 307, 308):
                location = response.getheader("Location")
                if not location:
                    raise DocumentRejected("a redirect without a Location")
                url = urljoin(url, location)
                continue
            if response.status >= 500 or response.status == 429:
                raise KnowledgeUnavailable(f"the server answered HTTP {response.status}")
            if response.status != 200:
                raise DocumentRejected(f"the server answered HTTP {response.status}")
            declared = response.getheader("Content-Length")
            if declared and declared.isdigit() and int(declared) > policy.max_bytes:
                raise DocumentRejected(f"the file is larger than {policy.max_bytes} bytes")
            body = _read_capped(response, policy.max_bytes)
        except TimeoutError:
            raise
        except (OSError, http.client.HTTPException) as exc:
            raise KnowledgeUnavailable(f"the fetch failed: {type(exc).__name__}") from exc
        finally:
            conn.close()
        if not looks_like_pdf(body):
            raise DocumentRejected("the URL did not return a PDF (no %PDF- header)")
        return body, url
    raise DocumentRejected(f"more than {policy.max_redirects} redirects")


def _read_capped(response: http.client.HTTPResponse, max_bytes: int) -> bytes:
    out = bytearray()
    while block := response.read(_READ_BLOCK):
        out += block
        if len(out) > max_bytes:
            raise DocumentRejected(f"the file is larger than {max_bytes} bytes")
    return bytes(out)
