"""serve: the real app under uvicorn on a free port, exercised over HTTP with httpx."""

from __future__ import annotations

import gzip
import resource
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import cast

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from aggregator.models import FeedData, FeedItem, SiteSettings, TagSummary
from aggregator.render import render_site
from aggregator.serve import (
    ConnectionGuard,
    HealthStatus,
    Limits,
    accepts_gzip,
    create_app,
    gzip_etag,
    server_config,
)
from aggregator.serve.guard import GuardedHttpProtocol
from aggregator.serve.resources import (
    ACCEPT_BATCHES_IN_FLIGHT,
    FD_RESERVE,
    MAX_CONNECTIONS,
    MIN_CONNECTIONS,
    connection_cap,
    listen_backlog,
    raise_open_files_limit,
)

CJK_PATH = "/tags/%E8%81%94%E5%90%88%E6%97%A9%E6%8A%A5.atom"
IDENTITY = {"Accept-Encoding": "identity"}
GZIP = {"Accept-Encoding": "gzip"}
LOCAL_ID = "5f0c3c8e-1111-4a4a-8b8b-000000000002"


def make_item(number: int, link: str | None) -> FeedItem:
    when = datetime(2024, 5, 1, 10, number, tzinfo=timezone(timedelta(hours=8)))
    return FeedItem(
        id=f"5f0c3c8e-1111-4a4a-8b8b-00000000000{number}",
        source="zaobao-china",
        title=f"王毅会见韩外长：乐见朝美适时重启对话 {number}",
        link=link,
        published=when,
        updated=when,
        author=None,
        tags=("联合早报",),
        content_html="<p>" + "双方讨论了半岛局势。" * 40 + "</p>",
        summary="双方讨论了半岛局势。",
    )


def render_sample(output: Path) -> None:
    items = (make_item(1, "https://example.org/a"), make_item(2, None))
    site = SiteSettings(dir=output, base_url="http://127.0.0.1:8080/", title="Aggregator")
    feeds = [FeedData(None, "Aggregator", items), FeedData("联合早报", "联合早报", items)]
    tags = [TagSummary("联合早报", "联合早报", 2, items[1].updated)]
    render_site(site, feeds, tags, [])


@dataclass(frozen=True)
class Served:
    url: str
    port: int
    output: Path


@contextmanager
def running(output: Path, app: Starlette | None = None) -> Iterator[tuple[str, int]]:
    """The real app under uvicorn in a thread, with the connection guard of production; yields
    its base URL and port."""
    # port=0: the OS picks a free port, read back once the socket is bound (no race).
    config, _ = server_config(
        app or create_app(output), host="127.0.0.1", port=0, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("serve")
    output = root / "public"
    render_sample(output)
    (root / "secret.txt").write_text("outside the output folder")
    with running(output) as (url, port):
        yield Served(url, port, output)


@pytest.fixture
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=5) as http:
        yield http


def raw_get(served: Served, target: str) -> int:
    """Sends the request line untouched: httpx would normalise dot segments away."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode("ascii"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/", "text/html; charset=utf-8"),
        ("/index.html", "text/html; charset=utf-8"),
        ("/all.rss", "application/rss+xml; charset=utf-8"),
        ("/all.atom", "application/atom+xml; charset=utf-8"),
        ("/all.json", "application/feed+json; charset=utf-8"),
        ("/feeds.opml", "text/x-opml; charset=utf-8"),
        (f"/items/{LOCAL_ID}.html", "text/html; charset=utf-8"),
        (CJK_PATH, "application/atom+xml; charset=utf-8"),
    ],
)
def test_files_are_served_with_explicit_types_and_validators(
    client: httpx.Client, served: Served, path: str, content_type: str
) -> None:
    response = client.get(path, headers=IDENTITY)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["etag"].startswith('"')
    assert response.headers["last-modified"].endswith("GMT")
    assert "max-age" in response.headers["cache-control"]
    assert "Accept-Encoding" in response.headers["vary"]
    relative = "index.html" if path == "/" else httpx.URL(path).path.lstrip("/")
    assert response.content == (served.output / relative).read_bytes()


def test_cjk_path_works_unencoded_too(client: httpx.Client, served: Served) -> None:
    response = client.get("/tags/联合早报.atom", headers=IDENTITY)
    assert response.status_code == 200
    assert response.content == (served.output / "tags" / "联合早报.atom").read_bytes()


@pytest.mark.parametrize("headers", [IDENTITY, GZIP])
def test_if_none_match_gives_304_without_body(
    client: httpx.Client, headers: dict[str, str]
) -> None:
    first = client.get("/all.atom", headers=headers)
    etag = first.headers["etag"]
    for offered in (etag, f"W/{etag}", f'"nope", {etag}'):
        again = client.get("/all.atom", headers={**headers, "If-None-Match": offered})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag
        assert "content-encoding" not in again.headers
    stale = client.get("/all.atom", headers={**headers, "If-None-Match": '"stale"'})
    assert stale.status_code == 200


def test_if_modified_since_gives_304(client: httpx.Client) -> None:
    first = client.get("/all.rss", headers=IDENTITY)
    modified = first.headers["last-modified"]
    again = client.get("/all.rss", headers={**IDENTITY, "If-Modified-Since": modified})
    assert again.status_code == 304
    assert again.content == b""
    older = format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)
    assert client.get("/all.rss", headers={"If-Modified-Since": older}).status_code == 200


@pytest.mark.parametrize("headers", [IDENTITY, GZIP])
def test_head_has_the_get_headers_and_no_body(
    client: httpx.Client, headers: dict[str, str]
) -> None:
    got = client.get(CJK_PATH, headers=headers)
    head = client.head(CJK_PATH, headers=headers)
    assert head.status_code == 200
    assert head.content == b""
    for name in (
        "content-type",
        "content-length",
        "etag",
        "last-modified",
        "cache-control",
        "vary",
    ):
        assert head.headers[name] == got.headers[name], name
    assert head.headers.get("content-encoding") == got.headers.get("content-encoding")


def test_gzip_when_accepted_with_its_own_etag(client: httpx.Client, served: Served) -> None:
    plain = client.get("/all.atom", headers=IDENTITY)
    packed = client.get("/all.atom", headers=GZIP)
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["vary"]
    assert packed.headers["etag"] == gzip_etag(plain.headers["etag"])
    assert packed.headers["last-modified"] == plain.headers["last-modified"]
    assert packed.content == (served.output / "all.atom").read_bytes()  # httpx decoded it
    assert int(packed.headers["content-length"]) < int(plain.headers["content-length"])
    # The identity ETag still validates a gzip request: same version of the same file.
    again = client.get("/all.atom", headers={**GZIP, "If-None-Match": plain.headers["etag"]})
    assert again.status_code == 304
    refused = client.get("/all.atom", headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "content-encoding" not in refused.headers


def test_gzip_body_is_stable(client: httpx.Client, served: Served) -> None:
    raw: list[bytes] = []
    for _ in range(2):
        with client.stream("GET", "/all.rss", headers=GZIP) as response:
            raw.append(b"".join(response.iter_raw()))
    assert raw[0] == raw[1]
    assert gzip.decompress(raw[0]) == (served.output / "all.rss").read_bytes()


def test_range_request_is_served_uncompressed(client: httpx.Client, served: Served) -> None:
    response = client.get("/all.json", headers={**GZIP, "Range": "bytes=0-9"})
    assert response.status_code == 206
    assert response.content == (served.output / "all.json").read_bytes()[:10]


@pytest.mark.parametrize(
    "target",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/tags/../../secret.txt",
        "/tags/%2E%2E/%2E%2E/secret.txt",
        "/..%2fsecret.txt",
        "//etc/passwd",
    ],
)
def test_no_directory_traversal(served: Served, target: str) -> None:
    assert raw_get(served, target) == 404


def test_missing_files_and_folders_are_404(client: httpx.Client) -> None:
    assert client.get("/nothing.atom").status_code == 404
    assert client.get("/tags/").status_code == 404
    assert client.get("/items").status_code == 404


def test_healthz_counts_atom_feeds(client: httpx.Client, served: Served) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "feeds": 2}
    assert response.headers["cache-control"] == "no-store"


def test_a_rerender_changes_the_etag(tmp_path: Path) -> None:
    output = tmp_path / "public"
    render_sample(output)
    with running(output) as (url, _), httpx.Client(base_url=url) as http:
        before = http.get("/all.atom", headers=IDENTITY).headers["etag"]
        feed = output / "all.atom"
        feed.write_bytes(feed.read_bytes().replace(b"Aggregator", b"Aggregated"))
        after = http.get("/all.atom", headers={**IDENTITY, "If-None-Match": before})
        assert after.status_code == 200
        assert after.headers["etag"] != before


def test_output_folder_missing_until_first_render(tmp_path: Path) -> None:
    output = tmp_path / "public"
    with running(output) as (url, _), httpx.Client(base_url=url) as http:
        assert http.get("/").status_code == 404
        assert http.get("/healthz").json() == {"status": "ok", "feeds": 0}
        render_sample(output)
        assert http.get("/").status_code == 200
        assert http.get("/healthz").json() == {"status": "ok", "feeds": 2}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("deflate, GZIP;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("gzip;q=0.0, identity", False),
        ("identity", False),
        ("", False),
        ("x-gzip", True),
        ("gzip;q=0, *", False),
        ("*;q=0", False),
        ("br;q=1, *;q=0.1", True),
        # Not worth parsing on the event loop: the file as it is is a valid answer too.
        ("br;q=0.5, " * 200 + "gzip", False),
    ],
)
def test_accepts_gzip(header: str, expected: bool) -> None:
    assert accepts_gzip(header) is expected


def test_a_huge_accept_encoding_costs_no_parsing(client: httpx.Client) -> None:
    started = time.perf_counter()
    assert not accepts_gzip("gzip, " * 200_000)
    assert time.perf_counter() - started < 0.01
    header = "br;q=0.5, " * 1000 + "gzip"
    response = client.get("/all.atom", headers={"Accept-Encoding": header})
    assert response.status_code == 200
    assert "content-encoding" not in response.headers


@pytest.mark.parametrize(("status", "code"), [("ok", 200), ("degraded", 200), ("failing", 503)])
def test_healthz_reports_the_status_it_is_given(
    tmp_path: Path, status: HealthStatus, code: int
) -> None:
    details = {"ok": status != "failing", "problems": ["the last pass failed: disk full"]}
    app = create_app(tmp_path, health=lambda: (status, details))
    with running(tmp_path, app) as (url, _):
        response = httpx.get(f"{url}/healthz", timeout=5)
    assert response.status_code == code
    assert response.json() == {"status": status, "feeds": 0, **details}


# -- the connection guard (its behaviour under attack is tests/test_serve_hostile.py) ---------


@pytest.mark.parametrize("files", [64, 256, 1024, 4096, 20_000, 65_536, 1 << 20])
def test_the_connection_cap_leaves_descriptors_for_the_rest(files: int) -> None:
    cap = connection_cap(files)
    assert MIN_CONNECTIONS <= cap <= MAX_CONNECTIONS
    in_flight = ACCEPT_BATCHES_IN_FLIGHT * listen_backlog(files)
    if cap > MIN_CONNECTIONS:
        # Two descriptors a connection (its socket, the file it sends), plus the accept batches.
        assert 2 * cap + in_flight + FD_RESERVE <= files
    assert connection_cap(65_536) == MAX_CONNECTIONS


def test_the_soft_open_files_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 128:
        pytest.skip(f"the hard limit here ({hard}) leaves nothing to raise to")
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    try:
        assert raise_open_files_limit() == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class _Connection:
    """What ConnectionGuard asks of a connection, closing at once as a transport would soon."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self.guard = guard
        self.dropped = False

    def drop(self) -> None:
        self.dropped = True
        self.guard.busy(self.protocol)
        self.guard.release()

    @property
    def protocol(self) -> GuardedHttpProtocol:
        return cast(GuardedHttpProtocol, self)


def test_at_the_cap_the_longest_waiting_connection_makes_room_and_busy_ones_stay() -> None:
    guard = ConnectionGuard(Limits(), cap=2)
    first, second, third, fourth = (_Connection(guard) for _ in range(4))
    for connection in (first, second):
        assert guard.admit(connection.protocol)
        guard.waiting(connection.protocol)
    guard.busy(second.protocol)  # its request head is complete: the app is answering it
    assert guard.admit(third.protocol)
    assert first.dropped and not second.dropped
    guard.waiting(third.protocol)
    guard.busy(third.protocol)
    assert not guard.admit(fourth.protocol)  # every connection busy: the new one is refused
    assert (guard.open, guard.closed["evicted"], guard.closed["refused"]) == (2, 1, 1)


def test_the_server_refuses_an_oversized_head_with_431(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        head = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + "a" * 20_000 + "\r\n\r\n"
        sock.sendall(head.encode("ascii"))
        assert sock.recv(65536).startswith(b"HTTP/1.1 431 ")
