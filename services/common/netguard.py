"""Webhook targets: which URLs Timbr may call, so a webhook cannot reach the inside network.

A URL is refused unless it is http(s) with a host, and, unless private targets are allowed
(``TIMBR_WEBHOOK_ALLOW_PRIVATE``, on for ``make run``), every address its host resolves to is
public: loopback, link-local (cloud metadata at 169.254.169.254), private, shared (CGNAT),
multicast, reserved and unspecified ranges are refused. The dispatcher connects to an address
checked here, not to a second resolution, so DNS rebinding cannot swap it afterwards.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2000


class TargetRefused(ValueError):
    """The URL may not be called."""


class Unresolvable(TargetRefused):
    """The host does not resolve (now): refused when the URL is set, retried at delivery."""


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_syntax(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an acceptable URL, or ``TargetRefused``."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("the URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise TargetRefused("the URL must not carry credentials")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def resolve(url: str, allow_private: bool) -> list[str]:
    """The addresses the URL's host resolves to, all allowed; ``TargetRefused`` otherwise."""
    _, host, port = check_syntax(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolvable(f"the host {host!r} does not resolve") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not allow_private:
        for address in addresses:
            if not _public(ipaddress.ip_address(address.split("%", 1)[0])):
                raise TargetRefused(f"the host {host!r} resolves to {address}, a loopback, link-local or "
                                    "private address; webhooks go to public addresses only")
    return addresses
