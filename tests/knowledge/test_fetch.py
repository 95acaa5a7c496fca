"""URL prefetch under the SSRF rules, against a real HTTP server on loopback."""

from __future__ import annotations

import ipaddress

import pytest

from core.errors import DocumentRejected, FetchRefused, KnowledgeUnavailable
from knowledge.fetch import FetchPolicy, fetch_pdf, forbidden
from tests.support.files import Route, file_server
from tests.support.pdfs import HARBOUR_FACTS, make_pdf

PDF = make_pdf(HARBOUR_FACTS)


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
