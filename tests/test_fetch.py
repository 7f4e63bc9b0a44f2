"""Image URLs are fetched safely: https only, public addresses only (after DNS and redirects), limits."""

from __future__ import annotations

import ssl

import pytest

from conftest import FAL_CERT, encode
from synthetic import draw_garment
from tryon.errors import ImageTooLarge, InvalidImage
from tryon.fetch import SafeFetcher, is_public


def refused(url: str, fetcher: SafeFetcher | None = None) -> InvalidImage:
    with pytest.raises(InvalidImage) as caught:
        (fetcher or SafeFetcher(max_bytes=2**20)).fetch(url)
    return caught.value


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://example.com/a.jpg", "only https:// URLs are accepted"),
        ("ftp://example.com/a.jpg", "only https:// URLs are accepted"),
        ("https://127.0.0.1/a.jpg", "is not a public address"),
        ("https://localhost/a.jpg", "is not a public address"),
        ("https://10.1.2.3/a.jpg", "is not a public address"),
        ("https://192.168.0.10/a.jpg", "is not a public address"),
        ("https://172.16.5.4/a.jpg", "is not a public address"),
        ("https://169.254.169.254/latest/meta-data/", "is not a public address"),
        ("https://100.64.0.1/a.jpg", "is not a public address"),
        ("https://[::1]/a.jpg", "is not a public address"),
        ("https://[fe80::1]/a.jpg", "is not a public address"),
        ("https://[::ffff:127.0.0.1]/a.jpg", "is not a public address"),
        ("https://0.0.0.0/a.jpg", "is not a public address"),
        ("https:///nohost", "no host"),
    ],
)
def test_refusals(url, reason):
    error = refused(url)
    assert error.code == "url_refused" and reason in str(error)


def test_public_addresses_are_recognised():
    assert is_public("93.184.216.34") and is_public("2606:4700::1111")
    assert not is_public("127.0.0.1") and not is_public("224.0.0.1") and not is_public("::ffff:10.0.0.1")


def test_a_name_that_resolves_to_a_private_address_is_refused():
    fetcher = SafeFetcher(max_bytes=2**20, resolver=lambda host, port: ["10.0.0.7"])
    assert "is not a public address" in str(refused("https://images.example.com/a.jpg", fetcher))


def test_a_name_with_any_private_answer_is_refused():
    fetcher = SafeFetcher(max_bytes=2**20, resolver=lambda host, port: ["93.184.216.34", "127.0.0.1"])
    assert "is not a public address" in str(refused("https://mixed.example.com/a.jpg", fetcher))


@pytest.fixture
def public_test_host(fal_server):
    """A fetcher that treats cdn.public.test (really the FAL test server) as a public host, and nothing else."""
    def resolver(host, port):
        return ["127.0.0.1"]  # every name lands on the test server; allow() decides what counts as public

    def allow(host, address):
        return host == "cdn.public.test" or is_public(address)

    def make(**kwargs):
        trust = ssl.create_default_context(cafile=str(FAL_CERT))
        return SafeFetcher(resolver=resolver, allow=allow, verify=trust, **{"max_bytes": 2**20, **kwargs})

    return make


def test_fetching_from_a_public_host_works_and_pins_the_checked_address(public_test_host, fal_server):
    data = encode(draw_garment("tshirt"))
    url = fal_server.store(data, "image/png").replace("127.0.0.1", "cdn.public.test")
    assert public_test_host().fetch(url) == data
    seen = fal_server.received("GET", "/files/")[-1]
    assert seen.headers["host"].startswith("cdn.public.test")


def test_a_redirect_to_a_private_address_is_refused(public_test_host, fal_server):
    port = fal_server.port
    hop = f"https://cdn.public.test:{port}/redirect?to=https://127.0.0.1:{port}/files/x.jpg"
    error = refused(hop, public_test_host())
    assert "127.0.0.1 is not a public address" in str(error)


def test_a_redirect_to_plain_http_is_refused(public_test_host, fal_server):
    hop = f"https://cdn.public.test:{fal_server.port}/redirect?to=http://cdn.public.test/a.jpg"
    assert "only https" in str(refused(hop, public_test_host()))


def test_a_body_over_the_limit_is_refused(public_test_host, fal_server):
    url = fal_server.store(b"\xff" * 5000, "image/jpeg").replace("127.0.0.1", "cdn.public.test")
    with pytest.raises(ImageTooLarge):
        public_test_host(max_bytes=1000).fetch(url)


def test_a_slow_answer_is_cut_off(public_test_host, fal_server):
    error = refused(f"https://cdn.public.test:{fal_server.port}/slow?s=3", public_test_host(timeout_s=1.0))
    assert error.code == "url_failed" and "longer than 1 s" in str(error)


def test_a_missing_file(public_test_host, fal_server):
    error = refused(f"https://cdn.public.test:{fal_server.port}/files/none.jpg", public_test_host())
    assert error.code == "url_failed" and "HTTP 404" in str(error)
