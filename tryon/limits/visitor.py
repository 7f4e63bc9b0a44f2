"""A visitor: the signed-in Hugging Face user, else the API key, else the client's address.

The identity is what quotas are counted against, so it must be one a caller cannot change at will:
an address is read from X-Forwarded-For only when the peer is a proxy we trust
(TRYON_TRUSTED_PROXIES), and an API key counts only once it has been checked. What reaches Redis
is a digest of the identity, never a key or an address in clear.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field

from ..config import Network

KINDS = ("signed_in", "api_key", "anonymous")


@dataclass(frozen=True)
class Visitor:
    kind: str  # "signed_in" | "api_key" | "anonymous" (the quota that applies)
    id: str = field(repr=False)  # the HF user name, "key:<digest>", "login:<user>", or the client address
    # A FAL key the visitor brought for this session: their requests run on it and are not counted.
    own_fal_key: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def signed_in(cls, username: str) -> "Visitor":
        return cls("signed_in", f"hf:{username}")

    @classmethod
    def with_api_key(cls, key: str) -> "Visitor":
        return cls("api_key", "key:" + hashlib.sha256(key.encode()).hexdigest())

    @classmethod
    def logged_in(cls, username: str) -> "Visitor":
        """A gradio login (TRYON_AUTH, or an API key as the password): credentialed, like a key."""
        return cls("api_key", f"login:{username}")

    @classmethod
    def from_address(cls, address: str) -> "Visitor":
        """An IPv6 visitor is their /64: one subscriber holds a whole /64 and could rotate through it."""
        parsed = _parse_ip(address)
        if isinstance(parsed, ipaddress.IPv6Address):
            address = str(ipaddress.ip_network(f"{parsed}/64", strict=False))
        return cls("anonymous", f"ip:{address}")

    def bringing(self, own_fal_key: str | None) -> "Visitor":
        key = (own_fal_key or "").strip() or None
        return Visitor(self.kind, self.id, key)

    @property
    def key(self) -> str:
        """The Redis name of this visitor: a digest, so no address or user name is stored in clear."""
        return f"{self.kind}:{hashlib.sha256(self.id.encode()).hexdigest()[:32]}"

    @property
    def pays_own_way(self) -> bool:
        return self.own_fal_key is not None


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip().strip('"')
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # ::ffff:10.1.2.3 is 10.1.2.3 (a dual-stack socket's view of an IPv4 peer).
    return address.ipv4_mapped or address if isinstance(address, ipaddress.IPv6Address) else address


def _trusted(address, proxies: tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in proxies)


def client_address(peer: str | None, forwarded_for: str | None, proxies: tuple[Network, ...]) -> str:
    """The client's address. X-Forwarded-For is believed only from a trusted peer, and then read from
    the right: each trusted proxy appended the address it saw, so the first untrusted one from the
    right is the client (anything left of it the client may have written itself)."""
    peer_ip = _parse_ip(peer or "")
    if peer_ip is None:
        return peer or "unknown"
    if not forwarded_for or not _trusted(peer_ip, proxies):
        return str(peer_ip)
    hops = [_parse_ip(part) for part in forwarded_for.split(",")]
    client = peer_ip
    for hop in reversed(hops):
        if hop is None:  # garbage in the header: stop at the last address a trusted proxy vouched for
            break
        client = hop
        if not _trusted(hop, proxies):
            break
    return str(client)
