"""Connections for the fetcher: aiohttp's HTTP/1.1 client behind httpx's transport API, each
connection made only where its fetch may go.

Why aiohttp under httpx: the fetcher speaks httpx (requests, responses, errors, and
httpx.MockTransport in tests), but httpcore's pool walks every connection it holds each time it
places a request, so its CPU per request grew with the per-host window; aiohttp's C parser and
pool cost about the same at any window (benchmarks/README.md, "A lighter HTTP path").

Every direct connection is made to an address checked against the fetch's Reach (see
reach.py): a host name is resolved here, each address of the answer checked, and the socket
opened to that very address, so a second DNS answer (rebinding) never reaches the connect. Two
extensions of the request carry what the check needs; a request without them may reach only as
far as its own URL names.

Proxies come from the environment (proxies.py). Through a proxy, the proxy resolves names and
makes the connection, so only what a URL itself says is checked (the fetcher does that for
every hop).
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from ipaddress import ip_address
from typing import TYPE_CHECKING, Protocol

import aiohttp
import httpx

from aggregator.errors import SourceError
from aggregator.fetch.proxies import Proxies, Proxy
from aggregator.fetch.reach import IPAddress, Reach, literal, spell

if TYPE_CHECKING:
    from aiohttp.client_proto import ResponseHandler
    from aiohttp.client_reqrep import ClientRequest
    from aiohttp.connector import Connection
    from aiohttp.tracing import Trace

REACH = "aggregator.reach"  # request extension: the Reach of the fetch the request is a hop of
SOURCE = "aggregator.source"  # request extension: the source's name, for the error
# host, port -> the addresses of its DNS answer, as getaddrinfo spells them
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

_ATTEMPT_DELAY = 0.25  # RFC 8305's connection attempt delay
# httpx's default; aiohttp's own (15 s) would keep a pass's sockets open three times as long.
_KEEPALIVE = 5.0
# h11 took a header block of up to 100 KB; aiohttp's default line limit (8 KB) would turn a
# site's long Content-Security-Policy into an error.
_MAX_LINE = 65_536
# The source a connection is being made for: the connector is handed only the request.
_source: ContextVar[str] = ContextVar("aggregator_fetch_source", default="")
# Where the connector puts the connection a request was sent on (new or kept alive).
_used: ContextVar[list[object] | None] = ContextVar("aggregator_fetch_used", default=None)


async def system_resolve(host: str, port: int) -> list[str]:
    """The system resolver, off the event loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class Network(Protocol):
    """Makes TCP connections to numeric addresses (tests stand in their own)."""

    async def connect_tcp(self, address: str, port: int) -> socket.socket:
        """A connected, non-blocking socket to `address`."""
        ...


class Sockets:
    """The machine's own network."""

    async def connect_tcp(self, address: str, port: int) -> socket.socket:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, (address, port))
        except BaseException:
            sock.close()
            raise
        return sock


_Origin = tuple[str, str, int | None, Reach, Proxy | None]


class HostPools(httpx.AsyncBaseTransport):
    """A connection pool per host and reach (HTTP/1.1), for CPU's sake and safety.

    Pools of hosts not asked lately are closed (least recently used first, never one with a
    response still open), so a pass over thousands of hosts does not keep thousands of sockets.
    A pool has no cap of its own: the fetcher's windows say how many requests go to a host.

    The pool is per reach too: a connection opened for a LAN source must not be lent to a
    public source's fetch of the same host. `resolve` and `network` stand in for the system
    resolver and sockets (tests); every address still goes through the check.
    """

    def __init__(
        self,
        keep: int = 64,
        *,
        resolve: Resolver | None = None,
        network: Network | None = None,
    ) -> None:
        self._keep = keep
        self._resolve = resolve or system_resolve
        self._network = network or Sockets()
        self._proxies = Proxies()
        self._pools: OrderedDict[_Origin, aiohttp.ClientSession] = OrderedDict()
        self._open: Counter[_Origin] = Counter()  # responses not closed yet, per pool
        self._tls: ssl.SSLContext | None = None  # one for all pools: loading the CAs is slow

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        reach = request.extensions.get(REACH)
        if not isinstance(reach, Reach):
            reach = Reach.of(url.host)
        proxy = self._proxies.for_url(url)
        origin = (url.scheme, url.host, url.port, reach, proxy)
        pool = self._pools.get(origin)
        if pool is None:
            await self._close_idle()
            pool = self._pools[origin] = self._pool(reach, proxy)
        self._pools.move_to_end(origin)
        timeout = request.extensions.get("timeout", {})
        headers = request.headers.multi_items()
        proxy_headers = None
        if proxy is not None and proxy.headers:
            # A plain-http request goes to the proxy itself, which reads the header there; a
            # tunnelled one goes on to the origin, so the header goes on the CONNECT only.
            if url.scheme == "http":
                headers += proxy.headers
            else:
                proxy_headers = proxy.headers
        used: list[object] = []
        source = _source.set(str(request.extensions.get(SOURCE) or url.host))
        sent_on = _used.set(used)
        self._open[origin] += 1
        try:
            with _mapped():
                response = await pool.request(
                    request.method,
                    str(url),
                    headers=headers,
                    data=request.content or None,
                    allow_redirects=False,
                    proxy=proxy.url if proxy else None,
                    proxy_headers=proxy_headers,
                    timeout=aiohttp.ClientTimeout(
                        connect=timeout.get("pool"),
                        sock_connect=timeout.get("connect"),
                        sock_read=timeout.get("read"),
                    ),
                )
        except BaseException:
            self._open[origin] -= 1
            raise
        finally:
            _used.reset(sent_on)
            _source.reset(source)
        extensions: dict[str, object] = {"http_version": b"HTTP/1.1"}
        if used:  # the connection itself: the fetcher tells a kept-alive one by it
            extensions["network_stream"] = used[0]
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("ascii", "replace")
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response, functools.partial(self._open.subtract, (origin,))),
            extensions=extensions,
        )

    def _pool(self, reach: Reach, proxy: Proxy | None) -> aiohttp.ClientSession:
        connector: aiohttp.BaseConnector
        if proxy is None:
            connector = _Checked(reach, self._resolve, self._network, self._tls_context)
        else:
            connector = _Proxied(ssl=self._tls_context(), limit=0, keepalive_timeout=_KEEPALIVE)
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            # The fetcher decodes bodies itself, in bounded steps (decode.py), and follows
            # redirects itself, checking each hop.
            auto_decompress=False,
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent"),
            max_line_size=_MAX_LINE,
            max_field_size=_MAX_LINE,
            timeout=aiohttp.ClientTimeout(total=None),
        )

    def _tls_context(self) -> ssl.SSLContext:
        """Made at the first TLS connection: a pass of plain-http feeds never loads the CAs."""
        if self._tls is None:
            self._tls = httpx.create_ssl_context()
        return self._tls

    async def _close_idle(self) -> None:
        for origin in list(self._pools):
            if len(self._pools) < self._keep:
                return
            if self._open[origin] <= 0:
                del self._open[origin]
                await self._pools.pop(origin).close()

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            await pool.close()


class _Body(httpx.AsyncByteStream):
    """A response body as it arrives, still encoded; closing it tells its pool."""

    def __init__(self, response: aiohttp.ClientResponse, closed: Callable[[], object]) -> None:
        self._response = response
        self._closed: Callable[[], object] | None = closed

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped():
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        # A body read to its end gives its connection back for the next request; one left
        # unread (cut at the size limit) closes it.
        self._response.release()
        if self._closed is not None:
            self._closed()
            self._closed = None


@contextmanager
def _mapped() -> Iterator[None]:
    """aiohttp's errors as httpx's, the original kept as the cause."""
    try:
        yield
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc.os_error)) from exc
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc)) from exc
    except aiohttp.ServerTimeoutError as exc:
        raise httpx.ReadTimeout(str(exc)) from exc
    except aiohttp.ClientHttpProxyError as exc:
        raise httpx.ProxyError(f"the proxy answered {exc.status} {exc.message}") from exc
    except aiohttp.ServerDisconnectedError as exc:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.") from exc
    except (aiohttp.ClientPayloadError, aiohttp.ClientResponseError) as exc:
        raise httpx.RemoteProtocolError(str(exc)) from exc
    except aiohttp.InvalidURL as exc:
        raise httpx.InvalidURL(str(exc)) from exc
    except aiohttp.ClientOSError as exc:
        raise httpx.ReadError(str(exc)) from exc
    except aiohttp.ClientError as exc:
        raise httpx.TransportError(str(exc)) from exc


class _Noted(aiohttp.BaseConnector):
    """Notes which connection each request goes out on, for the response to name it."""

    async def connect(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> Connection:
        connection = await super().connect(req, traces, timeout)
        used = _used.get()
        if used is not None and connection.protocol is not None:
            used.append(connection.protocol)
        return connection


class _Proxied(_Noted, aiohttp.TCPConnector):
    """aiohttp's own connector, for requests that go through a proxy."""


class _Checked(_Noted):
    """Connects only to addresses its reach allows, and to exactly the address it checked."""

    def __init__(
        self,
        reach: Reach,
        resolve: Resolver,
        network: Network,
        tls: Callable[[], ssl.SSLContext],
    ) -> None:
        super().__init__(limit=0, keepalive_timeout=_KEEPALIVE)
        self._reach = reach
        self._resolve = resolve
        self._network = network
        self._tls = tls

    # The one step a connector of its own supplies, as aiohttp's UnixConnector does: the pool,
    # keep-alive and HTTP stay aiohttp's.
    async def _create_connection(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        host, port = req.url.raw_host or "", req.port or 0
        tls = self._tls() if req.is_ssl() else None
        try:
            async with asyncio.timeout(timeout.sock_connect):
                sock = await self._connect(host, port)
                try:
                    _, protocol = await asyncio.get_running_loop().create_connection(
                        self._factory,
                        sock=sock,
                        ssl=tls,
                        server_hostname=host.rstrip(".") if tls else None,
                    )
                except BaseException:
                    sock.close()
                    raise
        except TimeoutError:
            raise  # aiohttp's to map (a connect timeout)
        except OSError as exc:
            raise aiohttp.ClientConnectorError(req.connection_key, exc) from exc
        return protocol

    async def _connect(self, host: str, port: int) -> socket.socket:
        addresses = await self._addresses(host, port)
        allowed = [address for address in addresses if self._reach.refuses(address) is None]
        if not allowed:
            first = addresses[0]
            shown = f"{self._reach.refuses(first)} ({spell(first)})"
            if literal(host) is None:
                shown = f"{host} resolves to {shown}"
            raise SourceError(_source.get(), f"refused: {shown} from {self._reach}")
        if len(allowed) == 1:
            return await self._network.connect_tcp(str(allowed[0]), port)
        return await self._race(allowed, port)

    async def _race(self, addresses: list[IPAddress], port: int) -> socket.socket:
        """Happy Eyeballs (RFC 8305) over the checked addresses: the next attempt starts when
        one fails or after a short delay, and the first connection wins. Tried one by one, an
        address that drops packets (often an IPv6 one) would hold the fetch for the whole
        connect timeout."""
        waiting = list(addresses)
        running: set[asyncio.Task[socket.socket]] = set()
        failures: list[BaseException] = []
        won: list[socket.socket] = []
        try:
            while (waiting or running) and not won:
                if waiting:
                    connect = self._network.connect_tcp(str(waiting.pop(0)), port)
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
                if isinstance(outcome, socket.socket):
                    won.append(outcome)
            for extra in won[1:]:  # connected in the same instant as the winner
                extra.close()
        if won:
            return won[0]
        raise failures[0]

    async def _addresses(self, host: str, port: int) -> list[IPAddress]:
        numeric = literal(host)
        if numeric is not None:
            return [numeric]
        try:
            answer = await self._resolve(host, port)
            addresses = list(dict.fromkeys(ip_address(address) for address in answer))
        except ValueError as exc:
            raise OSError(f"bad DNS answer for {host}: {exc}") from exc
        if not addresses:
            raise OSError(f"no address for {host}")
        return addresses
