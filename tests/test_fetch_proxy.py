"""Proxies from the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY), as httpx's own
client reads them, against a real proxy on 127.0.0.1.

The proxy answers from its own table, by the absolute URL it is asked for: a fetch of a name
that exists nowhere (feeds.test) can only succeed through it.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from aggregator.fetch import Fetcher
from aggregator.models import FetchRequest, FetchResult

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>via</title></channel></rss>'
_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


class Server:
    """HTTP/1.1 on 127.0.0.1. As a proxy it serves `routes` by absolute URL and refuses every
    CONNECT; as an origin it serves them by path. `seen`: (method, target, Proxy-Authorization)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.seen: list[tuple[str, str, str | None]] = []
        routes, seen = self.routes, self.seen

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                seen.append(("GET", self.path, self.headers.get("Proxy-Authorization")))
                status, headers, body = routes.get(self.path, (502, {}, b""))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_CONNECT(self) -> None:
                seen.append(("CONNECT", self.path, self.headers.get("Proxy-Authorization")))
                self.send_response(403)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.address = f"127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def proxy() -> Iterator[Server]:
    running = Server()
    yield running
    running.close()


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: none of the machine's own proxy variables."""
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def fetch(url: str) -> FetchResult:
    async def run() -> FetchResult:
        async with Fetcher() as fetcher:
            return await fetcher.fetch(FetchRequest("proxied", url, timeout=5))

    return asyncio.run(run())


def test_http_proxy_carries_http_fetches(proxy: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    # A public source, a proxy on loopback: the proxy is the operator's, not the feed's, so its
    # address is not held to the source's reach.
    monkeypatch.setenv("HTTP_PROXY", f"http://{proxy.address}")
    proxy.routes["http://feeds.test/a.xml"] = (200, {"ETag": '"1"'}, FEED)
    result = fetch("http://feeds.test/a.xml")
    assert result.error is None and result.document is not None
    assert result.document.data == FEED and result.etag == '"1"'
    assert proxy.seen == [("GET", "http://feeds.test/a.xml", None)]


def test_credentials_in_the_proxy_url_go_in_a_header(
    proxy: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", f"http://reader:p%40ss@{proxy.address}")
    monkeypatch.setenv("https_proxy", f"http://reader:p%40ss@{proxy.address}")
    proxy.routes["http://feeds.test/a.xml"] = (200, {}, FEED)
    assert fetch("http://feeds.test/a.xml").document is not None
    # Through a tunnel the header goes on the CONNECT, never on to the origin.
    assert fetch("https://feeds.test/a.xml").error_kind == "network"
    expected = "Basic " + base64.b64encode(b"reader:p@ss").decode()
    assert proxy.seen == [
        ("GET", "http://feeds.test/a.xml", expected),
        ("CONNECT", "feeds.test:443", expected),
    ]


def test_no_proxy_hosts_are_fetched_directly(
    proxy: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin = Server()
    try:
        origin.routes["/feed"] = (200, {}, FEED)
        monkeypatch.setenv("ALL_PROXY", f"http://{proxy.address}")
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        result = fetch(f"http://{origin.address}/feed")
    finally:
        origin.close()
    assert result.document is not None and result.document.data == FEED
    assert origin.seen == [("GET", "/feed", None)] and proxy.seen == []


def test_each_scheme_takes_its_own_proxy(proxy: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://{proxy.address}")
    # No HTTP_PROXY: an http URL goes direct (and feeds.test is found nowhere).
    direct = fetch("http://feeds.test/a.xml")
    assert direct.error_kind == "network" and proxy.seen == []
    # An https URL asks the proxy for a tunnel; this one refuses it.
    tunnelled = fetch("https://feeds.test/a.xml")
    assert tunnelled.error_kind == "network" and tunnelled.error is not None
    assert "403" in tunnelled.error
    assert proxy.seen == [("CONNECT", "feeds.test:443", None)]


def test_redirects_through_the_proxy_are_still_checked(
    proxy: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://{proxy.address}")
    metadata = {"Location": "http://169.254.169.254/latest/meta-data/"}
    proxy.routes["http://feeds.test/a.xml"] = (302, metadata, b"")
    result = fetch("http://feeds.test/a.xml")
    assert (result.error_kind, result.error) == (
        "refused",
        "refused: redirect to a link-local address (169.254.169.254) from a public source",
    )
    assert len(proxy.seen) == 1


def test_a_proxy_that_is_not_http_is_an_error_not_a_bypass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "socks5://127.0.0.1:1080")
    result = fetch("http://feeds.test/a.xml")
    assert (result.error_kind, result.error) == (
        "network",
        "http proxy of the environment is not an http(s) URL",
    )
