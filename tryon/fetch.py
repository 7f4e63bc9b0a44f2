"""Fetching an image given by URL, without letting the URL reach what it should not.

Refused: anything but https; hosts that resolve to a non-public address
(loopback, private ranges, link-local such as the 169.254.169.254 metadata
service, CGNAT, multicast, reserved, IPv4-mapped forms of those); redirects
to any of those (every hop is checked again, at most 3 hops); bodies over the
byte limit; answers slower than the time limit. The connection goes to the
address that was checked (the URL's host is kept for TLS and the Host
header), so a DNS answer that changes between the check and the connection
cannot slip past it.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from typing import Callable
from urllib.parse import urljoin, urlsplit

import httpx

from .errors import ImageTooLarge, InvalidImage

Resolver = Callable[[str, int], list[str]]
MAX_REDIRECTS = 3


def system_resolver(host: str, port: int) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class SafeFetcher:
    def __init__(self, max_bytes: int, timeout_s: float = 10.0, resolver: Resolver = system_resolver,
                 allow: Callable[[str, str], bool] | None = None, verify: bool | ssl.SSLContext = True):
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.resolver = resolver
        self.allow = allow or (lambda host, address: is_public(address))
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=5.0), follow_redirects=False, verify=verify)

    def _pinned(self, url: str) -> tuple[httpx.URL, str]:
        parts = urlsplit(url)
        if parts.scheme.lower() != "https":
            raise InvalidImage("url_refused", reason="only https:// URLs are accepted")
        host = parts.hostname
        if not host:
            raise InvalidImage("url_refused", reason="the URL has no host")
        try:
            addresses = self.resolver(host, parts.port or 443)
        except (OSError, UnicodeError):
            raise InvalidImage("url_refused", reason=f"the host {host[:60]} does not resolve") from None
        if not addresses or not all(self.allow(host, a) for a in addresses):
            raise InvalidImage("url_refused", reason=f"the host {host[:60]} is not a public address")
        # Connect to the address just checked; the name stays for TLS (SNI, certificate) and Host.
        return httpx.URL(url).copy_with(host=addresses[0], port=parts.port or 443), host

    def fetch(self, url: str) -> bytes:
        deadline = time.monotonic() + self.timeout_s
        for _ in range(MAX_REDIRECTS + 1):
            pinned, host = self._pinned(url)
            port = urlsplit(url).port
            headers = {"Host": f"{host}:{port}" if port else host, "Accept": "image/*"}
            try:
                with self._client.stream("GET", pinned, headers=headers, extensions={"sni_hostname": host}) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers.get("location", ""))
                        continue
                    if response.status_code != 200:
                        raise InvalidImage("url_failed", reason=f"HTTP {response.status_code}")
                    declared = int(response.headers.get("content-length") or 0)
                    if declared > self.max_bytes:
                        raise ImageTooLarge("file_too_large", size_mb=declared / 2**20, limit_mb=self.max_bytes / 2**20)
                    chunks, size = [], 0
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise ImageTooLarge("file_too_large", size_mb=size / 2**20, limit_mb=self.max_bytes / 2**20)
                        if time.monotonic() > deadline:
                            raise InvalidImage("url_failed", reason=f"took longer than {self.timeout_s:g} s")
                        chunks.append(chunk)
                    return b"".join(chunks)
            except httpx.TimeoutException:
                raise InvalidImage("url_failed", reason=f"took longer than {self.timeout_s:g} s") from None
            except httpx.HTTPError as error:
                raise InvalidImage("url_failed", reason=type(error).__name__) from None
        raise InvalidImage("url_refused", reason=f"more than {MAX_REDIRECTS} redirects")
