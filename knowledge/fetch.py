"""Fetching a PDF by URL without letting the URL reach inside the network (SSRF).

Every hop is checked before it is requested: the scheme is http(s); the host
name is resolved once and every address it resolves to must be public (not
loopback, private, link-local, shared, multicast, reserved, or a cloud metadata
address) unless a ``LIVETUTOR_FETCH_ALLOWLIST`` entry (host name or CIDR) allows
it; the connection then goes to the checked address itself, so a DNS answer
that changes between check and connect cannot slip through. Redirects are
followed by hand, each one checked the same way. Size and time are capped and
the body must start like a PDF.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from core.errors import DocumentRejected, FetchRefused, KnowledgeUnavailable
from knowledge.pdf import looks_like_pdf

_METADATA = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
}
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


def forbidden(address: IPAddress) -> str | None:
    """Why an address must not be fetched from, or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return forbidden(address.ipv4_mapped)
    if address in _METADATA:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    if address.is_multicast or address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "a non-public address"
    return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DocumentRejected(f"the host {host!r} does not resolve") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def check_host(host: str, port: int, policy: FetchPolicy) -> IPAddress:
    """The address to connect to; :class:`FetchRefused` if any resolved address is forbidden."""
    addresses = resolve(host, port)
    if not addresses:
        raise DocumentRejected(f"the host {host!r} does not resolve")
    if policy.allows_host(host):
        return addresses[0]
    for address in addresses:
        why = forbidden(address)
        if why and not policy.allows_address(address):
            raise FetchRefused(f"refused to fetch from {host}: it resolves to {why}")
    return addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: IPAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = str(address)

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: IPAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = str(address)

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def fetch_pdf(url: str, policy: FetchPolicy) -> tuple[bytes, str]:
    """The PDF at ``url`` and the final URL; :class:`DocumentRejected` when refused."""
    deadline = time.monotonic() + policy.timeout_s
    for _ in range(policy.max_redirects + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DocumentRejected("only http and https URLs can be fetched")
        if parts.username or parts.password:
            raise DocumentRejected("URLs with credentials are not fetched")
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = check_host(host, port, policy)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DocumentRejected(f"the fetch took longer than {policy.timeout_s:g} s")
        cls = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
        conn = cls(host, port, address, timeout=remaining)
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
            body = _read_capped(_blocks(response, deadline, policy), policy.max_bytes)
        except TimeoutError:
            raise DocumentRejected(f"the fetch took longer than {policy.timeout_s:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            raise KnowledgeUnavailable(f"the fetch failed: {type(exc).__name__}") from exc
        finally:
            conn.close()
        if not looks_like_pdf(body):
            raise DocumentRejected("the URL did not return a PDF (no %PDF- header)")
        return body, url
    raise DocumentRejected(f"more than {policy.max_redirects} redirects")


def _blocks(
    response: http.client.HTTPResponse, deadline: float, policy: FetchPolicy
) -> Iterable[bytes]:
    while True:
        if time.monotonic() > deadline:
            raise DocumentRejected(f"the fetch took longer than {policy.timeout_s:g} s")
        block = response.read(_READ_BLOCK)
        if not block:
            return
        yield block


def _read_capped(blocks: Iterable[bytes], max_bytes: int) -> bytes:
    out = bytearray()
    for block in blocks:
        out += block
        if len(out) > max_bytes:
            raise DocumentRejected(f"the file is larger than {max_bytes} bytes")
    return bytes(out)
