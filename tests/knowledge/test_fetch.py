"""URL prefetch under the SSRF rules, against a real HTTP server on loopback."""

from __future__ import annotations

import ipaddress
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import DocumentRejected, FetchRefused, KnowledgeUnavailable
from knowledge.fetch import FetchPolicy, fetch_pdf, forbidden
from tests.support.files import Route, file_server
from tests.support.pdfs import HARBOUR_FACTS, make_pdf
from tests.support.trickle import trickle_server

PDF = make_pdf(HARBOUR_FACTS)
HEAD = f"HTTP/1.1 200 OK\r\nContent-Length: {len(PDF)}\r\n\r\n".encode()
# Far above the deadlines below, far below what a trickled response would take.
MARGIN_S = 4.0

# Not globally routable, or a path from IPv6 to an IPv4 address somewhere else.
NOT_GLOBAL_V6 = [
    "2002::/16",  # 6to4
    "2001::/32",  # Teredo
    "64:ff9b::/96",  # NAT64
    "64:ff9b:1::/48",  # local-use NAT64
    "fec0::/10",  # site-local
    "fc00::/7",  # unique-local
    "fe80::/10",  # link-local
    "ff00::/8",  # multicast
    "::/128",  # unspecified
    "::1/128",  # loopback
    "2001:db8::/32",  # documentation
    "3fff::/20",  # documentation
    "2001:2::/48",  # benchmarking
    "100::/64",  # discard-only
    "::/96",  # IPv4-compatible
    "::ffff:127.0.0.0/104",  # IPv4-mapped loopback
    "::ffff:10.0.0.0/104",  # IPv4-mapped private
    "::ffff:169.254.0.0/112",  # IPv4-mapped link-local and metadata
    "::ffff:100.64.0.0/106",  # IPv4-mapped shared
]
# Large allocated unicast blocks with no special-purpose range inside.
GLOBAL = [
    "1.0.0.0/8",
    "8.0.0.0/7",
    "23.0.0.0/8",
    "80.0.0.0/4",
    "104.0.0.0/6",
    "185.0.0.0/8",
    "2400::/6",
    "2a00::/7",
    "2001:4860::/32",
]


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "metadata"),
        ("10.0.0.1", "private"),
        ("192.168.1.5", "private"),
        ("172.16.0.1", "private"),
        ("169.254.10.10", "link-local"),
        ("100.64.0.1", "non-public"),
        ("0.0.0.0", "unspecified"),
        ("::ffff:127.0.0.1", "loopback"),
        ("fe80::1", "link-local"),
    ],
)
def test_internal_addresses_are_forbidden(address: str, why: str) -> None:
    """Loopback, private, link-local, shared and metadata addresses are never fetched."""
    reason = forbidden(ipaddress.ip_address(address))
    assert reason is not None and why in reason


def test_public_addresses_are_allowed() -> None:
    """An ordinary public address passes."""
    assert forbidden(ipaddress.ip_address("93.184.216.34")) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/guide.pdf",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/guide.pdf",
        "http://localhost:{port}/guide.pdf",
        "http://[::1]:{port}/guide.pdf",
    ],
    ids=["loopback", "metadata", "private", "name-resolving-to-loopback", "ipv6-loopback"],
)
def test_refused_without_a_request(url: str) -> None:
    """Internal targets are refused before any connection is made."""
    with file_server() as files:
        files.routes["/guide.pdf"] = Route(body=PDF)
        with pytest.raises(FetchRefused):
            fetch_pdf(url.format(port=files.port), FetchPolicy(timeout_s=5))
        assert files.hits == []


def test_allowlisted_host_is_fetched() -> None:
    """An allowlisted host name may be fetched although it is loopback."""
    with file_server() as files:
        files.routes["/guide.pdf"] = Route(body=PDF)
        body, final = fetch_pdf(files.url("/guide.pdf", "localhost"), FetchPolicy(("localhost",)))
    assert body == PDF and final.endswith("/guide.pdf")


def test_allowlisted_cidr_is_fetched() -> None:
    """An allowlisted CIDR admits the addresses inside it."""
    with file_server() as files:
        files.routes["/guide.pdf"] = Route(body=PDF)
        body, _ = fetch_pdf(files.url("/guide.pdf"), FetchPolicy(("127.0.0.0/8",)))
    assert body == PDF


@pytest.mark.parametrize(
    "target",
    ["http://127.0.0.1:{port}/guide.pdf", "http://169.254.169.254/", "http://10.0.0.1/x.pdf"],
)
def test_redirect_to_an_internal_address_is_refused(target: str) -> None:
    """Every redirect is checked again: an allowed host cannot bounce the fetch inside."""
    with file_server() as files:
        files.routes["/guide.pdf"] = Route(body=PDF)
        files.routes["/go"] = Route(302, location=target.format(port=files.port))
        with pytest.raises(FetchRefused):
            fetch_pdf(files.url("/go", "localhost"), FetchPolicy(("localhost",), timeout_s=5))
        assert files.hits == ["/go"]


def test_redirects_within_the_allowlist_are_followed_up_to_the_cap() -> None:
    """Allowed redirects are followed; a loop ends at the redirect cap."""
    with file_server() as files:
        files.routes["/guide.pdf"] = Route(body=PDF)
        files.routes["/a"] = Route(301, location="/guide.pdf")
        files.routes["/loop"] = Route(302, location="/loop")
        policy = FetchPolicy(("localhost",), max_redirects=3)
        assert fetch_pdf(files.url("/a", "localhost"), policy)[0] == PDF
        with pytest.raises(DocumentRejected, match="more than 3 redirects"):
            fetch_pdf(files.url("/loop", "localhost"), policy)


def test_size_type_and_status_are_checked() -> None:
    """Too big, not a PDF, 404 are permanent; 503 is transient."""
    with file_server() as files:
        files.routes["/big.pdf"] = Route(body=PDF + b" " * 10_000)
        files.routes["/page.html"] = Route(body=b"<html></html>")
        files.routes["/busy.pdf"] = Route(503, b"busy")
        policy = FetchPolicy(("localhost",), max_bytes=len(PDF) + 100)
        with pytest.raises(DocumentRejected, match="larger than"):
            fetch_pdf(files.url("/big.pdf", "localhost"), policy)
        with pytest.raises(DocumentRejected, match="did not return a PDF"):
            fetch_pdf(files.url("/page.html", "localhost"), policy)
        with pytest.raises(DocumentRejected, match="HTTP 404"):
            fetch_pdf(files.url("/missing.pdf", "localhost"), policy)
        with pytest.raises(KnowledgeUnavailable, match="HTTP 503"):
            fetch_pdf(files.url("/busy.pdf", "localhost"), policy)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x.pdf", "http://u:p@x/"])
def test_other_schemes_and_credentials_are_refused(url: str) -> None:
    """Only plain http(s) URLs without credentials are fetched."""
    with pytest.raises(DocumentRejected):
        fetch_pdf(url, FetchPolicy())


@given(st.sampled_from(NOT_GLOBAL_V6).flatmap(lambda net: st.ip_addresses(v=6, network=net)))
def test_ipv6_that_is_not_globally_routable_is_forbidden(address: ipaddress.IPv6Address) -> None:
    """Transition (6to4, Teredo, NAT64), site-local and other special IPv6 addresses are refused."""
    assert forbidden(address) is not None


@given(st.sampled_from(GLOBAL).flatmap(lambda net: st.ip_addresses(network=net)))
def test_globally_routable_addresses_pass_the_address_check(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    """Ordinary public IPv4 and IPv6 addresses, and IPv4 written as IPv6, are allowed."""
    assert forbidden(address) is None
    if address.version == 4:
        assert forbidden(ipaddress.IPv6Address(f"::ffff:{address}")) is None


@pytest.mark.parametrize(
    "host",
    ["2002:7f00:1::", "2002:a9fe:a9fe::1", "2001:0:7f00:1::1", "64:ff9b::7f00:1", "fec0::1"],
    ids=["6to4-loopback", "6to4-metadata", "teredo", "nat64-loopback", "site-local"],
)
def test_transition_and_site_local_urls_are_refused(host: str) -> None:
    """A URL naming a 6to4, Teredo, NAT64 or site-local address is refused, not tried."""
    with pytest.raises(FetchRefused):
        fetch_pdf(f"http://[{host}]/guide.pdf", FetchPolicy(timeout_s=5))


def test_a_trickled_body_is_cut_off_at_the_deadline() -> None:
    """A server sending the body a byte at a time cannot hold a fetch past its deadline."""
    with trickle_server(HEAD + PDF, at_once=len(HEAD), pause_s=0.2) as slow:
        started = time.monotonic()
        with pytest.raises(DocumentRejected, match="took longer than 1 s"):
            fetch_pdf(slow.url(), FetchPolicy(("localhost",), timeout_s=1))
        assert time.monotonic() - started < 1 + MARGIN_S


def test_trickled_headers_are_cut_off_at_the_deadline() -> None:
    """A server sending its status line and headers a byte at a time is cut off at the deadline."""
    with trickle_server(HEAD + PDF, pause_s=0.2) as slow:
        started = time.monotonic()
        with pytest.raises(DocumentRejected, match="took longer than 1 s"):
            fetch_pdf(slow.url(), FetchPolicy(("localhost",), timeout_s=1))
        assert time.monotonic() - started < 1 + MARGIN_S
