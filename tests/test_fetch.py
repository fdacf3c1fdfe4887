"""The fetch stage against the real feed farm, and httpx.MockTransport where exact control helps."""

from __future__ import annotations

import asyncio
import gzip
import importlib
import socket
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from aggregator.fetch import ACCEPT, USER_AGENT, Fetcher
from aggregator.models import FetchRequest, FetchResult
from tests.farm import Farm, FarmConfig, FeedMeta

Handler = Callable[[httpx.Request], httpx.Response]
# brotli ships no type hints; only its compress is needed here.
brotli_compress: Callable[[bytes], bytes] = importlib.import_module("brotli").compress


@pytest.fixture(scope="module")
def farm() -> Iterator[Farm]:
    config = FarmConfig(feeds=10, gbk_fraction=0.4, gzip_fraction=0.4, hang=30.0)
    with Farm(config) as running:
        yield running


async def _fetch_all(requests: list[FetchRequest], fetcher: Fetcher) -> list[FetchResult]:
    async with fetcher:
        return list(await asyncio.gather(*(fetcher.fetch(r) for r in requests)))


def fetch(url: str, **options: object) -> FetchResult:
    """One fetch with a fresh Fetcher; `options` go to the FetchRequest."""
    request = FetchRequest("test", url, **options)  # type: ignore[arg-type]
    return asyncio.run(_fetch_all([request], Fetcher()))[0]


def mock_fetch(
    handler: Handler, url: str = "http://feeds.test/a.xml", **options: object
) -> FetchResult:
    request = FetchRequest("test", url, **options)  # type: ignore[arg-type]
    fetcher = Fetcher(transport=httpx.MockTransport(handler))
    return asyncio.run(_fetch_all([request], fetcher))[0]


def pick(farm: Farm, wanted: Callable[[FeedMeta], bool]) -> str:
    return next(url for url in farm.feed_urls() if wanted(farm.feed_meta(url)))


# ---- conditional GET -----------------------------------------------------------------------


def test_200_then_304_then_200_after_churn() -> None:
    with Farm(FarmConfig(feeds=3, churn=1.0, bad_citizens=False)) as farm:
        url = farm.feed_urls()[0]
        first = fetch(url)
        assert first.status == 200 and first.error is None and not first.not_modified
        assert first.document is not None
        assert first.document.data == farm.body(url)
        assert first.document.origin == first.document.base_url == url
        assert first.document.content_type is not None
        assert first.document.content_type.startswith("application/")
        assert first.etag == farm.etag(url)
        assert first.last_modified is not None and first.last_modified.endswith("GMT")
        assert first.elapsed > 0

        second = fetch(url, etag=first.etag, last_modified=first.last_modified)
        assert second.status == 304 and second.not_modified and second.document is None
        assert (second.etag, second.last_modified) == (first.etag, first.last_modified)
        log = farm.requests[-1]
        assert (log.status, log.if_none_match, log.if_modified_since) == (
            304,
            first.etag,
            first.last_modified,
        )

        # Last-Modified alone is enough for a 304 too.
        assert fetch(url, last_modified=first.last_modified).not_modified

        farm.next_pass()
        third = fetch(url, etag=first.etag, last_modified=first.last_modified)
        assert third.status == 200 and third.document is not None
        assert third.etag != first.etag
        assert third.document.data == farm.body(url)
        newest = farm.items(url)[0]
        assert newest.guid.encode() in third.document.data


def test_a_pass_of_304s_keeps_its_connections_alive(farm: Farm) -> None:
    # A 304 closed unread would take its connection along: a thousand unchanged feeds on one
    # host would cost a thousand TCP handshakes.
    urls = farm.feed_urls()
    first = {url: fetch(url) for url in urls}
    farm.reset_stats()

    async def conditional() -> list[FetchResult]:
        async with Fetcher(per_host=1) as fetcher:
            return [
                await fetcher.fetch(
                    FetchRequest(source="s", url=url, etag=first[url].etag, timeout=5)
                )
                for url in urls
            ]

    assert all(result.not_modified for result in asyncio.run(conditional()))
    assert len(farm.requests) == len(urls) > 1
    assert len({request.client for request in farm.requests}) == 1


def test_304_keeps_the_request_validators_unless_it_sends_new_ones() -> None:
    def same(request: httpx.Request) -> httpx.Response:
        assert request.headers["if-none-match"] == '"v1"'
        return httpx.Response(304)

    kept = mock_fetch(same, etag='"v1"', last_modified="Wed, 01 May 2024 00:00:00 GMT")
    assert kept.not_modified and kept.etag == '"v1"'
    assert kept.last_modified == "Wed, 01 May 2024 00:00:00 GMT"

    renewed = mock_fetch(lambda _: httpx.Response(304, headers={"ETag": '"v2"'}), etag='"v1"')
    assert renewed.not_modified and renewed.etag == '"v2"'


def test_no_cache_answers_for_the_server(farm: Farm) -> None:
    url = farm.feed_urls()[1]
    before = len(farm.requests)
    # The farm says Cache-Control: max-age=300; every poll still reaches it.
    fetch(url)
    fetch(url)
    assert len(farm.requests) - before == 2


# ---- headers, encodings, bytes ------------------------------------------------------------


def test_user_agent_accept_and_encodings_are_sent(farm: Farm) -> None:
    fetch(farm.feed_urls()[0])
    log = farm.requests[-1]
    assert log.user_agent == USER_AGENT
    assert USER_AGENT.startswith("aggregator/")
    assert log.accept == ACCEPT
    assert log.accept_encoding == "gzip, deflate, br"


def test_gzip_answers_are_decoded(farm: Farm) -> None:
    url = pick(farm, lambda meta: meta.gzip)
    result = fetch(url)
    assert farm.requests[-1].content_encoding == "gzip"
    assert result.document is not None and result.document.data == farm.body(url)


@pytest.mark.parametrize("encoding", ["br", "deflate", "gzip"])
def test_every_advertised_encoding_is_decoded(encoding: str) -> None:
    body = '<?xml version="1.0"?><rss version="2.0"><channel><title>编码</title></channel></rss>'
    raw = body.encode()
    packed = {"br": brotli_compress, "deflate": zlib.compress, "gzip": gzip.compress}[encoding]
    result = mock_fetch(
        lambda _: httpx.Response(200, content=packed(raw), headers={"Content-Encoding": encoding})
    )
    assert result.document is not None and result.document.data == raw


def test_gbk_bytes_come_through_byte_exact(farm: Farm) -> None:
    url = pick(farm, lambda meta: meta.encoding == "GBK")
    result = fetch(url)
    assert result.document is not None
    assert result.document.data == farm.body(url)
    assert result.document.data.startswith(b'<?xml version="1.0" encoding="GBK"?>')
    assert result.document.content_type is not None
    assert result.document.content_type.endswith("charset=GBK")


def test_wrong_charset_is_passed_on_untouched(farm: Farm) -> None:
    result = fetch(farm.bad_urls()["wrong_charset"])
    assert result.error is None and result.document is not None
    # The header claims UTF-8; the parse stage gets both and decides, we change nothing.
    assert result.document.content_type == "application/rss+xml; charset=utf-8"
    assert result.document.data.startswith(b'<?xml version="1.0" encoding="GBK"?>')
    assert "第1期" in result.document.data.decode("gbk")


def test_malformed_xml_is_still_a_document(farm: Farm) -> None:
    result = fetch(farm.bad_urls()["malformed"])
    assert result.status == 200 and result.error is None
    assert result.document is not None and b"Broken & Co" in result.document.data


# ---- bad citizens ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "error_kind", "message"),
    [
        ("500", 500, "http", "HTTP 500 Internal Server Error"),
        ("404", 404, "not_found", "HTTP 404 Not Found"),
        ("410", 410, "gone", "HTTP 410 Gone"),
        ("429", 429, "http", "HTTP 429 Too Many Requests"),
    ],
)
def test_http_errors(farm: Farm, kind: str, status: int, error_kind: str, message: str) -> None:
    result = fetch(farm.bad_urls()[kind], etag='"old"')
    assert (result.status, result.error_kind, result.error) == (status, error_kind, message)
    assert result.document is None and not result.not_modified
    assert result.etag == '"old"'  # the validators to send next time are kept


def test_429_retry_after_seconds_is_absolute(farm: Farm) -> None:
    result = fetch(farm.bad_urls()["429"])
    expected = datetime.now(UTC) + timedelta(seconds=120)
    assert result.retry_after is not None
    assert abs((result.retry_after - expected).total_seconds()) < 5


def test_503_retry_after_http_date() -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    headers = {"Retry-After": format_datetime(when, usegmt=True)}
    result = mock_fetch(lambda _: httpx.Response(503, headers=headers))
    assert result.error_kind == "http" and result.error == "HTTP 503 Service Unavailable"
    assert result.retry_after == when


def test_hang_times_out_within_the_request_timeout(farm: Farm) -> None:
    started = time.monotonic()
    result = fetch(farm.bad_urls()["hang"], timeout=1.0)
    assert time.monotonic() - started < 2.0
    assert (result.error_kind, result.error, result.status) == (
        "timeout",
        "timed out after 1 s",
        None,
    )


def test_a_dribbling_server_cannot_outlast_the_total_timeout(farm: Farm) -> None:
    # A byte every 0.2 s never trips the read timeout; only the overall one stops it.
    started = time.monotonic()
    result = fetch(farm.bad_urls()["dribble"], timeout=1.0)
    assert time.monotonic() - started < 2.0
    assert result.error_kind == "timeout" and result.status == 200


def test_huge_body_is_cut_without_reading_it_all(farm: Farm) -> None:
    farm.reset_stats()
    result = fetch(farm.bad_urls()["huge"], max_bytes=1_000_000)
    assert (result.error_kind, result.error) == ("too_large", "body larger than 1.0 MB (limit)")
    assert result.document is None
    deadline = time.monotonic() + 5
    while farm.huge_streaming and time.monotonic() < deadline:
        time.sleep(0.05)
    assert farm.huge_streaming == 0 and farm.huge_completed == 0
    # Socket buffers on loopback hold a few MB; the point is that the 50 MB never went out.
    assert farm.huge_bytes_sent < 25_000_000


def test_huge_declared_length_is_refused_before_the_body(farm: Farm) -> None:
    result = fetch(farm.bad_urls()["huge_declared"])
    assert (result.error_kind, result.error) == ("too_large", "body larger than 5.0 MB (limit)")


def test_the_cap_applies_to_decoded_bytes() -> None:
    bomb = gzip.compress(b"\0" * 3_000_000)
    headers = {"Content-Encoding": "gzip"}
    result = mock_fetch(
        lambda _: httpx.Response(200, content=bomb, headers=headers), max_bytes=1_000_000
    )
    assert len(bomb) < 1_000_000 and result.error_kind == "too_large"


def test_connection_refused_is_a_network_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = fetch(f"http://127.0.0.1:{port}/feed.xml")
    assert (result.error_kind, result.error, result.status) == (
        "network",
        "connection refused",
        None,
    )


def test_transport_failures_never_raise() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    result = mock_fetch(broken)
    assert result.error_kind == "network" and result.error is not None
    assert "disconnected" in result.error


def test_unknown_host_is_a_network_error() -> None:
    def unresolvable(request: httpx.Request) -> httpx.Response:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as exc:
            raise httpx.ConnectError(str(exc)) from exc

    result = mock_fetch(unresolvable)
    assert result.error_kind == "network"
    assert result.error == "host not found (Name or service not known)"


def test_a_connection_closed_before_any_answer_is_retried_once() -> None:
    calls: list[str] = []

    def stale_then_fine(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        if len(calls) == 1:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return httpx.Response(200, content=b"<rss/>")

    result = mock_fetch(stale_then_fine)
    assert result.status == 200 and len(calls) == 2


def test_non_http_urls_are_refused() -> None:
    result = fetch("ftp://example.org/feed.xml")
    assert result.error_kind == "invalid_url" and result.status is None


# ---- redirects --------------------------------------------------------------------------------


def test_redirect_loop(farm: Farm) -> None:
    url = farm.bad_urls()["redirect_loop"]
    result = fetch(url)
    assert result.error_kind == "redirects" and result.error is not None
    a, b = url, url.replace("/a", "/b")
    assert result.error == f"redirect loop: {a} -> {b} -> {a}"


def test_redirect_to_ftp_is_refused(farm: Farm) -> None:
    result = fetch(farm.bad_urls()["ftp_redirect"])
    assert result.error_kind == "redirects"
    assert result.error == "redirect to a non-http(s) URL: ftp://ftp.example.org/feed.xml"


def test_moved_permanently_is_recorded(farm: Farm) -> None:
    url = farm.bad_urls()["moved"]
    target = farm.feed_urls()[0]
    result = fetch(url)
    assert result.status == 200 and result.error is None
    assert result.url == url and result.final_url == target and result.permanent_url == target
    assert result.document is not None and result.document.base_url == target


def chain_handler(statuses: list[int]) -> Handler:
    """/0 redirects to /1 with statuses[0], and so on; the last path answers 200."""

    def handler(request: httpx.Request) -> httpx.Response:
        hop = int(request.url.path.strip("/"))
        if hop < len(statuses):
            return httpx.Response(statuses[hop], headers={"Location": f"/{hop + 1}"})
        return httpx.Response(200, content=b"<rss/>")

    return handler


@pytest.mark.parametrize(
    ("statuses", "permanent"),
    [([301, 308], "http://feeds.test/2"), ([301, 302], None), ([307], None), ([], None)],
)
def test_permanent_url_only_when_every_hop_is_permanent(
    statuses: list[int], permanent: str | None
) -> None:
    result = mock_fetch(chain_handler(statuses), "http://feeds.test/0")
    assert result.status == 200 and result.permanent_url == permanent
    assert result.final_url == f"http://feeds.test/{len(statuses)}"


def test_at_most_ten_redirects() -> None:
    assert mock_fetch(chain_handler([302] * 10), "http://feeds.test/0").status == 200
    result = mock_fetch(chain_handler([302] * 11), "http://feeds.test/0")
    assert result.error_kind == "redirects" and result.error is not None
    assert result.error.startswith("more than 10 redirects")


def test_redirect_without_location() -> None:
    result = mock_fetch(lambda _: httpx.Response(302))
    assert result.error_kind == "redirects" and result.error == "HTTP 302 without a Location header"


# ---- concurrency caps -----------------------------------------------------------------------


def test_per_host_cap() -> None:
    with Farm(FarmConfig(feeds=8, hosts=2, latency=0.3, bad_citizens=False)) as farm:
        requests = [FetchRequest("test", url) for url in farm.feed_urls()]
        results = asyncio.run(_fetch_all(requests, Fetcher(per_host=2)))
        assert all(result.status == 200 for result in results)
        assert sorted(farm.max_concurrency.values()) == [2, 2]
        assert farm.max_total_concurrency == 4


def test_global_cap() -> None:
    with Farm(FarmConfig(feeds=12, hosts=4, latency=0.3, bad_citizens=False)) as farm:
        requests = [FetchRequest("test", url) for url in farm.feed_urls()]
        results = asyncio.run(_fetch_all(requests, Fetcher(per_host=10, total=3)))
        assert all(result.status == 200 for result in results)
        assert farm.max_total_concurrency == 3


def test_a_request_may_carry_its_own_user_agent(farm: Farm) -> None:
    own = "MyPlanet/2.0 (+https://planet.example.org/)"

    async def go() -> None:
        async with Fetcher() as fetcher:
            await fetcher.fetch(FetchRequest("s", farm.feed_urls()[0], user_agent=own))

    asyncio.run(go())
    assert farm.requests[-1].user_agent == own
