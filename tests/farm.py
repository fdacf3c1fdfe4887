"""A local feed farm: a real HTTP server on 127.0.0.1 serving generated feeds and bad citizens.

    with Farm(FarmConfig(feeds=100, latency=0.05)) as farm:
        farm.feed_urls()      # RSS 2.0 / Atom 1.0, Chinese / English, some GBK, some gzip
        farm.bad_urls()       # kind -> URL: 500, 404, 410, 429, hang, dribble, malformed, huge, ...
                              # (429 on a port of its own: its Retry-After pauses a whole host)
        farm.next_pass()      # churn: a fraction of feeds gains one item, a new ETag/Last-Modified
        farm.requests         # every request seen, with its conditional headers and status

The server is a plain ASGI app under uvicorn in a daemon thread with its own event loop, so sync
tests, async tests and benchmarks can all use it; slow answers (latency, hang, dribble) sleep on
that loop and never block other requests. Benchmarks import it as `from tests.farm import Farm`.
"""

from __future__ import annotations

import asyncio
import gzip
import random
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from html import escape
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BASE_TIME = datetime(2024, 5, 1, tzinfo=UTC)
_CHUNK = 65_536


@dataclass(frozen=True)
class FarmConfig:
    feeds: int = 10
    items: int = 20  # items each feed holds; a churned feed drops its oldest
    latency: float = 0.0  # seconds every answer waits before it starts
    churn: float = 0.1  # fraction of feeds next_pass() gives one new item
    gbk_fraction: float = 0.1
    atom_fraction: float = 0.5
    gzip_fraction: float = 0.3  # feeds answered gzip-encoded to clients that accept gzip
    bad_citizens: bool = True
    hosts: int = 1  # listening ports: each one is a distinct host:port to a client
    hang: float = 60.0  # how long "hang" waits before answering, unless the client leaves
    huge_bytes: int = 50_000_000
    seed: int = 1
    paragraphs: int = 3  # of generated text per item, about 300 bytes each


class RequestLog(NamedTuple):
    path: str
    status: int
    if_none_match: str | None
    if_modified_since: str | None
    host: str = ""
    user_agent: str | None = None
    accept: str | None = None
    accept_encoding: str | None = None
    content_encoding: str | None = None  # what the farm answered with
    client: tuple[str, int] | None = None  # the client's address: one per TCP connection


class FarmItem(NamedTuple):
    guid: str
    title: str
    link: str


class FeedMeta(NamedTuple):
    number: int
    atom: bool
    encoding: str  # "UTF-8" or "GBK"
    gzip: bool
    chinese: bool


@dataclass
class _Item:
    number: int
    guid: str
    title: str
    link: str
    published: datetime
    html: str


@dataclass
class _Feed:
    meta: FeedMeta
    items: list[_Item] = field(default_factory=list)  # oldest first
    version: int = 0
    cache: tuple[int, bytes, bytes] | None = None  # version, body, gzipped body


_ZH_TOPICS = ["外交部回应半岛局势", "央行公布最新利率", "新能源汽车销量增长", "台风登陆沿海地区"]
_ZH_TOPICS += ["高校毕业生就业调查", "城市地铁新线开通", "科技企业发布财报", "文化遗产保护行动"]
_EN_TOPICS = ["Central bank holds rates", "Storm reaches the coast", "New metro line opens"]
_EN_TOPICS += ["Tech earnings beat forecasts", "Graduates face a tight market", "Museum reopens"]
_PIXEL = "data:image/gif;base64,R0lGODlhAQABAAAAACw="


# Text as varied as real news: random common CJK characters, and Latin words built from
# syllables, so that near-duplicate detection sees distinct stories as distinct.
_CJK_COMMON = [chr(code) for code in range(0x4E00, 0x4E00 + 3000)]
_SYLLABLES = [c + v for c in "bcdfghklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ou", "ai")]


def _paragraphs(meta: FeedMeta, number: int, count: int) -> list[str]:
    """Text of its own for every item, so no two farm stories look alike to dedupe."""
    chooser = random.Random(f"{meta.number}-{number}")
    if meta.chinese:
        return ["".join(chooser.choices(_CJK_COMMON, k=110)) + "。" for _ in range(count)]
    return [
        " ".join("".join(chooser.choices(_SYLLABLES, k=chooser.randint(1, 3))) for _ in range(45))
        + "."
        for _ in range(count)
    ]


def _item(meta: FeedMeta, number: int, paragraphs: int = 3) -> _Item:
    i = meta.number
    topics = _ZH_TOPICS if meta.chinese else _EN_TOPICS
    generated = _paragraphs(meta, number, paragraphs)
    text = generated[0]
    title = f"{topics[(i + number) % len(topics)]} {'第' if meta.chinese else '#'}{number}"
    title += "期" if meta.chinese else ""
    link = f"https://news.example.org/{i}/{number}.html?utm_source=rss&utm_medium=feed&id={number}"
    html = (
        f'<div class="share-bar"><a href="https://share.example.com/?u={i}-{number}">分享 Share</a>'
        f"</div><p>{text}</p>"
        f'<div id="dfp-ad-1" class="ad">广告 Advertisement</div>'
        f"<script>window.tracker = {number};</script>"
        f'<p>{text} <a href="https://news.example.org/{i}/more-{number}.html?utm_campaign=farm&amp;'
        f'ref=rss">{"阅读全文" if meta.chinese else "Read more"}</a></p>'
        f'<img src="{_PIXEL}" data-src="/images/{i}/{number}.jpg" alt="">'
        + "".join(f"<p>{paragraph}</p>" for paragraph in generated[1:])
    )
    published = BASE_TIME + timedelta(minutes=10 * number + i)
    guid = f"urn:farm:{i}:{number}" if meta.atom else f"farm-{i}-{number}"
    return _Item(number, guid, title, link, published, html)


def _render(feed: _Feed) -> bytes:
    meta = feed.meta
    newest = feed.items[-1].published if feed.items else BASE_TIME
    title = f"{'农场新闻' if meta.chinese else 'Farm News'} {meta.number}"
    home = f"https://news.example.org/{meta.number}/"
    parts = [f'<?xml version="1.0" encoding="{meta.encoding}"?>\n']
    if meta.atom:
        parts.append(
            f'<feed xmlns="http://www.w3.org/2005/Atom"><title>{title}</title>'
            f"<id>urn:farm:feed:{meta.number}</id><updated>{newest.isoformat()}</updated>"
            f'<link href="{home}"/><author><name>Farm Desk</name></author>\n'
        )
        for item in reversed(feed.items):
            stamp = item.published.isoformat()
            parts.append(
                f"<entry><title>{escape(item.title)}</title><id>{item.guid}</id>"
                f'<link href="{escape(item.link)}"/><published>{stamp}</published>'
                f'<updated>{stamp}</updated><category term="farm"/>'
                f'<content type="html">{escape(item.html)}</content></entry>\n'
            )
        parts.append("</feed>\n")
    else:
        parts.append(
            f'<rss version="2.0"><channel><title>{title}</title><link>{home}</link>'
            f"<description>{title}</description><language>{'zh-cn' if meta.chinese else 'en'}"
            f"</language><lastBuildDate>{format_datetime(newest)}</lastBuildDate>\n"
        )
        for item in reversed(feed.items):
            parts.append(
                f"<item><title>{escape(item.title)}</title><link>{escape(item.link)}</link>"
                f'<guid isPermaLink="false">{item.guid}</guid>'
                f"<pubDate>{format_datetime(item.published)}</pubDate><category>farm</category>"
                f"<description><![CDATA[{item.html}]]></description></item>\n"
            )
        parts.append("</channel></rss>\n")
    return "".join(parts).encode(meta.encoding)


_MALFORMED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>Broken & Co'
    b"</title><link>https://broken.example.org/</link>\n<item><title>Unclosed <b>bold</title>"
    b"<link>https://broken.example.org/1?a=1&b=2</link><guid>broken-1</guid><description>text"
    b" & more <p>para</description></item>\n<item><title>Second & last</title><guid>broken-2"
)
_GBK_NEWS = FeedMeta(number=0, atom=False, encoding="GBK", gzip=False, chinese=True)
_BAD_PATHS = {
    "500": "/bad/500",
    "404": "/bad/404",
    "410": "/bad/410",
    "429": "/bad/429",
    "hang": "/bad/hang",
    "dribble": "/bad/dribble",
    "malformed": "/bad/malformed",
    "huge": "/bad/huge",
    "huge_declared": "/bad/huge-declared",
    "redirect_loop": "/bad/loop/a",
    "ftp_redirect": "/bad/ftp",
    "wrong_charset": "/bad/wrong-charset",
    "moved": "/bad/moved",
}


def _matches(if_none_match: str, etags: tuple[str, ...]) -> bool:
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or any(etag in tags for etag in etags)


class Farm:
    """The feed farm; a context manager that starts and stops the server thread."""

    def __init__(self, config: FarmConfig | None = None) -> None:
        self.config = config or FarmConfig()
        self._random = random.Random(self.config.seed)
        self._lock = threading.RLock()  # re-entered: _serve_feed holds it around _current
        self._feeds: list[_Feed] = []
        for index in range(self.config.feeds):
            meta = FeedMeta(
                number=index,
                atom=self._random.random() < self.config.atom_fraction,
                encoding="GBK" if self._random.random() < self.config.gbk_fraction else "UTF-8",
                gzip=self._random.random() < self.config.gzip_fraction,
                chinese=index % 2 == 0,
            )
            feed = _Feed(
                meta, [_item(meta, n, self.config.paragraphs) for n in range(self.config.items)]
            )
            self._feeds.append(feed)
        self.requests: list[RequestLog] = []
        self.max_concurrency: dict[str, int] = defaultdict(int)  # per Host header
        self.max_total_concurrency = 0
        self.huge_bytes_sent = 0  # body bytes the huge answers handed to the socket
        self.huge_streaming = 0  # huge answers still running
        self.huge_completed = 0  # huge answers sent to the end
        self._in_flight: dict[str, int] = defaultdict(int)
        self._total_in_flight = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.ports: list[int] = []
        # The 429 citizen's: a client pauses the whole host it names, so it gets a host alone.
        self.limited_port = 0

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        sockets = []
        for _ in range(max(1, self.config.hosts) + 1):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))  # the OS picks a free port: no race
            sockets.append(sock)
        *ports, self.limited_port = [sock.getsockname()[1] for sock in sockets]
        self.ports = ports
        config = uvicorn.Config(
            self,
            interface="asgi3",
            lifespan="off",
            log_level="warning",
            access_log=False,
            backlog=2048,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": sockets}, daemon=True, name="farm"
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the feed farm did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> Farm:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- what tests and benchmarks ask -----------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports[0]}"

    def base_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def feed_urls(self) -> list[str]:
        """Good feeds, spread round-robin over the listening ports."""
        bases = self.base_urls()
        return [f"{bases[i % len(bases)]}/feeds/{i:04d}.xml" for i in range(len(self._feeds))]

    def bad_urls(self) -> dict[str, str]:
        if not self.config.bad_citizens:
            return {}
        urls = {kind: self.base_url + path for kind, path in _BAD_PATHS.items()}
        urls["429"] = f"http://127.0.0.1:{self.limited_port}{_BAD_PATHS['429']}"
        return urls

    def feed_meta(self, url: str) -> FeedMeta:
        return self._feed(url).meta

    def items(self, url: str) -> list[FarmItem]:
        """What a feed holds now, newest first."""
        with self._lock:
            return [FarmItem(i.guid, i.title, i.link) for i in reversed(self._feed(url).items)]

    def body(self, url: str) -> bytes:
        """The exact bytes a feed serves now, before any gzip."""
        return self._current(self._feed(url))[1]

    def etag(self, url: str) -> str:
        return self._validators(self._feed(url))[0]

    def next_pass(self) -> None:
        """That fraction of feeds (at least one when churn > 0) gains one item."""
        count = len(self._feeds)
        churned = round(count * self.config.churn) or (1 if self.config.churn > 0 else 0)
        with self._lock:
            for feed in self._random.sample(self._feeds, min(churned, count)):
                number = feed.items[-1].number + 1 if feed.items else 0
                feed.items.append(_item(feed.meta, number, self.config.paragraphs))
                del feed.items[: -self.config.items]
                feed.version += 1

    @property
    def in_flight(self) -> int:
        """Requests the farm has received and not finished answering (all hosts)."""
        with self._lock:
            return self._total_in_flight

    def reset_stats(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_concurrency.clear()
            self.max_total_concurrency = 0
            self.huge_bytes_sent = self.huge_completed = 0

    # ---- serving -----------------------------------------------------------------------------

    def _feed(self, url: str) -> _Feed:
        name = urlsplit(url).path.rsplit("/", 1)[-1]
        return self._feeds[int(name.removesuffix(".xml"))]

    def _current(self, feed: _Feed) -> tuple[int, bytes, bytes]:
        with self._lock:
            if feed.cache is None or feed.cache[0] != feed.version:
                body = _render(feed)
                feed.cache = (feed.version, body, gzip.compress(body, mtime=0))
            return feed.cache

    def _validators(self, feed: _Feed) -> tuple[str, str, datetime]:
        newest = feed.items[-1].published if feed.items else BASE_TIME
        etag = f'"feed{feed.meta.number}-v{feed.version}"'
        return etag, format_datetime(newest, usegmt=True), newest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        with self._lock:
            self._in_flight[host] += 1
            self._total_in_flight += 1
            self.max_concurrency[host] = max(self.max_concurrency[host], self._in_flight[host])
            self.max_total_concurrency = max(self.max_total_concurrency, self._total_in_flight)
        started = False

        def log(status: int, encoding: str | None) -> None:
            self.requests.append(
                RequestLog(
                    path=scope["path"],
                    status=status,
                    if_none_match=headers.get("if-none-match"),
                    if_modified_since=headers.get("if-modified-since"),
                    host=host,
                    user_agent=headers.get("user-agent"),
                    accept=headers.get("accept"),
                    accept_encoding=headers.get("accept-encoding"),
                    content_encoding=encoding,
                    client=tuple(scope["client"]) if scope.get("client") else None,
                )
            )

        async def logged_send(message: Message) -> None:
            nonlocal started
            # Logged before the answer leaves, so a client that has its answer sees the entry.
            if message["type"] == "http.response.start":
                started = True
                sent = dict(message.get("headers", []))
                encoding = sent.get(b"content-encoding")
                log(message["status"], encoding.decode("latin-1") if encoding else None)
            await send(message)

        left = asyncio.Event()
        watcher = asyncio.create_task(self._watch(receive, left))
        try:
            if self.config.latency:
                await asyncio.sleep(self.config.latency)
            await self._answer(scope["path"], headers, logged_send, left)
        finally:
            watcher.cancel()
            with self._lock:
                self._in_flight[host] -= 1
                self._total_in_flight -= 1
            if not started:
                log(499, None)  # the client left before any answer (hang)

    @staticmethod
    async def _watch(receive: Receive, left: asyncio.Event) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        left.set()

    async def _answer(
        self, path: str, headers: dict[str, str], send: Send, left: asyncio.Event
    ) -> None:
        if path.startswith("/feeds/") and path.endswith(".xml"):
            number = path.removeprefix("/feeds/").removesuffix(".xml")
            if number.isdigit() and int(number) < len(self._feeds):
                await self._serve_feed(self._feeds[int(number)], headers, send)
                return
        if not (self.config.bad_citizens and path.startswith("/bad/")):
            await _respond(send, 404, b"not found")
            return
        kind = path.removeprefix("/bad/")
        if kind in ("500", "404", "410"):
            await _respond(send, int(kind), b"bad citizen")
            return
        if kind == "429":
            await _respond(send, 429, b"slow down", [("retry-after", "120")])
            return
        if kind in ("loop/a", "loop/b", "ftp", "moved"):
            target = {"loop/a": "/bad/loop/b", "loop/b": "/bad/loop/a", "moved": "/feeds/0000.xml"}
            location = target.get(kind, "ftp://ftp.example.org/feed.xml")
            status = 301 if kind == "moved" else 302
            await _respond(send, status, b"", [("location", location)])
            return
        if kind == "malformed":
            await _respond(send, 200, _MALFORMED, [("content-type", "application/rss+xml")])
            return
        if kind == "wrong-charset":
            # Declares UTF-8 in the header while the bytes and the XML prolog say GBK.
            body = _render(_Feed(_GBK_NEWS, [_item(_GBK_NEWS, 1)]))
            ctype = "application/rss+xml; charset=utf-8"
            await _respond(send, 200, body, [("content-type", ctype)])
            return
        if kind == "hang":
            # Wakes early when the client gives up, so shutdown never waits for it.
            try:
                await asyncio.wait_for(left.wait(), self.config.hang)
                return
            except TimeoutError:
                await self._serve_feed(self._feeds[0], headers, send)
                return
        if kind == "dribble":
            await _start(send, 200, [("content-type", "application/rss+xml")])
            body = _render(self._feeds[0]) if self._feeds else _MALFORMED
            for offset in range(0, len(body), 16):
                if left.is_set():
                    return
                piece = body[offset : offset + 16]
                await send({"type": "http.response.body", "body": piece, "more_body": True})
                await asyncio.sleep(0.2)
            await send({"type": "http.response.body", "body": b""})
            return
        if kind in ("huge", "huge-declared"):
            await self._serve_huge(send, left, declared=kind == "huge-declared")
            return
        await _respond(send, 404, b"not found")
        return

    async def _serve_feed(self, feed: _Feed, headers: dict[str, str], send: Send) -> None:
        with self._lock:  # body and validators of the same version, even during next_pass
            _, body, gzipped = self._current(feed)
            etag, last_modified, newest = self._validators(feed)
        use_gzip = feed.meta.gzip and "gzip" in headers.get("accept-encoding", "")
        gz_etag = etag[:-1] + '-gz"'
        common = [
            ("etag", gz_etag if use_gzip else etag),
            ("last-modified", last_modified),
            ("cache-control", "max-age=300"),  # a client with an HTTP cache would not ask
        ]
        if feed.meta.gzip:
            common.append(("vary", "Accept-Encoding"))
        if _not_modified(headers, (etag, gz_etag), newest):
            await _respond(send, 304, b"", common)
            return
        kind = "atom" if feed.meta.atom else "rss"
        ctype = f"application/{kind}+xml; charset={feed.meta.encoding}"
        extra = [("content-type", ctype), *common]
        if use_gzip:
            await _respond(send, 200, gzipped, [*extra, ("content-encoding", "gzip")])
            return
        await _respond(send, 200, body, extra)
        return

    async def _serve_huge(self, send: Send, left: asyncio.Event, *, declared: bool) -> None:
        total = self.config.huge_bytes
        item = b"<item><title>filler</title><description>" + b"x" * 400 + b"</description></item>\n"
        chunk = (item * (_CHUNK // len(item) + 1))[:_CHUNK]  # the only buffer ever held
        headers = [("content-type", "application/rss+xml")]
        if declared:
            headers.append(("content-length", str(total)))
        await _start(send, 200, headers)
        self.huge_streaming += 1
        sent = 0
        try:
            while sent < total:
                if left.is_set():
                    return
                piece = chunk[: total - sent]
                # send() waits while the socket buffer is full, so a client that stops
                # reading stops the generation too.
                await send({"type": "http.response.body", "body": piece, "more_body": True})
                sent += len(piece)
                self.huge_bytes_sent += len(piece)
                await asyncio.sleep(0)  # lets the disconnect watcher run between chunks
            await send({"type": "http.response.body", "body": b""})
            self.huge_completed += 1
            return
        finally:
            self.huge_streaming -= 1


def _not_modified(headers: dict[str, str], etags: tuple[str, ...], newest: datetime) -> bool:
    if "if-none-match" in headers:  # RFC 9110: If-Modified-Since is then ignored
        return _matches(headers["if-none-match"], etags)
    since = headers.get("if-modified-since")
    if not since:
        return False
    try:
        return newest <= parsedate_to_datetime(since)
    except (TypeError, ValueError, IndexError):
        return False


async def _start(send: Send, status: int, headers: list[tuple[str, str]]) -> None:
    encoded = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": encoded})


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[str, str]] | None = None
) -> None:
    headers = list(headers or [("content-type", "text/plain")])
    if status != 304:
        headers.append(("content-length", str(len(body))))
    await _start(send, status, headers)
    await send({"type": "http.response.body", "body": body})
