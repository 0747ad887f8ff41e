"""Which network addresses the crawler may connect to (server-side request forgery).

Feeds and sitemaps name whatever URLs they like, so a hostile one can point the crawler at
this machine (127.0.0.1, `localhost`, `2130706433`, `0x7f.1`), the local network, or a cloud
metadata service (169.254.169.254). By default the crawler refuses every address that is
not a public unicast one: loopback, private (RFC 1918, fc00::/7), link-local, CGNAT
(100.64.0.0/10), multicast, unspecified, IPv4-mapped IPv6 and the other reserved ranges.

`crawl.allow_private_addresses` opts in: `true` (everything), or a list of entries, each a
host name (`localhost`), an address or CIDR range (`10.1.0.0/16`, `::1`), or either with a
port (`127.0.0.1:8080`, `[::1]:8080`, `intranet.example:8443`).

The check is pure here; `tasks.crawl.fetch` applies it to the address actually connected
to (docs/security.md says why that is the place).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
OPT_IN = "crawl.allow_private_addresses opts in"


def address_kind(ip: IPAddress) -> str | None:
    """What makes an address non-public ("a loopback address"), or None for a public one."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return "an IPv4-mapped IPv6 address"
    checks: tuple[tuple[bool, str], ...] = (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT,
         "a shared (CGNAT, 100.64.0.0/10) address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved or not ip.is_global, "a reserved address"),
    )
    return next((why for hit, why in checks if hit), None)


@dataclass(frozen=True)
class AllowEntry:
    """One `crawl.allow_private_addresses` entry: a host name or a network, maybe a port."""

    name: str | None = None
    network: IPNetwork | None = None
    port: int | None = None

    def matches(self, host: str, ip: IPAddress, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return ip in self.network or (
                isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None
                and ip.ipv4_mapped in self.network)
        return self.name == host.lower().rstrip(".").strip("[]")


def parse_allow_entry(text: str) -> AllowEntry:
    """An entry of `crawl.allow_private_addresses`; ValueError says what is wrong."""
    entry = text.strip()
    if not entry:
        raise ValueError("an empty entry")
    host, port = entry, None
    if entry.startswith("["):  # [v6] or [v6]:port
        inside, _, rest = entry[1:].partition("]")
        host = inside
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r}: write an IPv6 address with a port as [::1]:8080")
            port = _port(text, rest[1:])
    elif entry.count(":") == 1:  # host:port or v4:port (a bare v6 has several colons)
        host, _, number = entry.partition(":")
        port = _port(text, number)
    try:
        return AllowEntry(network=ipaddress.ip_network(host, strict=False), port=port)
    except ValueError:
        pass
    name = host.lower().rstrip(".")
    if not name or "/" in name or any(c.isspace() for c in name):
        raise ValueError(f"{text!r} is not a host, host:port or CIDR range")
    return AllowEntry(name=name, port=port)


def _port(text: str, number: str) -> int:
    if not number.isdigit() or not 0 < int(number) < 65536:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return int(number)


@dataclass(frozen=True)
class AddressPolicy:
    """The crawler's rule for peer addresses: public ones, plus what the config allows."""

    allow_all: bool = False
    entries: tuple[AllowEntry, ...] = ()

    @classmethod
    def from_setting(cls, setting: bool | Sequence[str]) -> AddressPolicy:
        if isinstance(setting, bool):
            return cls(allow_all=setting)
        return cls(entries=tuple(parse_allow_entry(e) for e in setting))

    def refusal(self, host: str, ip: IPAddress, port: int) -> str | None:
        """Why connecting to `ip` (resolved from `host`) is refused, or None when allowed."""
        kind = address_kind(ip)
        if kind is None or self.allow_all:
            return None
        if any(entry.matches(host, ip, port) for entry in self.entries):
            return None
        return f"refused: {ip} is {kind}; {OPT_IN}"
