"""How private an address is, and which addresses a fetch may reach.

A feed's publisher controls its redirects and its DNS, so without a check a feed could make the
daemon fetch the cloud metadata service or an admin page on the LAN and publish the answer.
The rule: no hop of a fetch reaches an address more private than the one its source's URL
names. Classes, from most public to most private:

    public      everything globally routable
    private     RFC 1918, CGNAT 100.64/10, ULA fc00::/7, and other non-global space
    loopback    127/8, ::1, 0.0.0.0 (which Linux connects to the local host)
    link-local  169.254/16, fe80::/10, and the cloud metadata addresses (even fd00:ec2::254)

Metadata addresses need more than a link-local source: only a source whose own URL names one
may reach one. A host name in a source URL names `public` unless it is a local name
(`localhost` is loopback; single-label names and the LAN suffixes below are private).
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

IPAddress = IPv4Address | IPv6Address


class AddressClass(IntEnum):
    """Ordered from most public to most private."""

    PUBLIC = 0
    PRIVATE = 1
    LOOPBACK = 2
    LINK_LOCAL = 3

    def __str__(self) -> str:
        return self.name.lower().replace("_", "-")


# AWS, GCP, Azure and OCI (also AWS's IPv6 one, which sits in ULA space), AWS ECS task
# metadata, Alibaba (which sits in CGNAT space).
METADATA: frozenset[IPAddress] = frozenset(
    ip_address(address)
    for address in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200")
)
_THIS_HOST = IPv4Network("0.0.0.0/8")
# What inet_aton can read at all: it would also take "1.2.3.4 anything" (glibc).
_INET_ATON = re.compile(r"[0-9a-fA-FxX.]+")
_NAT64 = IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = IPv6Network("::/96")
# Names people give LAN hosts: mDNS, RFC 8375, ICANN's .internal, and the customary ones.
_LAN_SUFFIXES = (
    ".local",
    ".lan",
    ".home.arpa",
    ".internal",
    ".intranet",
    ".localdomain",
    ".home",
    ".corp",
    ".private",
)


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one reaches through mapping, 6to4, NAT64 or compat form."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def classify(address: IPAddress) -> AddressClass:
    """The class of one address; IPv6 forms that carry an IPv4 address take its class."""
    if isinstance(address, IPv6Address):
        # The zone of fe80::1%eth0 says which interface, not what the address is.
        address = IPv6Address(int(address))
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return classify(embedded)
        if address.is_site_local:
            return AddressClass.PRIVATE
    if address in METADATA or address.is_link_local:
        return AddressClass.LINK_LOCAL
    if address.is_loopback or address.is_unspecified or address in _THIS_HOST:
        return AddressClass.LOOPBACK
    if address.is_global and not address.is_multicast:
        return AddressClass.PUBLIC
    return AddressClass.PRIVATE


def is_metadata(address: IPAddress) -> bool:
    if isinstance(address, IPv6Address):
        address = IPv6Address(int(address))
        address = _embedded_ipv4(address) or address
    return address in METADATA


def literal(host: str) -> IPAddress | None:
    """The address a URL host spells, in any form the system resolver takes as numeric.

    `2852039166`, `0xa9fea9fe` and `0251.254.43518` are all 169.254.169.254 to inet_aton, which
    getaddrinfo uses for numeric hosts, so they are read here with the same function.
    """
    host = host.strip("[]").replace("%25", "%", 1)
    if host.endswith("."):
        host = host[:-1]
    try:
        return ip_address(host)
    except ValueError:
        pass
    if not _INET_ATON.fullmatch(host):
        return None
    try:
        return IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def spell(address: IPAddress) -> str:
    """An address as a user reads it: ::ffff:169.254.169.254 rather than ::ffff:a9fe:a9fe."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def name_class(host: str) -> AddressClass:
    """The class a host name names by itself, before any DNS answer."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return AddressClass.LOOPBACK
    if "." not in name or name.endswith(_LAN_SUFFIXES):
        return AddressClass.PRIVATE
    return AddressClass.PUBLIC


@dataclass(frozen=True, slots=True)
class Reach:
    """What one fetch may connect to, set by its source's URL."""

    limit: AddressClass  # the most private class allowed
    metadata: bool = False  # the source's URL itself names a cloud metadata address

    @classmethod
    def of(cls, host: str, *, private_network: bool = False) -> Reach:
        """The reach of a source whose URL names `host`; `private_network`: the source may
        reach private and loopback addresses too (its config says so)."""
        address = literal(host)
        reach = (
            cls(name_class(host))
            if address is None
            else cls(classify(address), is_metadata(address))
        )
        if private_network and reach.limit < AddressClass.LOOPBACK:
            return cls(AddressClass.LOOPBACK, reach.metadata)
        return reach

    def refuses(self, address: IPAddress) -> str | None:
        """What `address` is ("a loopback address") when this reach may not go there."""
        kind = classify(address)
        if kind > self.limit:
            return f"a {kind} address"
        if not self.metadata and is_metadata(address):
            return "a cloud metadata address"
        return None

    def refuses_host(self, host: str) -> str | None:
        """Why a URL naming `host` is out of reach ("a link-local address (169.254.169.254)").

        Only what the URL itself says: an ordinary host name passes here and its DNS answer
        is checked when a connection is made.
        """
        address = literal(host)
        if address is not None:
            what = self.refuses(address)
            return f"{what} ({spell(address)})" if what else None
        kind = name_class(host)
        return f"a {kind} host ({host})" if kind > self.limit else None

    def __str__(self) -> str:
        return f"a {self.limit} source"
