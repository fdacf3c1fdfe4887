"""URL helpers shared by the clean and dedupe stages: absolute, canonical, tracking-free."""

from __future__ import annotations

import re
from urllib.parse import (
    parse_qsl,
    quote,
    unquote_plus,
    urlencode,
    urljoin,
    urlsplit,
    urlunsplit,
)

# Parameters that only tell the publisher where a click came from; they never select content.
_TRACKING_EXACT = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "mkt_tok",
        "spm",
        "scm",
        "_hsenc",
        "_hsmi",
        "hsctatracking",
        "oly_anon_id",
        "oly_enc_id",
        "rb_clickid",
        "s_cid",
        "vero_conv",
        "vero_id",
        "wickedid",
        "ref_src",
        "ref_url",
        "__twitter_impression",
        "_openstat",
        "cmpid",
        "icid",
        "ncid",
        "sr_share",
        "share_from",
        "from_share",
        "xtor",
        "trk",
        "trkcampaign",
        "ito",
    }
)
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "matomo_", "piwik_", "hmsr", "ga_", "_ga")
_SAFE_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def is_tracking_parameter(name: str) -> bool:
    lowered = name.lower()
    return lowered in _TRACKING_EXACT or lowered.startswith(_TRACKING_PREFIXES)


def remove_tracking_parameters(url: str) -> str:
    """Drop utm_*, fbclid, gclid, spm and friends. Everything else stays as published: the
    other parameters in their order and spelling (`?r123` is not `?r123=`), the fragment."""
    head, hash_, fragment = url.partition("#")
    path, question, query = head.partition("?")
    if not query:
        return url
    pairs = query.split("&")
    kept = [pair for pair in pairs if not is_tracking_parameter(unquote_plus(pair.split("=")[0]))]
    if len(kept) == len(pairs):
        return url
    return path + (question + "&".join(kept) if kept else "") + hash_ + fragment


def absolute_url(url: str, base: str | None) -> str:
    """Resolve `url` against `base`; protocol-relative `//host/x` becomes https."""
    url = url.strip()
    if url.startswith("//"):
        scheme = urlsplit(base).scheme if base else ""
        return f"{scheme or 'https'}:{url}"
    if base and not _SCHEME.match(url):
        return urljoin(base, url)
    return url


def is_web_url(url: str) -> bool:
    """An http(s) URL with a host that urllib can take apart (`http://a.c[o/` it cannot)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
        return parts.scheme.lower() in _SAFE_SCHEMES and bool(parts.hostname)
    except ValueError:
        return False


def canonical_url(url: str) -> str:
    """One spelling per article URL: lowercase scheme and host, no default port, no fragment,
    no tracking parameters, the remaining query sorted."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    query_pairs = [
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if not is_tracking_parameter(name)
    ]
    query = urlencode(sorted(query_pairs))
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))


# What a URI may hold as it is (RFC 3986 reserved and unreserved characters, and `%` for the
# escapes already there); everything else is percent-encoded as UTF-8.
_URI_SAFE = "!#$%&'()*+,/:;=?@[]~-._"
_NOT_URI = re.compile(r"[^\x21-\x7e]")  # a space, a control or a non-ASCII character


def as_uri(url: str) -> str:
    """An IRI as the URI readers and validators expect: a non-ASCII host in IDNA, any other
    non-ASCII character, space or control percent-encoded. A URI comes back as it was."""
    if not _NOT_URI.search(url):
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = parts.netloc
        if host and not host.isascii():
            netloc = netloc.replace(host, host.encode("idna").decode("ascii"))
    except (ValueError, UnicodeError):  # an unusable host: encode the text as it is
        return quote(url, safe=_URI_SAFE)
    rest = urlunsplit(("", "", parts.path, parts.query, parts.fragment))
    return f"{parts.scheme}://{quote(netloc, safe=_URI_SAFE)}{quote(rest, safe=_URI_SAFE)}"
