"""Which names this server answers to: the Host allow-list against DNS rebinding
(docs/architecture.md §7), and the Origin/Referer comparison the CSRF check builds on.

A DNS-rebinding page is served from a name its owner controls (``evil.example``) that
later resolves to this machine, so the browser thinks the server is "same-origin" with
that page. The page can never choose the ``Host`` header: the browser sends the name
from the address bar. So a request is answered only when its ``Host`` is a name this
server is meant to be reached by (:meth:`HostPolicy.allows`):

- an IP literal, any address (``127.0.0.1``, ``[::1]``, ``192.168.1.20``): rebinding
  needs a DNS name, so a phone opening ``http://192.168.1.20:8787`` just works;
- ``localhost`` and ``*.localhost`` (browsers resolve those to loopback themselves);
- the name given with ``--host`` when it is a name;
- when bound to every interface (``0.0.0.0`` / ``::``), this machine's host name, its
  fully qualified name and ``<hostname>.local`` (mDNS);
- every name of ``--allowed-hosts`` (comma-separated; ``*.example.com`` for every
  subdomain; ``*`` turns the check off).

Any port is accepted. Behind ``--trust-proxy`` the name checked is the one the trusted
proxy forwards (``X-Forwarded-Host``), so a proxied name must be listed too. A refused
request answers 400 JSON naming the flag that would admit it. A request without a
``Host`` header (HTTP/1.0; never a browser) is accepted.
"""
from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})
MAX_NAME_IN_MESSAGE = 100
_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*)(?:\.[a-z0-9_-]+)*")   # ASCII (IDNs arrive as xn--)


def split_host(value: str) -> tuple[str, int | None] | None:
    """``"Name.Example.:8787"`` → ``("name.example", 8787)``; ``"[::1]"`` → ``("::1", None)``.

    Lower-cases the name and drops one trailing dot. None if ``value`` is not a valid
    ``host[:port]`` (empty name, bad port, stray characters).
    """
    try:
        parts = urlsplit("//" + value.strip())
        name, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not name or parts.path or parts.query or parts.fragment or parts.username is not None:
        return None
    name = name[:-1] if name.endswith(".") else name
    if not (_NAME.fullmatch(name) or is_ip_literal(name)):
        return None
    return name, port


def is_ip_literal(name: str) -> bool:
    """True for ``"10.0.0.1"`` or ``"::1"`` (a name from :func:`split_host`)."""
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def is_loopback_name(name: str) -> bool:
    """``localhost``, ``*.localhost`` or a loopback address (``127.0.0.0/8``, ``::1``)."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def own_host_names() -> set[str]:
    """This machine's names (host name, fully qualified name, ``<host>.local``), lower-case."""
    names = set()
    try:
        short = socket.gethostname().lower().rstrip(".")
        if short:
            names |= {short, short.split(".", 1)[0] + ".local"}
        fqdn = socket.getfqdn().lower().rstrip(".")
        if fqdn:
            names.add(fqdn)
    except OSError:
        pass
    return names


def parse_allowed_hosts(value: str) -> list[str]:
    """``"chat.example.com, *.lan:8787"`` → ``["chat.example.com", "*.lan"]`` (ports dropped,
    lower-case). Raises ``ValueError`` naming the first entry that is not a host name."""
    out = []
    for raw in value.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            out.append("*")
            continue
        wildcard = entry.startswith("*.")
        parsed = split_host(entry[2:] if wildcard else entry)
        if parsed is None or "*" in parsed[0]:
            raise ValueError(f"--allowed-hosts: {raw.strip()!r} is not a host name "
                             "(write names like chat.example.com or *.example.com, separated by commas)")
        out.append(("*." if wildcard else "") + parsed[0])
    return out


class HostPolicy:
    """The names one server answers to (see the module docstring).

    ``bind_host`` is ``--host``; ``allowed`` the entries of :func:`parse_allowed_hosts`;
    ``machine_names`` defaults to :func:`own_host_names` when bound to every interface.
    """

    def __init__(self, bind_host: str, allowed: list[str], machine_names: set[str] | None = None):
        self.allow_all = "*" in allowed
        self.names = {a for a in allowed if not a.startswith("*")}
        self.suffixes = tuple(a[1:] for a in allowed if a.startswith("*."))     # ".example.com"
        bound = split_host(bind_host if ":" not in bind_host or bind_host.startswith("[")
                           else f"[{bind_host}]")
        if bind_host.strip() in WILDCARD_BINDS:
            self.names |= own_host_names() if machine_names is None else machine_names
        elif bound is not None:
            self.names.add(bound[0])
        self._refused_logged: set[str] = set()
        self._lock = threading.Lock()

    def allows(self, name: str) -> bool:
        """True if a request whose Host names ``name`` (from :func:`split_host`) may be answered."""
        return (self.allow_all or is_ip_literal(name) or is_loopback_name(name)
                or name in self.names or name.endswith(self.suffixes))

    def refusal(self, host_header: str | None) -> str | None:
        """None if ``host_header`` (the raw ``Host`` value, None if absent) is acceptable,
        else the sentence to answer with (400)."""
        if host_header is None or self.allow_all:
            return None
        parsed = split_host(host_header)
        if parsed is None:
            return "the Host header of this request is not a valid host name"
        name = parsed[0]
        if self.allows(name):
            return None
        shown = name[:MAX_NAME_IN_MESSAGE]
        with self._lock:
            first = name not in self._refused_logged and len(self._refused_logged) < 100
            if first:
                self._refused_logged.add(name)
        if first:
            log.warning("refused a request for the unknown name %r (DNS rebinding guard); "
                        "if that name is yours, start with --allowed-hosts %s", shown, shown)
        return (f"this server is not reachable under the name '{shown}'; if that name is yours, "
                f"start it with --allowed-hosts {shown} to allow it")

    def origin_is_ours(self, origin: str, host_header: str | None) -> bool:
        """True if ``origin`` (an ``Origin`` value, or a ``Referer`` URL) is a page of this
        server as reached by this request: http(s), a name :meth:`allows` (an IP literal
        only if it is the request's own or a loopback address), and the request's port.

        ``host_header`` must already have passed :meth:`refusal`.
        """
        try:
            o = urlsplit(origin.strip())
            o_name, o_port = o.hostname, o.port
        except ValueError:
            return False
        if o.scheme not in ("http", "https") or not o_name:
            return False
        o_name = o_name[:-1] if o_name.endswith(".") else o_name
        default = 443 if o.scheme == "https" else 80
        here = split_host(host_header) if host_header else None
        if here is None:
            return False
        if (o_port or default) != (here[1] or default):
            return False
        if o_name == here[0]:
            return True
        if is_ip_literal(o_name):
            return is_loopback_name(o_name) and is_loopback_name(here[0])
        return not self.allow_all and self.allows(o_name)


def parse_trusted_proxies(value: str) -> list:
    """``"127.0.0.1, ::1, 10.0.0.0/8"`` → a list of ``ipaddress`` networks.
    Raises ``ValueError`` naming an entry that is not an address or network."""
    out = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            continue
        try:
            out.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"--trusted-proxies: {entry!r} is not an IP address or network "
                             "(write e.g. 127.0.0.1,::1,10.0.0.0/8)") from None
    return out


class TrustedProxyMiddleware:
    """WSGI: apply ``X-Forwarded-For/-Proto/-Host`` (werkzeug's ProxyFix, ``hops`` deep)
    only on connections whose peer address is in ``trusted`` (a list of networks);
    on every other connection those headers are removed, so a client that reaches the
    port directly cannot pick its own address, scheme or host.
    """

    FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
                 "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_PREFIX", "HTTP_FORWARDED")

    def __init__(self, app, trusted: list, hops: int = 1):
        self.app = app
        self.trusted = trusted
        from werkzeug.middleware.proxy_fix import ProxyFix  # the web layer, only when behind a proxy

        self.proxied = ProxyFix(app, x_for=hops, x_proto=hops, x_host=hops)

    def _is_trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in net for net in self.trusted)

    def __call__(self, environ, start_response):
        if self._is_trusted(environ.get("REMOTE_ADDR") or ""):
            return self.proxied(environ, start_response)
        for key in self.FORWARDED:
            environ.pop(key, None)
        return self.app(environ, start_response)
