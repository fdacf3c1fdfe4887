"""Connection pools per host for the fetcher, each connecting only where its fetches may go.

Every connection is made to an address checked against the fetch's Reach (see reach.py): a
host name is resolved here, each address of the answer checked, and the socket opened to that
very address, so a second DNS answer (rebinding) never reaches the connect. Two extensions of
the request carry what the check needs; a request without them may reach only as far as its
own URL names.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextvars import ContextVar
from ipaddress import ip_address
from typing import Any

import httpcore
import httpx

from aggregator.errors import SourceError
from aggregator.fetch.reach import IPAddress, Reach, literal, spell

REACH = "aggregator.reach"  # request extension: the Reach of the fetch the request is a hop of
SOURCE = "aggregator.source"  # request extension: the source's name, for the error
# host, port -> the addresses of its DNS answer, as getaddrinfo spells them
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

_Origin = tuple[bytes, bytes, int | None, Reach]
_ATTEMPT_DELAY = 0.25  # RFC 8305's connection attempt delay
# The source a connection is being made for: httpcore hands the network backend only a host.
_source: ContextVar[str] = ContextVar("aggregator_fetch_source", default="")


async def system_resolve(host: str, port: int) -> list[str]:
    """The system resolver, off the event loop, as anyio's own connect would ask it."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class HostPools(httpx.AsyncBaseTransport):
    """A connection pool per host and reach (HTTP/1.1 and HTTP/2), for CPU's sake and safety.

    httpcore's pool looks over every connection it holds, for every queued request, each time
    it places one: with fifty kept-alive connections in one pool, a pass of a thousand 304s
    spent more CPU there than on the requests. A pool per host holds at most `per_host`. Pools
    of hosts not asked lately are closed (least recently used first, never one with a response
    still open), so a pass over thousands of hosts does not keep thousands of sockets.

    The pool is per reach too: a connection opened for a LAN source must not be lent to a
    public source's fetch of the same host. `resolve` and `network` stand in for the system
    resolver and sockets (tests); every address still goes through the check.
    """

    def __init__(
        self,
        per_host: int,
        keep: int = 64,
        *,
        resolve: Resolver | None = None,
        network: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._limits = httpx.Limits(max_connections=per_host, max_keepalive_connections=per_host)
        self._keep = keep
        self._resolve = resolve or system_resolve
        self._network = network or httpcore.AnyIOBackend()
        self._pools: OrderedDict[_Origin, _Pool] = OrderedDict()
        self._open: Counter[_Origin] = Counter()  # responses not closed yet, per pool
        self._tls: ssl.SSLContext | None = None  # one for all pools: loading the CAs is slow

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        reach = request.extensions.get(REACH)
        if not isinstance(reach, Reach):
            reach = Reach.of(url.host)
        origin = (url.raw_scheme, url.raw_host, url.port, reach)
        pool = self._pools.get(origin)
        if pool is None:
            await self._close_idle()
            pool = self._pools[origin] = self._pool(origin)
        self._pools.move_to_end(origin)
        self._open[origin] += 1
        token = _source.set(str(request.extensions.get(SOURCE) or url.host))
        try:
            response = await pool.handle_async_request(request)
        except BaseException:
            self._open[origin] -= 1
            raise
        finally:
            _source.reset(token)
        closed = functools.partial(self._open.subtract, (origin,))
        if isinstance(response.stream, httpx.AsyncByteStream):
            response.stream = _Tracked(response.stream, closed)
        else:  # not from an async pool: nothing left open to track
            closed()
        return response

    def _pool(self, origin: _Origin) -> _Pool:
        scheme, _, _, reach = origin
        # A plain-http pool never speaks TLS; httpcore makes no context for it.
        tls = self._tls_context() if scheme == b"https" else None
        return _Pool(
            httpcore.AsyncConnectionPool(
                ssl_context=tls,
                max_connections=self._limits.max_connections,
                max_keepalive_connections=self._limits.max_keepalive_connections,
                keepalive_expiry=self._limits.keepalive_expiry,
                http1=True,
                http2=True,
                network_backend=_Checked(reach, self._resolve, self._network),
            )
        )

    def _tls_context(self) -> ssl.SSLContext:
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


class _Pool(httpx.AsyncHTTPTransport):
    """httpx's transport (request and error mapping) over a pool we build ourselves: httpx
    offers no way to give its pool a network backend."""

    def __init__(self, pool: httpcore.AsyncConnectionPool) -> None:
        # Not super().__init__(): it would build a pool (and a TLS context) only to drop it.
        self._pool = pool


class _Checked(httpcore.AsyncNetworkBackend):
    """Connects only to addresses its reach allows, and to exactly the address it checked."""

    def __init__(
        self, reach: Reach, resolve: Resolver, network: httpcore.AsyncNetworkBackend
    ) -> None:
        self._reach = reach
        self._resolve = resolve
        self._network = network

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._addresses(host, port, timeout)
        allowed = [address for address in addresses if self._reach.refuses(address) is None]
        if not allowed:
            first = addresses[0]
            shown = f"{self._reach.refuses(first)} ({spell(first)})"
            if literal(host) is None:
                shown = f"{host} resolves to {shown}"
            raise SourceError(_source.get(), f"refused: {shown} from {self._reach}")
        if len(allowed) == 1:
            return await self._network.connect_tcp(
                str(allowed[0]), port, timeout, local_address, socket_options
            )
        return await self._race(allowed, port, timeout, local_address, socket_options)

    async def _race(
        self,
        addresses: list[IPAddress],
        port: int,
        timeout: float | None,
        local_address: str | None,
        socket_options: Iterable[Any] | None,
    ) -> httpcore.AsyncNetworkStream:
        """Happy Eyeballs (RFC 8305) over the checked addresses, as anyio does over a name's
        when it resolves it itself: the next attempt starts when one fails or after a short
        delay, and the first connection wins. Tried one by one, an address that drops packets
        (often an IPv6 one) would hold the fetch for the whole connect timeout."""
        waiting = list(addresses)
        running: set[asyncio.Task[httpcore.AsyncNetworkStream]] = set()
        failures: list[BaseException] = []
        won: list[httpcore.AsyncNetworkStream] = []
        try:
            while (waiting or running) and not won:
                if waiting:
                    connect = self._network.connect_tcp(
                        str(waiting.pop(0)), port, timeout, local_address, socket_options
                    )
                    running.add(asyncio.create_task(connect))
                done, running = await asyncio.wait(
                    running,
                    timeout=_ATTEMPT_DELAY if waiting else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for task in done:
                    error = task.exception()
                    if error is None:
                        won.append(task.result())
                    else:
                        failures.append(error)
        finally:
            for task in running:
                task.cancel()
            for outcome in await asyncio.gather(*running, return_exceptions=True):
                if isinstance(outcome, httpcore.AsyncNetworkStream):
                    won.append(outcome)
            for extra in won[1:]:  # connected in the same instant as the winner
                await extra.aclose()
        if won:
            return won[0]
        raise failures[0]

    async def _addresses(self, host: str, port: int, timeout: float | None) -> list[IPAddress]:
        numeric = literal(host)
        if numeric is not None:
            return [numeric]
        try:
            async with asyncio.timeout(timeout):
                answer = await self._resolve(host, port)
            addresses = list(dict.fromkeys(ip_address(address) for address in answer))
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except (OSError, ValueError) as exc:
            # Mapped as httpcore maps its own connect's errors; the cause still says which.
            raise httpcore.ConnectError(str(exc)) from exc
        if not addresses:
            raise httpcore.ConnectError(f"no address for {host}")
        return addresses

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        return await self._network.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


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
