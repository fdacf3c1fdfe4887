"""Proxies from the environment, as httpx's own client reads them (HTTP_PROXY, HTTPS_PROXY,
ALL_PROXY, NO_PROXY, in either case): which one a URL goes through, its credentials as a
header. Through a proxy, the proxy resolves names and makes the connection (pools.py)."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiohttp
import httpx


@dataclass(frozen=True, slots=True)
class Proxy:
    url: str  # without credentials
    headers: tuple[tuple[str, str], ...]  # Proxy-Authorization, from the URL's credentials


class Proxies:
    """The proxies of the environment, read once, and which URLs bypass them."""

    def __init__(self) -> None:
        self._env = urllib.request.getproxies_environment()
        self._proxies: dict[str, Proxy | None] = {}

    def for_url(self, url: httpx.URL) -> Proxy | None:
        configured = self._env.get(url.scheme) or self._env.get("all")
        if not configured:
            return None
        host = url.host if url.port is None else f"{url.host}:{url.port}"
        if urllib.request.proxy_bypass(host):  # NO_PROXY
            return None
        if configured not in self._proxies:
            self._proxies[configured] = parse_proxy(configured)
        proxy = self._proxies[configured]
        if proxy is None:
            raise httpx.ProxyError(f"{url.scheme} proxy of the environment is not an http(s) URL")
        return proxy


def parse_proxy(value: str) -> Proxy | None:
    """An http(s) proxy URL without its credentials, which go in a header; None if it is not
    one (a socks:// proxy, which aiohttp cannot speak)."""
    parts = urlsplit(value if "://" in value else f"http://{value}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    headers: tuple[tuple[str, str], ...] = ()
    if parts.username is not None:
        login, password = unquote(parts.username), unquote(parts.password or "")
        headers = (("Proxy-Authorization", aiohttp.encode_basic_auth(login, password)),)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return Proxy(f"{parts.scheme}://{netloc}", headers)
