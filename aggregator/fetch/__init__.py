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
chain was 301/308. Nothing is cached here: every poll asks the server. The Fetcher walks the
chain and holds the host's window; what each hop's answer becomes is answers.py's.

How many requests go to one host at once is that host's window (windows.py): it starts at
`per_host`, grows to `per_host_max` while the host answers cleanly and quickly, and halves when
it does not; `Fetcher.host_windows()` shows each host's.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime

import httpx

from aggregator import __version__
from aggregator.errors import SourceError
from aggregator.fetch.answers import (
    REDIRECTS,
    Chain,
    describe,
    drain,
    failed,
    follow,
    read_body,
    result_of,
    retry_after,
)
from aggregator.fetch.decode import HAS_BROTLI
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
from aggregator.models import FetchRequest, FetchResult
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
        chain = Chain([request.url])
        try:
            result = await self._walk(request, chain)
        except (TimeoutError, httpx.TimeoutException):
            message = f"timed out after {request.timeout:g} s"
            result = failed(request, chain, "timeout", message)
        except httpx.InvalidURL as exc:
            result = failed(request, chain, "invalid_url", f"invalid URL {chain.url}: {exc}")
        except SourceError as exc:  # a DNS answer out of the source's reach (pools.py)
            result = failed(request, chain, "refused", exc.reason)
        except HostPausedError as paused:
            result = replace(
                failed(request, chain, "paused", str(paused)), retry_after=paused.until
            )
        except (httpx.HTTPError, OSError) as exc:
            result = failed(request, chain, *describe(exc))
        return replace(result, elapsed=time.monotonic() - started)

    async def _walk(self, request: FetchRequest, chain: Chain) -> FetchResult:
        if not is_web_url(request.url):
            return failed(request, chain, "invalid_url", f"not an http(s) URL: {request.url}")
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
        self, request: FetchRequest, chain: Chain, url: httpx.URL, answer: Answer
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
            if status in REDIRECTS:
                await drain(rsp)
                return follow(request, chain, rsp)
            permanent = chain.url if chain.redirects and chain.permanent else None
            if status == 304:
                # Read the (empty) body to its end: a response closed unread takes its
                # connection with it, and a pass of 304s would open one per source.
                await drain(rsp)
                return replace(
                    result_of(request, chain),
                    not_modified=True,
                    etag=rsp.headers.get("etag") or request.etag,
                    last_modified=rsp.headers.get("last-modified") or request.last_modified,
                    permanent_url=permanent,
                )
            if 200 <= status < 300:
                result = await read_body(request, chain, rsp)
                return replace(result, permanent_url=permanent)
            await drain(rsp)
            kind = {404: "not_found", 410: "gone"}.get(status, "http")
            retry = retry_after(rsp.headers.get("retry-after")) if status in (429, 503) else None
            if retry is not None:
                answer.pause = (retry - datetime.now(UTC)).total_seconds()
            # The standard phrase, not the server's: some say "OK" on a 500.
            reason = httpx.codes.get_reason_phrase(status) or rsp.reason_phrase
            outcome = failed(request, chain, kind, f"HTTP {status} {reason}".strip())
            return replace(outcome, retry_after=retry, permanent_url=permanent)
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
