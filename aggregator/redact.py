"""Credentials out of URLs and messages before a person or a subscriber sees them.

A source URL may carry what lets us read a private feed: `http://user:pass@host/feed` or
`...?api_key=...`. The index page, `aggregator status`, `sources list`, an OPML export and
the log are read by others than the config's owner, so what they show goes through here.

The rule, one for every URL:

- userinfo: after each `//` that follows a colon (or starts the URL), everything up to the
  last `@` before the next `/`, `?` or `#` becomes `***`, the user name too
  (`http://***@host/feed`): a name alone is half a login. A URL written unencoded inside
  another (`?next=http://u:p@h/`) gets the same.
- query: from the first `?` to the `#` after it. It is split at `&` into parameters, each of
  those at `;` and `?` into pieces (a `?` there starts the query of a URL nested in a value).
  A piece `name=value` whose name is secret (below) keeps its name; its value and the rest of
  its `&`-parameter become `***`, so a `;` inside the value leaves no tail in view. An empty
  value stays empty.
- a name is secret when, percent-decoded and split into words (at every character that is not
  an ASCII letter or digit, and where a lowercase letter or digit meets a capital: `apiKey`,
  `api-key`, `API_KEY` and `api%5Fkey` all read "api key"), its last word, lowercased, is one
  of SECRET_WORDS, or its last two are "session id" or "sess id"; only the last 48 characters
  of a name count. So `key`, `token`, `access_token`, `X-Amz-Signature`, `client_secret`,
  `sessionId` and `sort_key` are secret; `keyword`, `monkey` and `page` are not.
- everything else, the fragment included (a browser never sends it, so it is no credential for
  the feed), stays byte for byte; masking again changes nothing.

In free text (mask_text) a URL starts at its scheme and ends at a space, a double quote, a
backquote or an angle bracket, less the punctuation after it that ends a sentence or closes a
bracket; its query runs on through a `#`, which there may as well join two URLs.

A secret in the path (`/private/<token>/feed.rss`) cannot be told from a path and is shown, and
so is one in a nested URL that is percent-encoded (`?url=http%3A%2F%2Fu%3Ap%40h`).

No urllib parsing: it raises on some malformed URLs (`http://[::1`), and rebuilding a URL from
its parts would respell what the user wrote. The work is done by regexes that cannot backtrack
more than one run of characters and by str methods, plus a little Python per query parameter
that may be secret, so the time grows linearly with the input.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from urllib.parse import unquote

MASK = "***"

SECRET_WORDS = frozenset(
    {
        "key",
        "apikey",
        "token",
        "accesstoken",
        "authtoken",
        "secret",
        "clientsecret",
        "password",
        "passwd",
        "pwd",
        "pass",
        "passphrase",
        "auth",
        "signature",
        "sig",
        "session",
        "sessionid",
        "sessid",
        "phpsessid",
        "jsessionid",
        "sid",
        "jwt",
        "credential",
        "credentials",
    }
)
_SECRET_PAIRS = frozenset({("session", "id"), ("sess", "id")})


def _hint() -> re.Pattern[str]:
    # Every secret name holds one of these, lowercased: a query without any is left alone
    # without looking at its parameters one by one.
    words = SECRET_WORDS | {first for first, _ in _SECRET_PAIRS}
    shortest = {word for word in words if not any(other in word for other in words - {word})}
    return re.compile("|".join(sorted(shortest)))


_HINT = _hint()
# A secret name ends with one of these, whatever its case.
_ENDINGS = tuple(sorted(SECRET_WORDS | {second for _, second in _SECRET_PAIRS}))
# Only the end of a name decides: the longest secret word or pair, with its boundary, is far
# shorter. A window keeps the cost of a name bounded whatever its length.
_NAME_WINDOW = 48
# A word: capitals, then lowercase letters or digits; anything else between words is a break.
# ("apiKey": api, Key; "API_KEY": API, KEY; "XAmzSignature": XAmz, Signature; "APIKey": APIKey.)
_WORD = re.compile(r"[A-Z]+[a-z0-9]*|[a-z0-9]+")
_PIECE_BREAK = re.compile(r"([;?])")
# An authority's userinfo: the longest run up to an `@` in it (the last one), never past the
# `/`, `?` or `#` that ends the authority, so runs of different URLs never overlap.
_USERINFO = re.compile(r"://[^/?#]+@")
_USERINFO_IN_TEXT = re.compile(r"://[^/?#\s\"<>`]+@")
# What ends a URL inside free text: characters a URL never holds unencoded. Kept in the split.
_TEXT_BREAK = re.compile(r"([\s\"<>`]+)")
# Punctuation that ends a sentence or closes a bracket or quote around a URL in a message.
_TRAILING = ".,;:!?)]}'"


def is_secret_name(name: str) -> bool:
    """Whether a query parameter of this name holds a secret (the rule in the module doc)."""
    if "%" in name:
        # Enough of the end for _NAME_WINDOW characters: an escaped one takes up to 12.
        name = unquote(name[-12 * _NAME_WINDOW :], errors="replace")
    return _ends_secret(name[-_NAME_WINDOW:])


@lru_cache(maxsize=4096)  # keyed by at most _NAME_WINDOW characters: a bounded cache
def _ends_secret(tail: str) -> bool:
    words = _WORD.findall(tail)
    if not words:
        return False
    last = words[-1].lower()
    return last in SECRET_WORDS or (len(words) > 1 and (words[-2].lower(), last) in _SECRET_PAIRS)


def _secret(name: str) -> bool:
    # Most names end in a letter or digit and no secret word: told apart without the words.
    tail = name[-_NAME_WINDOW:]
    if "%" in name or not (tail[-1:].isascii() and tail[-1:].isalnum()):
        return is_secret_name(name)
    return tail.lower().endswith(_ENDINGS) and _ends_secret(tail)


def _mask_pieces(parameter: str) -> str:
    # An `&`-parameter holding `;`- or `?`-separated pieces.
    name, _, value = parameter.partition("=")
    if value and ";" not in name and "?" not in name and _secret(name):
        return f"{name}={MASK}"  # the usual case: the first piece is the secret
    parts = _PIECE_BREAK.split(parameter)  # [piece, separator, piece, ...]
    for index in range(0, len(parts), 2):
        name, equals, value = parts[index].partition("=")
        if equals and _secret(name):
            if not value and index == len(parts) - 1:
                return parameter
            return "".join([*parts[:index], name, "=", MASK])
    return parameter


def _mask_query(query: str) -> str:
    if "%" not in query and not _HINT.search(query.lower()):
        return query
    parameters = query.split("&")
    for index, parameter in enumerate(parameters):
        if ";" in parameter or "?" in parameter:
            parameters[index] = _mask_pieces(parameter)
            continue
        name, _, value = parameter.partition("=")
        if value and _secret(name):
            parameters[index] = f"{name}={MASK}"
    return "&".join(parameters)


def _mask_query_of(url: str) -> str:
    """The query of a URL whose userinfo is masked already: up to its fragment, if any."""
    end = url.find("#")
    if end == -1:
        end = len(url)
    start = url.find("?", 0, end)
    if start == -1:
        return url
    return url[: start + 1] + _mask_query(url[start + 1 : end]) + url[end:]


def mask_url(url: str) -> str:
    """`url` with its userinfo and the values of its secret query parameters replaced by `***`,
    every other character as it was. Never raises: a string that is no URL comes back as it
    was, but for the values of secret parameters after a `?`."""
    if url.startswith("//"):  # scheme-relative: the rule's "starts the URL"
        url = _USERINFO.sub(f"://{MASK}@", ":" + url)[1:]
    elif "@" in url:
        url = _USERINFO.sub(f"://{MASK}@", url)
    return _mask_query_of(url) if "?" in url else url


def _mask_word(word: str) -> str:
    # A run of text between spaces or quotes, holding a URL and a `?`. Its query runs from the
    # first `?` after the `://` to the end, through any `#`: in a message that may as well
    # join two URLs as start a fragment.
    kept = word.rstrip(_TRAILING)
    start = kept.find("?", kept.find("://"))
    if start == -1:
        return word
    return kept[: start + 1] + _mask_query(kept[start + 1 :]) + word[len(kept) :]


def mask_text(text: str) -> str:
    """`text` with every `scheme://` URL in it masked as the module doc says: for error messages
    and log lines, which often quote the URL they are about."""
    if "://" not in text:
        return text
    if "@" in text:
        text = _USERINFO_IN_TEXT.sub(f"://{MASK}@", text)
    if "?" not in text:
        return text
    parts = _TEXT_BREAK.split(text)
    # Even indices are words, odd ones the breaks between them.
    return "".join(_mask_word(part) if "?" in part and "://" in part else part for part in parts)


class MaskingFormatter(logging.Formatter):
    """Log lines through mask_text, the traceback of an exception included: a fetch error, a
    library's debug line or a traceback quote URLs as the config wrote them."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_text(super().format(record))
