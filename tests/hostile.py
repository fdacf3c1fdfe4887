"""Hostile upstreams: one small generator per case of the "hostile upstreams" issue, a server on
127.0.0.1 that answers each case at its own path, and a config with one source per case plus a
good one. Used by tests/test_hostile.py and benchmarks/hostile.py.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from tests.helpers import ROOT, Measured, feeds_config, run_measured, serving

__all__ = ["CASES", "ROOT", "Case", "Measured", "run_once", "serve", "write_config"]

Headers = list[tuple[str, str]]


def _feed(*items: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>t</title>'
        "<link>http://127.0.0.1/</link><description>d</description>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


def _item(
    number: int = 1,
    *,
    title: str = "A title",
    body: str = "<p>A body of a few words.</p>",
    extra: str = "",
    link: str | None = None,
) -> str:
    link = link or f"http://127.0.0.1/post/{number}"
    return (
        f"<item><title>{title}</title><link>{escape(link)}</link><guid>{escape(link)}</guid>"
        f"<pubDate>Wed, 15 Jun 2005 19:00:00 GMT</pubDate>{extra}"
        f"<description>{escape(body)}</description></item>"
    )


def _gzip_bomb() -> tuple[bytes, Headers]:
    # 1 GiB of zeros, gzipped twice: about 1 MB on the wire, then a few KB.
    zeros = b"\0" * (1 << 20)
    inner = gzip.compress(zeros * 64, compresslevel=9)
    return gzip.compress(inner, compresslevel=9), [("Content-Encoding", "gzip, gzip")]


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], tuple[bytes, Headers]]
    stored: bool  # whether the source's entry is kept (cut to the limits), or it fails alone


def _plain(data: bytes) -> tuple[bytes, Headers]:
    return data, []


CASES = [
    Case("title_exactly_html", lambda: _plain(_feed(_item(title="&lt;html&gt;"))), True),
    Case(
        "atom_html_title_html",
        lambda: _plain(
            b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>urn:t</id>'
            b"<updated>2024-01-01T00:00:00Z</updated><entry><id>urn:1</id>"
            b'<title type="html">&lt;html&gt;</title><link href="http://127.0.0.1/a"/>'
            b"<updated>2024-01-01T00:00:00Z</updated><content>x</content></entry></feed>"
        ),
        True,
    ),
    Case("href_with_a_control", lambda: _plain(_feed(_item(body='<a href="x&#1;">y</a>'))), True),
    Case("nested_20k", lambda: _plain(_feed(_item(body="<div>" * 20_000 + "x"))), True),
    Case("nested_200k", lambda: _plain(_feed(_item(body="<div>" * 200_000 + "x"))), True),
    Case(
        "categories_1000",
        lambda: _plain(
            _feed(_item(extra="".join(f"<category>c{n}</category>" for n in range(1000))))
        ),
        True,
    ),
    Case(
        "category_300_chars",
        lambda: _plain(_feed(_item(extra=f"<category>{'x' * 300}</category>"))),
        True,
    ),
    Case("title_1mb", lambda: _plain(_feed(_item(title="t" * 1_000_000))), True),
    Case(
        "link_urllib_rejects",
        lambda: _plain(_feed(_item(link="http://example.c[o.test/"))),
        True,
    ),
    Case(
        "offset_of_30_hours",
        lambda: _plain(_feed(_item().replace("19:00:00 GMT", "19:00:00 +3000"))),
        True,
    ),
    Case("gzip_of_gzip_bomb", _gzip_bomb, False),
    Case("not_xml_at_all", lambda: _plain(b"\x00\x01garbage" * 1000), False),
]


_GOOD = ((1, "Good one"), (2, "Good two"))


class _Handler(BaseHTTPRequestHandler):
    answers: dict[str, tuple[bytes, Headers]] = {}  # noqa: RUF012 - set before serving

    def do_GET(self) -> None:
        body, headers = self.answers.get(self.path, (b"", []))
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "application/rss+xml")
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(cases: list[Case]) -> AbstractContextManager[str]:
    """Each case at /<name>, the good feed at /good; yields the base URL."""
    answers = {f"/{case.name}": case.make() for case in cases}
    # Links of its own: a story another source carried too would be told in that one's words.
    good = [_item(n, title=title, link=f"http://127.0.0.1/good/{n}") for n, title in _GOOD]
    answers["/good"] = (_feed(*good), [])
    return serving(type("Handler", (_Handler,), {"answers": answers}))


def write_config(folder: Path, cases: list[Case], base_url: str) -> Path:
    feeds = [("good", f"{base_url}/good")]
    feeds += [(case.name, f"{base_url}/{case.name}") for case in cases]
    return feeds_config(folder, feeds, defaults="timeout: 20s")


def run_once(config: Path) -> Measured:
    """`aggregator run --once`, with its time and peak RSS."""
    return run_measured(config, "run", "--once")
