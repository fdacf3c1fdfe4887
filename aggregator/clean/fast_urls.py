"""urllib's answers for the plain shapes of URL, at a fraction of urllib's cost.

An article holds dozens of links and images, each split, joined and stripped of tracking
parameters by urllib, whose pure-Python parsing is most of the clean stage's per-link time (its
split cache holds 128 URLs, and an article's URLs are new). Each helper here answers only for
URLs where its result is provably the one urllib gives (lowercase http(s) scheme, plain ASCII
host, no characters urllib removes or rejects), and returns None for the rest, which the caller
hands to urllib as before.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import SplitResult

from aggregator.urls import is_web_parts, is_web_url

# urlsplit removes tab, CR and LF anywhere, and checks hosts with brackets (IPv6), @ (userinfo)
# or non-ASCII characters: none of them take this path, nor an empty host (urlunsplit does not
# restore the "//" before a path starting with "//" then).
_WEB_URL = re.compile(
    r"(https?)://([-A-Za-z0-9._~%!$&'()*+,;=:]+)((?:/[^?#\t\r\n]*)?)"
    r"(?:\?([^#\t\r\n]*))?(?:#([^\t\r\n]*))?",
    re.DOTALL,
)
# A query urlencode(parse_qsl(query)) gives back unchanged: name=value pairs of characters
# that neither unquoting nor quote_plus touches.
_PAIR = "[-A-Za-z0-9_.~]*=[-A-Za-z0-9_.~]*"
_PLAIN_QUERY = re.compile(f"{_PAIR}(?:&{_PAIR})*")
_SAFE_SCHEMES = ("http", "https")


@lru_cache(maxsize=512)  # an article's base URL is split for each of its relative URLs
def split_web(url: str) -> SplitResult | None:
    """urlsplit(url) for a plain http(s) URL, else None."""
    match = _WEB_URL.fullmatch(url)
    if match is None:
        return None
    scheme, netloc, path, query, fragment = match.groups()
    return SplitResult(scheme, netloc, path, query or "", fragment or "")


def is_web(url: str) -> bool:
    """aggregator.urls.is_web_url, without urlsplit for a plain URL."""
    parts = split_web(url)
    if parts is None:
        return is_web_url(url)
    return is_web_parts(parts)


def join_path(url: str, base: str) -> str | None:
    """urljoin(base, url) for a path-absolute `url` ("/images/a.jpg") without dot segments or
    parameters and a plain http(s) `base`, else None."""
    if url[:1] != "/" or url[:2] == "//" or "\t" in url or "\r" in url or "\n" in url:
        return None
    parts = split_web(base)
    if parts is None:
        return None
    rest, _, fragment = url.partition("#")
    path, _, query = rest.partition("?")
    segments = path.split("/")
    if "." in segments or ".." in segments or ";" in path:
        return None
    return _unsplit(parts.scheme, parts.netloc, path, query, fragment)


def _unsplit(scheme: str, netloc: str, path: str, query: str, fragment: str) -> str:
    """urlunsplit for an http(s) URL with a host, its path empty or starting with a slash."""
    url = f"{scheme}://{netloc}{path}"
    if query:
        url = f"{url}?{query}"
    return f"{url}#{fragment}" if fragment else url
