"""The fetch stage: one polite conditional GET per source; every failure is a result, not a raise.

    Fetcher.fetch(FetchRequest) -> FetchResult
    ├── 200          document (body bytes + Content-Type), etag, last_modified from the response
    ├── 304          not_modified; the request's validators kept unless the 304 sends new ones
    └── error_kind   (error holds the message a user reads in `status`)
        ├── timeout      no complete answer within request.timeout: "timed out after 20 s"
        ├── network      DNS, refused, reset, TLS, broken HTTP: "connection refused"
        ├── too_large    the decoded body (or its encoded bytes) passed max_bytes:
        │                "body larger than 5.0 MB (limit)"; decoded in bounded steps, so a
        │                compression bomb is cut there too, whatever its encodings
        ├── redirects    more than 10, a loop, a non-http(s) target, a redirect without Location
        ├── refused      a hop would reach an address more private than the source's URL names:
        │                "refused: redirect to a link-local address (169.254.169.254) from a
        │                public source" (see reach.py; DNS answers are checked in pools.py)
        ├── gone         410: the publisher says the feed is dead
        ├── not_found    404
        ├── http         any other 4xx/5xx: "HTTP 500 Internal Server Error"; 429/503 carry
        │                retry_after (absolute) from Retry-After; a body that does not decode
        │                or an unknown Content-Encoding: "body could not be decoded: ..."
        ├── invalid_url  the requested URL is not an http(s) URL httpx accepts
        └── paused       not sent: the host asked for a pause (Retry-After) that ends more than
                         a few seconds from now; retry_after is its end (see windows.py)

On every result `etag` and `last_modified` are the validators to send next time, so a caller can
store them without looking at the outcome. `permanent_url` is set when every hop of a redirect
chain was 301/308. Nothing is cached here: every poll asks the server.

How many requests go to one host at once is that host's window (windows.py): it starts at
`per_host`, grows to `per_host_max` while the host answers cleanly and quickly, and halves when
it does not; `Fetcher.host_windows()` shows each host's.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx

from aggregator import __version__
from aggregator.errors import SourceError
from aggregator.fetch.decode import HAS_BROTLI, Decoding
from aggregator.fetch.pools import REACH, SOURCE, HostPools
from aggregator.fetch.reach import Reach
from aggregator.fetch.windows import (
    Answer,
    HostPausedError,
    HostSlots,
    HostWindow,
    HostWindows,
    host_key,
    shared_windows,
)
from aggregator.models import Document, FetchRequest, FetchResult
from aggregator.urls import is_web_url

__all__ = [
    "ACCEPT",
    "USER_AGENT",
    "Fetcher",
    "HostWindow",
    "HostWindows",
    "shared_windows",
]

# Without a configured one (defaults.user_agent), the pipeline names the instance's own site.
USER_AGENT = f"aggregator/{__version__}"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, text/html;q=0.8, */*;q=0.5"
)
# br only with a brotli that decodes in bounded steps; never advertise what we cannot read.
ACCEPT_ENCODING = "gzip, deflate, br" if HAS_BROTLI else "gzip, deflate"
MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
# Small error and redirect bodies are read so the connection can be reused; larger ones are cut.
_DRAIN_LIMIT = 65_536


@dataclass
class _Chain:
    """The redirect chain walked so far, and the time spent holding connection slots."""

    urls: list[str]
    reach: Reach | None = None  # set from the source's URL once it parses
    permanent: bool = True
    status: int | None = None
    spent: float = 0.0
    redirects: int = 0

    @property
    def url(self) -> str:
        return self.urls[-1]


class Fetcher:
    """One shared HTTP client: a window of requests per host, and a cap on them all.

    `per_host` is each host's window at first, `per_host_max` the most it grows to (None: it
    stays at `per_host`, though trouble still halves it); `windows` is where what is learnt of
    each host is kept (the process's `shared_windows()` to carry it from pass to pass; by
    default this Fetcher's own).
    """

    def __init__(
        self,
        *,
        per_host: int = 2,
        per_host_max: int | None = None,
        total: int = 50,
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str = USER_AGENT,
        windows: HostWindows | None = None,
    ) -> None:
        self._windows = windows if windows is not None else HostWindows()
        self._windows.configure(per_host, per_host_max)
        # httpx limits are pool-wide; politeness towards one host needs a window of its own.
        self._slots = HostSlots(self._windows)
        self._total = asyncio.Semaphore(total)
        # Connections seen answering before: a first answer on a new one took its handshakes
        # too, which says nothing of the server's load.
        self._streams: weakref.WeakSet[object] = weakref.WeakSet()
        self._headers = {
            "User-Agent": user_agent,
            "Accept": ACCEPT,
            "Accept-Encoding": ACCEPT_ENCODING,
        }
        # Requests go straight to the transport: AsyncClient's layers (cookies, auth, redirects,
        # event hooks, URL merging) are work a feed poll does not want, and at a thousand 304s
        # a pass they were a fifth of its CPU. Connects lazily; __aexit__ closes it.
        self._transport = transport or HostPools()
        self._timeouts: dict[float, dict[str, float | None]] = {}

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._transport.aclose()

    def host_windows(self) -> list[HostWindow]:
        """Each host's window as it stands (read-only copies)."""
        return self._windows.snapshot()

    async def fetch(self, request: FetchRequest) -> FetchResult:
        """Conditional GET with at most 10 redirects; network/HTTP/body problems never raise."""
        started = time.monotonic()
        chain = _Chain([request.url])
        try:
            result = await self._walk(request, chain)
        except (TimeoutError, httpx.TimeoutException):
            message = f"timed out after {request.timeout:g} s"
            result = _failed(request, chain, "timeout", message)
        except httpx.InvalidURL as exc:
            result = _failed(request, chain, "invalid_url", f"invalid URL {chain.url}: {exc}")
        except SourceError as exc:  # a DNS answer out of the source's reach (pools.py)
            result = _failed(request, chain, "refused", exc.reason)
        except HostPausedError as paused:
            result = replace(
                _failed(request, chain, "paused", str(paused)), retry_after=paused.until
            )
        except (httpx.HTTPError, OSError) as exc:
            result = _failed(request, chain, *_describe(exc))
        return replace(result, elapsed=time.monotonic() - started)

    async def _walk(self, request: FetchRequest, chain: _Chain) -> FetchResult:
        if not is_web_url(request.url):
            return _failed(request, chain, "invalid_url", f"not an http(s) URL: {request.url}")
        url = httpx.URL(request.url)
        chain.urls[0] = str(url)
        chain.reach = Reach.of(url.host, private_network=request.private_network)
        while True:
            # Only time holding slots counts: queueing behind our own caps is not the server.
            remaining = request.timeout - chain.spent
            if remaining <= 0:
                raise TimeoutError
            async with self._slot(url) as answer:
                hop_started = time.monotonic()
                try:
                    async with asyncio.timeout(remaining):
                        result = await self._hop(request, chain, url, answer)
                finally:
                    chain.spent += time.monotonic() - hop_started
            if result is not None:
                return result
            url = httpx.URL(chain.url)

    @asynccontextmanager
    async def _slot(self, url: httpx.URL) -> AsyncIterator[Answer]:
        """A place in the host's window, then one of all; the window learns from what the
        request's answer turns out to be."""
        # Host first: a request queued for a busy host must not sit on a global slot.
        ticket = await self._slots.take(host_key(url))
        answer = Answer()
        try:
            async with self._total:
                yield answer
        except (TimeoutError, httpx.TransportError, OSError):
            answer.failed = True
            raise
        finally:
            self._slots.give_back(ticket, answer)

    async def _hop(
        self, request: FetchRequest, chain: _Chain, url: httpx.URL, answer: Answer
    ) -> FetchResult | None:
        """One request of the chain: a result, or None after appending the redirect target."""
        validators = {"If-None-Match": request.etag, "If-Modified-Since": request.last_modified}
        headers = dict(self._headers)
        if request.user_agent:
            headers["User-Agent"] = request.user_agent
        # A stored validator that cannot travel in a header is dropped, not a crash.
        headers.update(
            (k, v) for k, v in validators.items() if v and v.isascii() and v.isprintable()
        )
        extensions = {
            "timeout": self._timeout(request.timeout),
            REACH: chain.reach,
            SOURCE: request.source,
        }
        get = httpx.Request("GET", url, headers=headers, extensions=extensions)
        sent = time.monotonic()
        try:
            rsp = await self._send(get)
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
            # A kept-alive connection closed under us before any answer: a GET is safe to send
            # once more.
            rsp = await self._send(get)
        else:
            if self._reused(rsp):
                answer.latency = time.monotonic() - sent
        try:
            status = chain.status = answer.status = rsp.status_code
            if status in _REDIRECTS:
                await _drain(rsp)
                return _follow(request, chain, rsp)
            permanent = chain.url if chain.redirects and chain.permanent else None
            if status == 304:
                # Read the (empty) body to its end: a response closed unread takes its
                # connection with it, and a pass of 304s would open one per source.
                await _drain(rsp)
                return replace(
                    _result(request, chain),
                    not_modified=True,
                    etag=rsp.headers.get("etag") or request.etag,
                    last_modified=rsp.headers.get("last-modified") or request.last_modified,
                    permanent_url=permanent,
                )
            if 200 <= status < 300:
                result = await _read_body(request, chain, rsp)
                return replace(result, permanent_url=permanent)
            await _drain(rsp)
            kind = {404: "not_found", 410: "gone"}.get(status, "http")
            retry = _retry_after(rsp.headers.get("retry-after")) if status in (429, 503) else None
            if retry is not None:
                answer.pause = (retry - datetime.now(UTC)).total_seconds()
            # The standard phrase, not the server's: some say "OK" on a 500.
            reason = httpx.codes.get_reason_phrase(status) or rsp.reason_phrase
            failed = _failed(request, chain, kind, f"HTTP {status} {reason}".strip())
            return replace(failed, retry_after=retry, permanent_url=permanent)
        finally:
            await rsp.aclose()

    def _reused(self, rsp: httpx.Response) -> bool:
        """Whether the answer came on a connection that had answered before; a transport
        that does not say which connection is taken at its word."""
        stream = rsp.extensions.get("network_stream")
        if stream is None:
            return True
        try:
            if stream in self._streams:
                return True
            self._streams.add(stream)
        except TypeError:  # cannot be weakly referenced: no telling
            return True
        return False

    async def _send(self, request: httpx.Request) -> httpx.Response:
        response = await self._transport.handle_async_request(request)
        response.request = request  # what rsp.url (redirect targets) is relative to
        return response

    def _timeout(self, seconds: float) -> dict[str, float | None]:
        """The transport's timeout extension: connect, read, write and pool."""
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = httpx.Timeout(
                connect=min(10.0, seconds), read=seconds, write=seconds, pool=seconds
            ).as_dict()
            self._timeouts[seconds] = timeout
        return timeout


def _follow(request: FetchRequest, chain: _Chain, rsp: httpx.Response) -> FetchResult | None:
    status = rsp.status_code
    location = rsp.headers.get("location")
    if not location:
        return _failed(request, chain, "redirects", f"HTTP {status} without a Location header")
    target_url = rsp.url.join(location.strip())
    target = str(target_url)
    if not is_web_url(target):
        return _failed(request, chain, "redirects", f"redirect to a non-http(s) URL: {target}")
    refused = chain.reach.refuses_host(target_url.host) if chain.reach else None
    if refused:
        message = f"refused: redirect to {refused} from {chain.reach}"
        return _failed(request, chain, "refused", message)
    if target in chain.urls:
        loop = " -> ".join([*chain.urls, target])
        return _failed(request, chain, "redirects", f"redirect loop: {loop}")
    if chain.redirects >= MAX_REDIRECTS:
        message = f"more than {MAX_REDIRECTS} redirects: {chain.urls[0]} -> ... -> {target}"
        return _failed(request, chain, "redirects", message)
    chain.redirects += 1
    chain.permanent = chain.permanent and status in _PERMANENT
    chain.urls.append(target)
    return None


async def _read_body(request: FetchRequest, chain: _Chain, rsp: httpx.Response) -> FetchResult:
    limit = request.max_bytes
    too_large = f"body larger than {_size(limit)} (limit)"
    declared = rsp.headers.get("content-length", "").strip()
    # An encoded length over the limit means a decoded body over it too: refuse unread.
    if declared.isdigit() and int(declared) > limit:
        return _failed(request, chain, "too_large", too_large)
    decoding = Decoding(rsp.headers.get("content-encoding", ""))
    chunks: list[bytes] = []
    size = wire = 0

    def take(pieces: Iterator[bytes]) -> bool:
        """Keep decoded pieces while the body stays within the limit."""
        nonlocal size
        for piece in pieces:
            size += len(piece)
            if size > limit:
                return False
            chunks.append(piece)
        return True

    # The raw stream, decoded here in bounded steps: httpx's decoders expand a whole chunk at
    # once, which for a compression bomb is gigabytes before the limit can be looked at.
    async for raw in _raw(rsp):
        # Encoded bytes count too: junk after a gzip member, or deflate blocks that decode
        # to nothing, would otherwise be read until the timeout.
        wire += len(raw)
        if wire > limit or not take(decoding.feed(raw)):
            # Leaving the stream closes the connection; the rest is never downloaded.
            return _failed(request, chain, "too_large", too_large)
    if not take(decoding.finish()):
        return _failed(request, chain, "too_large", too_large)
    document = Document(
        source=request.source,
        origin=chain.url,
        # One allocation of the final size: a bytearray is reallocated as it grows, then copied.
        data=b"".join(chunks),
        base_url=chain.url,
        content_type=rsp.headers.get("content-type"),
    )
    etag, last_modified = rsp.headers.get("etag"), rsp.headers.get("last-modified")
    return replace(
        _result(request, chain), document=document, etag=etag, last_modified=last_modified
    )


async def _raw(rsp: httpx.Response) -> AsyncIterator[bytes]:
    """The body as it came, still encoded; a response built in memory has a sync stream."""
    stream = rsp.stream
    if isinstance(stream, httpx.AsyncByteStream):
        async for chunk in stream:
            yield chunk
    else:
        for chunk in stream:
            yield chunk


def _size(limit: int) -> str:
    return f"{limit / 1_000_000:.1f} MB" if limit >= 100_000 else f"{limit:,} bytes"


async def _drain(rsp: httpx.Response) -> None:
    if rsp.is_stream_consumed or not isinstance(rsp.stream, httpx.AsyncByteStream):
        return  # a response built in memory (MockTransport)
    read = 0
    # The raw stream itself: the body is thrown away, Response's chunking and bookkeeping
    # would be all the cost of a 304.
    async for chunk in rsp.stream:
        read += len(chunk)
        if read > _DRAIN_LIMIT:
            return


def _result(request: FetchRequest, chain: _Chain) -> FetchResult:
    """The fields every outcome shares; the validators default to the request's."""
    return FetchResult(
        source=request.source,
        url=request.url,
        final_url=chain.url,
        status=chain.status,
        etag=request.etag,
        last_modified=request.last_modified,
    )


def _failed(request: FetchRequest, chain: _Chain, kind: str, message: str) -> FetchResult:
    return replace(_result(request, chain), error=message, error_kind=kind)


def _retry_after(value: str | None) -> datetime | None:
    """Retry-After as an absolute aware time: delta-seconds or an HTTP-date."""
    value = (value or "").strip()
    if value.isdigit():
        return datetime.now(UTC) + timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what it was raised from or during (a transport may hide the OSError in
    __context__), and the members of any exception group."""
    pending, seen = [exc], set()
    while pending:
        current = pending.pop()
        if id(current) not in seen:
            seen.add(id(current))
            yield current
            if isinstance(current, BaseExceptionGroup):
                pending.extend(current.exceptions)
            pending.extend(e for e in (current.__context__, current.__cause__) if e is not None)


def _describe(exc: httpx.HTTPError | OSError) -> tuple[str, str]:
    """A short error kind and message a user understands, from the root cause."""
    if isinstance(exc, httpx.DecodingError):
        return "http", f"body could not be decoded: {exc}"
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return "network", "connection refused"
        if isinstance(cause, socket.gaierror):
            return "network", f"host not found ({cause.strerror})"
        if isinstance(cause, ssl.SSLError):  # verify_message: "certificate has expired"
            return "network", f"TLS error: {getattr(cause, 'verify_message', '') or cause.reason}"
        if isinstance(cause, ConnectionResetError):
            return "network", "connection reset by the server"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "network", f"the server broke HTTP: {exc or 'connection closed early'}"
    return "network", str(exc) or f"connection lost ({type(exc).__name__})"
