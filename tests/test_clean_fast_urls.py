"""The clean stage's URL shortcuts (aggregator.clean.fast_urls) give urllib's answers: checked
against urllib on generated URLs, plain and awkward alike."""

from __future__ import annotations

import random
from urllib.parse import urljoin, urlsplit

import pytest

from aggregator.clean import rules as clean_rules
from aggregator.clean.fast_urls import is_web, join_path, split_web
from aggregator.urls import is_web_url

_PIECES = [
    "http://", "https://", "HTTPS://", "ftp://", "//", "/", "/a", "/b/", "./", "../", "/./",
    "/../", ".", "..", "?", "&", "=", "#", ";", ":", "@", "[", "]", "%41", "%", "+", " ", "\t",
    "\n", "\x0c", "x", "Host.Example.org", "example.com:8080", "é", "例子", "utm_source=a",
    "fbclid=1", "id=2", "q=a+b", "a=b=c", "ref", "~_.-", "page.html", "\u3000",
]  # fmt: skip


def _urls(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    found = [
        "https://news.example.org/0/19.html?utm_source=rss&utm_medium=feed&id=19",
        "https://e.com/a?fbclid=1&b=2#frag",
        "https://e.com/a?utm_source=x#",
        "https://e.com?utm_source=x",
        "http:///no-host",
        "https://[::1]/x",
        "https://user@e.com/?utm_source=1",
    ]
    for _ in range(count):
        found.append("".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 9))))
        found.append(_shaped(rng))
    return found


def _shaped(rng: random.Random) -> str:
    """A URL of the usual shape, some of its parts drawn from the awkward pieces."""
    start = rng.choice(["http://", "https://", "/", "https://", "http://"])
    host = rng.choice(["e.com", "Sub.Example.org:8443", "", "e.com%2F", "x_y.example"])
    path = "".join(rng.choice(["/a", "/b.html", "/", "/./", "/../", "/c;p", "/é", " "])
                   for _ in range(rng.randint(0, 3)))  # fmt: skip
    url = (start + host if start != "/" else "") + path
    pairs = rng.sample(
        ["utm_source=rss", "id=2", "ref=", "fbclid=x", "=v", "a", "b=c=d", "q=a+b", "gclid=1"],
        rng.randint(0, 3),
    )
    if pairs or rng.random() < 0.2:
        url += "?" + "&".join(pairs)
    if rng.random() < 0.3:
        url += "#" + rng.choice(["", "top", "x?y", "utm_source=a"])
    return url if rng.random() < 0.8 else url + rng.choice(_PIECES)


def _urllib(function: object, *args: str) -> object:
    try:
        return function(*args)  # type: ignore[operator]
    except ValueError:
        return ValueError


@pytest.mark.parametrize("seed", range(4))
def test_split_and_is_web_agree_with_urllib(seed: int) -> None:
    for url in _urls(3000, seed):
        parts = split_web(url)
        if parts is not None:
            assert parts == urlsplit(url), url
        assert _urllib(is_web, url) == _urllib(is_web_url, url), url


@pytest.mark.parametrize("seed", range(4))
def test_join_path_agrees_with_urljoin(seed: int) -> None:
    urls = _urls(1500, seed)
    bases = [url for url in urls if split_web(url)] + ["https://news.example.org/0/19.html?x=1"]
    rng = random.Random(seed)
    for url in urls:
        base = rng.choice(bases)
        joined = join_path(url, base)
        if joined is not None:
            assert joined == urljoin(base, url), (base, url)
    assert join_path("/images/0/19.jpg", bases[-1]) == "https://news.example.org/images/0/19.jpg"


def test_unsubscribe_words_cover_every_alternative() -> None:
    # The words let ASCII URLs skip the regex: each alternative must hold one.
    for alternative in clean_rules.UNSUBSCRIBE_URL.pattern.split("|"):
        plain = alternative.replace("\\", "").replace("[?&]", "").lower()
        assert any(word in plain for word in clean_rules.UNSUBSCRIBE_URL_WORDS), alternative
