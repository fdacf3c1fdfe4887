"""What an answer (or its absence) becomes: a FetchResult, a redirect to follow, a reason.

The Fetcher (__init__.py) walks a source's redirect chain and holds the host's window; this
module reads what each hop brought back: a body within its limit, a redirect it may follow,
the words a user reads for an error.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx

from aggregator.fetch.decode import Decoding
from aggregator.fetch.reach import Reach
from aggregator.models import Document, FetchRequest, FetchResult
from aggregator.urls import is_web_url

MAX_REDIRECTS = 10
REDIRECTS = frozenset({301, 302, 303, 307, 308})
PERMANENT = frozenset({301, 308})
# Small error and redirect bodies are read so the connection can be reused; larger ones are cut.
DRAIN_LIMIT = 65_536


@dataclass
class Chain:
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


def follow(request: FetchRequest, chain: Chain, rsp: httpx.Response) -> FetchResult | None:
    status = rsp.status_code
    location = rsp.headers.get("location")
    if not location:
        return failed(request, chain, "redirects", f"HTTP {status} without a Location header")
    target_url = rsp.url.join(location.strip())
    target = str(target_url)
    if not is_web_url(target):
        return failed(request, chain, "redirects", f"redirect to a non-http(s) URL: {target}")
    refused = chain.reach.refuses_host(target_url.host) if chain.reach else None
    if refused:
        message = f"refused: redirect to {refused} from {chain.reach}"
        return failed(request, chain, "refused", message)
    if target in chain.urls:
        loop = " -> ".join([*chain.urls, target])
        return failed(request, chain, "redirects", f"redirect loop: {loop}")
    if chain.redirects >= MAX_REDIRECTS:
        message = f"more than {MAX_REDIRECTS} redirects: {chain.urls[0]} -> ... -> {target}"
        return failed(request, chain, "redirects", message)
    chain.redirects += 1
    chain.permanent = chain.permanent and status in PERMANENT
    chain.urls.append(target)
    return None


async def read_body(request: FetchRequest, chain: Chain, rsp: httpx.Response) -> FetchResult:
    limit = request.max_bytes
    too_large = f"body larger than {_size(limit)} (limit)"
    declared = rsp.headers.get("content-length", "").strip()
    # An encoded length over the limit means a decoded body over it too: refuse unread.
    if declared.isdigit() and int(declared) > limit:
        return failed(request, chain, "too_large", too_large)
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
            return failed(request, chain, "too_large", too_large)
    if not take(decoding.finish()):
        return failed(request, chain, "too_large", too_large)
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
        result_of(request, chain), document=document, etag=etag, last_modified=last_modified
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


async def drain(rsp: httpx.Response) -> None:
    if rsp.is_stream_consumed or not isinstance(rsp.stream, httpx.AsyncByteStream):
        return  # a response built in memory (MockTransport)
    read = 0
    # The raw stream itself: the body is thrown away, Response's chunking and bookkeeping
    # would be all the cost of a 304.
    async for chunk in rsp.stream:
        read += len(chunk)
        if read > DRAIN_LIMIT:
            return


def result_of(request: FetchRequest, chain: Chain) -> FetchResult:
    """The fields every outcome shares; the validators default to the request's."""
    return FetchResult(
        source=request.source,
        url=request.url,
        final_url=chain.url,
        status=chain.status,
        etag=request.etag,
        last_modified=request.last_modified,
    )


def failed(request: FetchRequest, chain: Chain, kind: str, message: str) -> FetchResult:
    return replace(result_of(request, chain), error=message, error_kind=kind)


def retry_after(value: str | None) -> datetime | None:
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


def describe(exc: httpx.HTTPError | OSError) -> tuple[str, str]:
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
