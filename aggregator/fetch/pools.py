"""Connection pools per host for the fetcher."""

from __future__ import annotations

import functools
import ssl
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable

import httpx

_Origin = tuple[bytes, bytes, int | None]


class HostPools(httpx.AsyncBaseTransport):
    """A connection pool per host (HTTP/1.1 and HTTP/2), for CPU's sake.

    httpcore's pool looks over every connection it holds, for every queued request, each time
    it places one: with fifty kept-alive connections in one pool, a pass of a thousand 304s
    spent more CPU there than on the requests. A pool per host holds at most `per_host`. Pools
    of hosts not asked lately are closed (least recently used first, never one with a response
    still open), so a pass over thousands of hosts does not keep thousands of sockets.
    """

    def __init__(self, per_host: int, keep: int = 64) -> None:
        self._limits = httpx.Limits(max_connections=per_host, max_keepalive_connections=per_host)
        self._keep = keep
        self._pools: OrderedDict[_Origin, httpx.AsyncHTTPTransport] = OrderedDict()
        self._open: Counter[_Origin] = Counter()  # responses not closed yet, per pool
        self._tls: ssl.SSLContext | None = None  # one for all pools: loading the CAs is slow

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        origin = (request.url.raw_scheme, request.url.raw_host, request.url.port)
        pool = self._pools.get(origin)
        if pool is None:
            await self._close_idle()
            pool = httpx.AsyncHTTPTransport(
                verify=self._verify(origin), http2=True, limits=self._limits
            )
            self._pools[origin] = pool
        self._pools.move_to_end(origin)
        self._open[origin] += 1
        try:
            response = await pool.handle_async_request(request)
        except BaseException:
            self._open[origin] -= 1
            raise
        closed = functools.partial(self._open.subtract, (origin,))
        if isinstance(response.stream, httpx.AsyncByteStream):
            response.stream = _Tracked(response.stream, closed)
        else:  # not from an async pool: nothing left open to track
            closed()
        return response

    def _verify(self, origin: _Origin) -> ssl.SSLContext | bool:
        if origin[0] != b"https":
            # A plain-http pool never speaks TLS; False only spares it loading the CA bundle.
            return False
        if self._tls is None:
            self._tls = httpx.create_ssl_context()
        return self._tls

    async def _close_idle(self) -> None:
        for origin in list(self._pools):
            if len(self._pools) < self._keep:
                return
            if self._open[origin] <= 0:
                del self._open[origin]
                await self._pools.pop(origin).aclose()

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            await pool.aclose()


class _Tracked(httpx.AsyncByteStream):
    """A response body that tells its pool when it is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, closed: Callable[[], object]) -> None:
        self._stream = stream
        self._closed: Callable[[], object] | None = closed

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._closed is not None:
                self._closed()
                self._closed = None
