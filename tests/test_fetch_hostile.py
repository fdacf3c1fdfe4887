"""The fetch stage against hostile upstreams: compression bombs and redirects or DNS answers
that point inside (SSRF).

Every server here is a real HTTP/1.1 server on 127.0.0.1. Addresses that cannot exist on a test
machine (a public one, 10.0.0.7, 169.254.169.254) come from an injected resolver and a test
network that connects a few listed addresses to 127.0.0.1 and refuses any other: the reach
checks of the fetcher run unchanged on the way, and nothing can leave the machine. No outside
name is ever resolved: socket.getaddrinfo answers only numeric hosts, localhost and the names a
test gives it.
"""

from __future__ import annotations

import asyncio
import errno
import gzip
import importlib
import json
import resource
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest

from aggregator.fetch import Fetcher
from aggregator.fetch.decode import STEP, Decoding
from aggregator.fetch.pools import HostPools, Sockets
from aggregator.fetch.reach import AddressClass, Reach, classify, literal
from aggregator.models import FetchRequest, FetchResult

FIXTURES = Path(__file__).parent / "fixtures" / "fetch_hostile"
ROOT = Path(__file__).resolve().parent.parent
_brotli: Any = importlib.import_module("brotli")  # it ships no type hints


def brotli_compress(data: bytes) -> bytes:
    return bytes(_brotli.compress(data, quality=5))  # 11, the default, is slow for no gain here


PUBLIC = "1.2.3.4"  # stands for any public address; the test network routes it to 127.0.0.1
FEED = (
    '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>敌意</title>'
    + "".join(f"<item><title>第{n}条 item {n}</title></item>" for n in range(6000))
    + "</channel></rss>"
).encode()


# ---- a real server ----------------------------------------------------------------------------


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunked: bool = False  # no Content-Length: nothing to judge the body by before reading it
    close: bool = False  # Connection: close, so the next fetch needs a new connection


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that leaves mid-body (the point of the bomb tests) is not news


class Server:
    """HTTP/1.1 on 127.0.0.1, each path answered from `routes`; `seen` logs (Host, path)."""

    def __init__(self) -> None:
        self.routes: dict[str, Answer] = {}
        self.seen: list[tuple[str, str]] = []
        routes, seen = self.routes, self.seen

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                seen.append((self.headers.get("Host", ""), self.path))
                answer = routes.get(self.path, Answer(404))
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if answer.close:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                if not answer.chunked:
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                    return
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for start in range(0, len(answer.body), 16_384):
                    piece = answer.body[start : start + 16_384]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = _Quiet(("127.0.0.1", 0), Handler)
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def __enter__(self) -> Server:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    with Server() as running:
        yield running


# ---- the made-up internet ---------------------------------------------------------------------


class Resolver:
    """DNS for made-up names: each name's answers in turn, the last one repeated."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        queue = self.answers.get(host)
        if not queue:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return queue.pop(0) if len(queue) > 1 else queue[0]


class Network:
    """Sockets where `routed` addresses (and 127.0.0.1) lead to 127.0.0.1 and nothing else
    leads anywhere. Logs every host it is asked for: the fetcher must only ever ask for an
    address it has checked, never for a name."""

    def __init__(self, *routed: str, blackholes: Iterable[str] = ()) -> None:
        self.routed = {*routed, "127.0.0.1"}
        self.blackholes = set(blackholes)  # addresses whose connects never complete
        self.connects: list[str] = []
        self._real = Sockets()

    async def connect_tcp(self, address: str, port: int) -> socket.socket:
        self.connects.append(address)
        assert literal(address) is not None, f"asked to connect to a name: {address}"
        if address in self.blackholes:
            await asyncio.sleep(3600)
        if address not in self.routed:
            raise OSError(errno.EHOSTUNREACH, f"test network: no route to {address}")
        return await self._real.connect_tcp("127.0.0.1", port)


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Names the system resolver answers in this test; any other name is unknown."""
    names: dict[str, str] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in names:
            address = ip_address(names[name])
            family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            sockaddr = (str(address), int(port or 0))
            return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)]
        if name == "localhost" or literal(name) is not None:
            return real(host, port, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, f"test: no outside names ({name})")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


def fetch(url: str, fetcher: Fetcher | None = None, **options: Any) -> FetchResult:
    return fetch_all([url], fetcher, **options)[0]


def fetch_all(urls: list[str], fetcher: Fetcher | None = None, **options: Any) -> list[FetchResult]:
    """Each URL in turn, one Fetcher (so kept-alive connections are reused between them)."""

    async def run() -> list[FetchResult]:
        async with fetcher or Fetcher() as client:
            return [await client.fetch(FetchRequest("hostile", url, **options)) for url in urls]

    return asyncio.run(run())


def internet(resolver: Resolver, network: Network) -> Fetcher:
    return Fetcher(transport=HostPools(resolve=resolver, network=network))


# ---- compression bombs ------------------------------------------------------------------------

BOMBS = {
    # 1,827 bytes; 2^30 zero bytes decoded, through a 1 MB middle layer.
    "gzip, gzip": (FIXTURES / "zeros-1GiB.gz.gz").read_bytes(),
    "br": (FIXTURES / "zeros-1GiB.br").read_bytes(),
    "deflate, deflate": (FIXTURES / "zeros-1GiB.zlib.deflate").read_bytes(),
    "br, gzip": gzip.compress((FIXTURES / "zeros-1GiB.br").read_bytes()),
}


def test_the_gzip_bomb_fixture_is_what_it_claims() -> None:
    middle = gzip.decompress(BOMBS["gzip, gzip"])
    # The gzip trailer holds the decoded size (mod 2^32): no need to expand the gigabyte.
    assert int.from_bytes(middle[-4:], "little") == 2**30
    assert len(BOMBS["gzip, gzip"]) == 1_827


@pytest.mark.parametrize("encoding", list(BOMBS))
def test_a_bomb_is_cut_at_the_limit_in_bounded_memory(server: Server, encoding: str) -> None:
    server.routes["/bomb"] = Answer(
        headers={"Content-Encoding": encoding, "Content-Type": "application/rss+xml"},
        body=BOMBS[encoding],
        chunked=True,
    )
    tracemalloc.start()
    try:
        result = fetch(server.url("/bomb"), max_bytes=5_000_000, timeout=10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (result.error_kind, result.error) == ("too_large", "body larger than 5.0 MB (limit)")
    assert result.status == 200 and result.document is None
    # The kept 5 MB, one joined copy at most, and a few decoder steps per layer.
    assert peak < 16_000_000, peak


def test_a_bomb_stays_far_under_300_mb_of_rss() -> None:
    # Resident size in a fresh process: tracemalloc does not see what C libraries allocate.
    command = [sys.executable, "-c", "import tests.test_fetch_hostile as t; t.measure_bomb_rss()"]
    report = json.loads(subprocess.run(command, cwd=ROOT, capture_output=True, check=True).stdout)
    assert report["error_kind"] == "too_large"
    assert report["peak_rss_mb"] < 300
    assert report["peak_rss_mb"] - report["before_rss_mb"] < 50


def measure_bomb_rss() -> None:
    """Prints peak RSS (MB) before and after fetching the `gzip, gzip` bomb, as JSON.

    .venv/bin/python -c "import tests.test_fetch_hostile as t; t.measure_bomb_rss()"
    """
    with Server() as running:
        running.routes["/small"] = Answer(
            headers={"Content-Encoding": "gzip"}, body=gzip.compress(FEED)
        )
        running.routes["/bomb"] = Answer(
            headers={"Content-Encoding": "gzip, gzip"}, body=BOMBS["gzip, gzip"], chunked=True
        )
        # Warm up every code path first, so the difference is the bomb's alone.
        small = fetch(running.url("/small"))
        assert small.document is not None
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = fetch(running.url("/bomb"))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "error_kind": result.error_kind,
                "error": result.error,
                "before_rss_mb": round(before / 1024, 1),
                "peak_rss_mb": round(peak / 1024, 1),
            }
        )
    )


@pytest.mark.parametrize("encoding", ["gzip", "gzip, gzip", "br"])
def test_no_decoded_piece_is_larger_than_a_step(encoding: str) -> None:
    # One 16 KB gzip chunk holds about 16 MB; one decompress() call would hand over all of it.
    payload = b"\0" * 40_000_000
    for name in reversed([n.strip() for n in encoding.split(",")]):
        payload = gzip.compress(payload) if name == "gzip" else brotli_compress(payload)
    chunk = payload[:16_384]
    decoding = Decoding(encoding)
    tracemalloc.start()
    try:
        pieces = decoding.feed(chunk)
        first = next(pieces)
        sizes = [len(first)] + [len(piece) for _, piece in zip(range(50), pieces, strict=False)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert max(sizes) <= 2 * STEP
    assert sum(sizes) > 50 * STEP // 2  # it does go on, one bounded step at a time
    assert peak < 8_000_000, peak


def _encode(body: bytes, encoding: str) -> bytes:
    packers: dict[str, Callable[[bytes], bytes]] = {
        "gzip": gzip.compress,
        "x-gzip": gzip.compress,
        "deflate": zlib.compress,
        "raw-deflate": lambda data: zlib.compress(data)[2:-4],
        "br": brotli_compress,
        "identity": lambda data: data,
    }
    for name in (part.strip().lower() for part in encoding.split(",")):
        body = packers[name](body)
    return body


@pytest.mark.parametrize(
    "encoding",
    [
        "gzip",
        "x-gzip",
        "deflate",
        "raw-deflate",
        "br",
        "gzip, gzip",
        "br, gzip",
        "gzip, br",
        "deflate, br, gzip",
        "identity, gzip",
        "GZIP",
        "gzip,gzip",
    ],
)
def test_stacked_encodings_are_decoded(server: Server, encoding: str) -> None:
    header = encoding.replace("raw-deflate", "deflate")
    for chunked in (False, True):
        server.routes["/feed"] = Answer(
            headers={"Content-Encoding": header}, body=_encode(FEED, encoding), chunked=chunked
        )
        result = fetch(server.url("/feed"))
        assert result.error is None, result.error
        assert result.document is not None and result.document.data == FEED


def test_every_member_of_a_multi_member_gzip_is_read(server: Server) -> None:
    half = len(FEED) // 2
    body = gzip.compress(FEED[:half]) + gzip.compress(FEED[half:])
    server.routes["/feed"] = Answer(headers={"Content-Encoding": "gzip"}, body=body)
    result = fetch(server.url("/feed"))
    assert result.document is not None and result.document.data == FEED


@pytest.mark.parametrize(
    ("encoding", "message"),
    [
        ("zstd", "body could not be decoded: unsupported Content-Encoding 'zstd'"),
        ("gzip, snappy", "body could not be decoded: unsupported Content-Encoding 'snappy'"),
        ("compress", "body could not be decoded: unsupported Content-Encoding 'compress'"),
        (
            "gzip, gzip, gzip, gzip, gzip",
            "body could not be decoded: 5 stacked content encodings (at most 4)",
        ),
    ],
)
def test_an_encoding_we_cannot_decode_is_the_sources_error(
    server: Server, encoding: str, message: str
) -> None:
    server.routes["/feed"] = Answer(headers={"Content-Encoding": encoding}, body=b"\x28\xb5\x2f")
    result = fetch(server.url("/feed"), etag='"old"')
    assert (result.error_kind, result.error) == ("http", message)
    assert result.status == 200 and result.document is None and result.etag == '"old"'


@pytest.mark.parametrize("encoding", ["gzip", "br", "gzip, gzip"])
def test_a_body_that_is_not_what_its_encoding_says(server: Server, encoding: str) -> None:
    server.routes["/feed"] = Answer(headers={"Content-Encoding": encoding}, body=FEED)
    result = fetch(server.url("/feed"))
    assert result.error_kind == "http" and result.error is not None
    assert result.error.startswith("body could not be decoded: ")


def test_encoded_bytes_count_against_the_limit_too(server: Server) -> None:
    # Junk after the gzip member decodes to nothing; it must not be read forever.
    body = gzip.compress(b"<rss/>") + b"\0" * 3_000_000
    server.routes["/feed"] = Answer(headers={"Content-Encoding": "gzip"}, body=body, chunked=True)
    result = fetch(server.url("/feed"), max_bytes=1_000_000)
    assert (result.error_kind, result.error) == ("too_large", "body larger than 1.0 MB (limit)")
    assert fetch(server.url("/feed"), max_bytes=4_000_000).document is not None


def test_a_small_limit_is_named_in_bytes(server: Server) -> None:
    server.routes["/feed"] = Answer(body=FEED, chunked=True)
    result = fetch(server.url("/feed"), max_bytes=50_000)
    assert (result.error_kind, result.error) == (
        "too_large",
        "body larger than 50,000 bytes (limit)",
    )


# ---- SSRF: redirects ----------------------------------------------------------------------


def _public_redirect(server: Server, location: str) -> tuple[FetchResult, Network]:
    """A fetch of http://public.test/start, which redirects to `location`."""
    server.routes["/start"] = Answer(302, {"Location": location})
    network = Network(PUBLIC)
    resolver = Resolver({"public.test": [[PUBLIC]]})
    result = fetch(server.url("/start", "public.test"), internet(resolver, network))
    return result, network


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("//169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://2852039166/latest/meta-data/", "169.254.169.254"),
        ("http://0xa9fea9fe/", "169.254.169.254"),
        ("http://0251.254.43518/", "169.254.169.254"),
        ("http://169.254.169.254./", "169.254.169.254"),
        ("http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254"),
        ("http://[::ffff:a9fe:a9fe]/", "::ffff:169.254.169.254"),
        ("http://[fd00:ec2::254]/", "fd00:ec2::254"),
        ("http://[fe80::1]/", "fe80::1"),
        ("http://169.254.1.1:8080/", "169.254.1.1"),
    ],
)
def test_a_public_source_cannot_redirect_to_link_local(
    server: Server, location: str, shown: str
) -> None:
    result, network = _public_redirect(server, location)
    assert (result.error_kind, result.error) == (
        "refused",
        f"refused: redirect to a link-local address ({shown}) from a public source",
    )
    assert result.status == 302 and result.document is None
    assert network.connects == [PUBLIC] and len(server.seen) == 1


@pytest.mark.parametrize(
    ("location", "refused"),
    [
        ("http://127.0.0.1:{port}/feed", "a loopback address (127.0.0.1)"),
        ("http://127.1:{port}/feed", "a loopback address (127.0.0.1)"),
        ("http://0x7f000001:{port}/feed", "a loopback address (127.0.0.1)"),
        ("http://[::1]:{port}/feed", "a loopback address (::1)"),
        ("http://[::ffff:127.0.0.1]:{port}/feed", "a loopback address (::ffff:127.0.0.1)"),
        ("http://0.0.0.0:{port}/feed", "a loopback address (0.0.0.0)"),
        ("http://0:{port}/feed", "a loopback address (0.0.0.0)"),
        ("http://localhost:{port}/feed", "a loopback host (localhost)"),
        ("http://feeds.localhost:{port}/feed", "a loopback host (feeds.localhost)"),
        ("http://10.0.0.1/", "a private address (10.0.0.1)"),
        ("http://172.16.5.4/", "a private address (172.16.5.4)"),
        ("http://192.168.1.1/", "a private address (192.168.1.1)"),
        ("http://100.64.0.1/", "a private address (100.64.0.1)"),
        ("http://[fc00::1]/", "a private address (fc00::1)"),
        ("http://[fd12:3456::1]/", "a private address (fd12:3456::1)"),
        ("http://nas.lan/", "a private host (nas.lan)"),
        ("http://router/", "a private host (router)"),
    ],
)
def test_a_public_source_cannot_redirect_inside(
    server: Server, location: str, refused: str
) -> None:
    result, network = _public_redirect(server, location.format(port=server.port))
    assert (result.error_kind, result.error) == (
        "refused",
        f"refused: redirect to {refused} from a public source",
    )
    assert network.connects == [PUBLIC] and len(server.seen) == 1


def test_a_public_source_may_redirect_to_another_public_host(server: Server) -> None:
    server.routes["/start"] = Answer(301, {"Location": server.url("/feed", "cdn.test")})
    server.routes["/feed"] = Answer(body=FEED)
    network = Network(PUBLIC, "5.6.7.8")
    resolver = Resolver({"public.test": [[PUBLIC]], "cdn.test": [["5.6.7.8"]]})
    result = fetch(server.url("/start", "public.test"), internet(resolver, network))
    assert result.error is None and result.document is not None and result.document.data == FEED
    assert result.permanent_url == server.url("/feed", "cdn.test")
    assert network.connects == [PUBLIC, "5.6.7.8"]
    assert [host for host, _ in server.seen] == [
        f"public.test:{server.port}",
        f"cdn.test:{server.port}",
    ]


def test_redirects_between_loopback_urls_keep_working(server: Server) -> None:
    with Server() as other:
        server.routes["/start"] = Answer(302, {"Location": other.url("/moved")})
        other.routes["/moved"] = Answer(301, {"Location": "/feed"})
        other.routes["/feed"] = Answer(body=FEED)
        result = fetch(server.url("/start"))
    assert result.error is None and result.document is not None
    assert result.final_url == other.url("/feed")


def test_a_localhost_source_works_through_the_system_resolver(server: Server) -> None:
    server.routes["/feed"] = Answer(body=FEED)
    result = fetch(server.url("/feed", "localhost"))
    assert result.error is None and result.document is not None


def test_a_loopback_source_cannot_redirect_to_link_local(server: Server) -> None:
    server.routes["/start"] = Answer(302, {"Location": "http://2852039166/latest/meta-data/"})
    result = fetch(server.url("/start"))
    assert (result.error_kind, result.error) == (
        "refused",
        "refused: redirect to a link-local address (169.254.169.254) from a loopback source",
    )


def test_a_private_source_cannot_redirect_to_loopback(server: Server) -> None:
    server.routes["/start"] = Answer(302, {"Location": server.url("/feed")})
    server.routes["/feed"] = Answer(body=FEED)
    network = Network("10.0.0.7")
    result = fetch(server.url("/start", "10.0.0.7"), internet(Resolver({}), network))
    assert (result.error_kind, result.error) == (
        "refused",
        "refused: redirect to a loopback address (127.0.0.1) from a private source",
    )
    assert network.connects == ["10.0.0.7"]


def test_a_private_source_may_redirect_within_the_lan_and_out(server: Server) -> None:
    server.routes["/start"] = Answer(302, {"Location": server.url("/next", "192.168.1.9")})
    server.routes["/next"] = Answer(302, {"Location": server.url("/feed", "public.test")})
    server.routes["/feed"] = Answer(body=FEED)
    network = Network("10.0.0.7", "192.168.1.9", PUBLIC)
    resolver = Resolver({"public.test": [[PUBLIC]]})
    result = fetch(server.url("/start", "10.0.0.7"), internet(resolver, network))
    assert result.error is None and result.document is not None
    assert network.connects == ["10.0.0.7", "192.168.1.9", PUBLIC]


def test_metadata_is_reached_only_by_a_source_that_names_it(server: Server) -> None:
    server.routes["/start"] = Answer(302, {"Location": server.url("/feed", "169.254.169.254")})
    server.routes["/feed"] = Answer(body=FEED)
    network = Network("169.254.10.10", "169.254.169.254")
    link_local = fetch(server.url("/start", "169.254.10.10"), internet(Resolver({}), network))
    assert (link_local.error_kind, link_local.error) == (
        "refused",
        "refused: redirect to a cloud metadata address (169.254.169.254) from a link-local source",
    )
    named = fetch(server.url("/feed", "169.254.169.254"), internet(Resolver({}), network))
    assert named.error is None and named.document is not None


def test_refusals_need_no_network_at_all() -> None:
    # The redirect check reads the URL: it holds with any transport, before any connection.
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://0xA9FEA9FE/computeMetadata/v1/"})

    result = fetch("http://feeds.test/a.xml", Fetcher(transport=httpx.MockTransport(handler)))
    assert result.error_kind == "refused" and seen == ["http://feeds.test/a.xml"]


# ---- SSRF: DNS answers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "refused"),
    [
        ("127.0.0.1", "a loopback address (127.0.0.1)"),
        ("::1", "a loopback address (::1)"),
        ("::ffff:127.0.0.1", "a loopback address (::ffff:127.0.0.1)"),
        ("0.0.0.0", "a loopback address (0.0.0.0)"),
        ("169.254.169.254", "a link-local address (169.254.169.254)"),
        ("fd00:ec2::254", "a link-local address (fd00:ec2::254)"),
        ("10.1.2.3", "a private address (10.1.2.3)"),
        ("100.100.100.200", "a link-local address (100.100.100.200)"),
        ("64:ff9b::a9fe:a9fe", "a link-local address (64:ff9b::a9fe:a9fe)"),
    ],
)
def test_a_public_name_whose_dns_answer_is_inside_is_refused(
    server: Server, answer: str, refused: str
) -> None:
    network = Network(answer)
    resolver = Resolver({"public.test": [[answer]]})
    result = fetch(server.url("/feed", "public.test"), internet(resolver, network))
    assert (result.error_kind, result.error, result.status) == (
        "refused",
        f"refused: public.test resolves to {refused} from a public source",
        None,
    )
    assert network.connects == [] and server.seen == []


def test_the_system_resolver_answer_is_checked_too(server: Server, dns: dict[str, str]) -> None:
    # No injected resolver: the default path, with getaddrinfo saying what a rebinding DNS
    # server would.
    dns["public.test"] = "127.0.0.1"
    result = fetch(server.url("/feed", "public.test"))
    assert (result.error_kind, result.error) == (
        "refused",
        "refused: public.test resolves to a loopback address (127.0.0.1) from a public source",
    )
    assert server.seen == []


def test_a_redirect_to_a_name_that_resolves_inside_is_refused(server: Server) -> None:
    server.routes["/start"] = Answer(302, {"Location": server.url("/feed", "internal.test")})
    network = Network(PUBLIC, "10.9.8.7")
    resolver = Resolver({"public.test": [[PUBLIC]], "internal.test": [["10.9.8.7"]]})
    result = fetch(server.url("/start", "public.test"), internet(resolver, network))
    assert (result.error_kind, result.error) == (
        "refused",
        "refused: internal.test resolves to a private address (10.9.8.7) from a public source",
    )
    assert result.final_url == server.url("/feed", "internal.test")
    assert network.connects == [PUBLIC] and len(server.seen) == 1


def test_the_connection_goes_to_the_address_that_was_checked(server: Server) -> None:
    # DNS rebinding: the first answer is public, any later one loopback. The fetcher resolves
    # once per connection and connects to that very address, so no later answer is used
    # unchecked; a new connection asks again and is checked again.
    server.routes["/feed"] = Answer(body=FEED, close=True)
    network = Network(PUBLIC)
    resolver = Resolver({"public.test": [[PUBLIC], ["127.0.0.1"]]})
    first, second = fetch_all([server.url("/feed", "public.test")] * 2, internet(resolver, network))
    assert first.error is None and first.document is not None
    assert (second.error_kind, second.error) == (
        "refused",
        "refused: public.test resolves to a loopback address (127.0.0.1) from a public source",
    )
    assert network.connects == [PUBLIC] and resolver.asked == ["public.test"] * 2


def test_of_a_mixed_answer_only_the_allowed_addresses_are_tried(server: Server) -> None:
    server.routes["/feed"] = Answer(body=FEED)
    network = Network(PUBLIC, "127.0.0.1")
    resolver = Resolver({"public.test": [["127.0.0.1", "169.254.169.254", PUBLIC]]})
    result = fetch(server.url("/feed", "public.test"), internet(resolver, network))
    assert result.error is None and network.connects == [PUBLIC]


def test_an_address_that_drops_packets_does_not_hold_up_the_next(server: Server) -> None:
    # Pinning connects to addresses, not names, so the fetcher races them itself.
    server.routes["/feed"] = Answer(body=FEED)
    network = Network(PUBLIC, blackholes=["2001:4860::1"])
    resolver = Resolver({"public.test": [["2001:4860::1", "9.9.9.9", PUBLIC]]})
    started = time.monotonic()
    result = fetch(server.url("/feed", "public.test"), internet(resolver, network), timeout=10)
    assert time.monotonic() - started < 2
    assert result.error is None and result.document is not None
    assert network.connects == ["2001:4860::1", "9.9.9.9", PUBLIC]


def test_a_kept_alive_connection_is_not_lent_to_a_source_of_lesser_reach(server: Server) -> None:
    # A LAN source leaves a connection to shared.test (10.0.0.8) open; a public source that is
    # sent to shared.test must still be refused rather than handed that connection.
    server.routes["/lan"] = Answer(302, {"Location": server.url("/feed", "shared.test")})
    server.routes["/public"] = Answer(302, {"Location": server.url("/feed", "shared.test")})
    server.routes["/feed"] = Answer(body=FEED)
    network = Network("10.0.0.7", "10.0.0.8", PUBLIC)
    resolver = Resolver({"shared.test": [["10.0.0.8"]], "public.test": [[PUBLIC]]})
    lan, public = fetch_all(
        [server.url("/lan", "10.0.0.7"), server.url("/public", "public.test")],
        internet(resolver, network),
    )
    assert lan.error is None and lan.document is not None
    assert (public.error_kind, public.error) == (
        "refused",
        "refused: shared.test resolves to a private address (10.0.0.8) from a public source",
    )
    assert [path for _, path in server.seen].count("/feed") == 1


def test_a_lan_name_source_works_but_not_into_loopback(server: Server) -> None:
    server.routes["/feed"] = Answer(body=FEED)
    network = Network("192.168.1.20")
    lan = fetch(
        server.url("/feed", "nas.lan"),
        internet(Resolver({"nas.lan": [["192.168.1.20"]]}), network),
    )
    assert lan.error is None and lan.document is not None
    loopback = fetch(
        server.url("/feed", "nas.lan"), internet(Resolver({"nas.lan": [["127.0.0.1"]]}), network)
    )
    assert loopback.error == (
        "refused: nas.lan resolves to a loopback address (127.0.0.1) from a private source"
    )


def test_an_unknown_name_is_still_a_network_error(server: Server) -> None:
    result = fetch(server.url("/feed", "nowhere.test"), internet(Resolver({}), Network()))
    assert (result.error_kind, result.error) == (
        "network",
        "host not found (Name or service not known)",
    )


# ---- the classes themselves ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("8.8.8.8", AddressClass.PUBLIC),
        ("2606:4700::1111", AddressClass.PUBLIC),
        ("10.255.0.1", AddressClass.PRIVATE),
        ("172.31.255.255", AddressClass.PRIVATE),
        ("192.168.0.1", AddressClass.PRIVATE),
        ("100.127.255.254", AddressClass.PRIVATE),
        ("fc00::1", AddressClass.PRIVATE),
        ("224.0.0.1", AddressClass.PRIVATE),
        ("127.255.255.254", AddressClass.LOOPBACK),
        ("::1", AddressClass.LOOPBACK),
        ("::", AddressClass.LOOPBACK),
        ("0.0.0.0", AddressClass.LOOPBACK),
        ("169.254.0.1", AddressClass.LINK_LOCAL),
        ("fe80::1%eth0", AddressClass.LINK_LOCAL),
        ("fd00:ec2::254", AddressClass.LINK_LOCAL),
        ("::ffff:10.0.0.1", AddressClass.PRIVATE),
        ("2002:a9fe:a9fe::1", AddressClass.LINK_LOCAL),  # 6to4 of 169.254.169.254
        ("::a9fe:a9fe", AddressClass.LINK_LOCAL),  # IPv4-compatible
    ],
)
def test_address_classes(address: str, expected: AddressClass) -> None:
    assert classify(ip_address(address)) == expected


@pytest.mark.parametrize(
    ("host", "reach"),
    [
        ("feeds.example.org", Reach(AddressClass.PUBLIC)),
        ("localhost", Reach(AddressClass.LOOPBACK)),
        ("nas.local", Reach(AddressClass.PRIVATE)),
        ("printer.home.arpa", Reach(AddressClass.PRIVATE)),
        ("127.0.0.1", Reach(AddressClass.LOOPBACK)),
        ("2130706433", Reach(AddressClass.LOOPBACK)),
        ("169.254.169.254", Reach(AddressClass.LINK_LOCAL, metadata=True)),
        ("169.254.1.1", Reach(AddressClass.LINK_LOCAL)),
    ],
)
def test_what_a_source_url_names(host: str, reach: Reach) -> None:
    assert Reach.of(host) == reach


def test_a_source_allowed_the_private_network_reaches_an_intranet_name(server: Server) -> None:
    server.routes["/feed"] = Answer(body=FEED)
    network = Network("10.1.2.3")
    resolver = Resolver({"intranet.test": [["10.1.2.3"]]})
    url = server.url("/feed", "intranet.test")
    refused = fetch(url, internet(resolver, network))
    assert refused.error_kind == "refused"
    allowed = fetch(url, internet(resolver, network), private_network=True)
    assert allowed.error is None and allowed.status == 200
    assert allowed.document is not None and allowed.document.data == FEED
    assert network.connects == ["10.1.2.3"]


def test_the_private_network_never_includes_link_local(server: Server) -> None:
    network = Network("169.254.169.254")
    resolver = Resolver({"intranet.test": [["169.254.169.254"]]})
    result = fetch(
        server.url("/feed", "intranet.test"), internet(resolver, network), private_network=True
    )
    assert result.error_kind == "refused"
    assert network.connects == []
