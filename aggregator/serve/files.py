"""The output folder over HTTP: feeds, pages and OPML with explicit media types, validators
(ETag, Last-Modified, 304) and gzip.

gzip is done here rather than by GZipMiddleware: the middleware keeps the file's strong ETag on
the compressed body, so two different byte sequences would share one strong validator, and it
skips Vary on small bodies and 304s. Here each representation has its own ETag (identity `"x"`,
gzip `"x-gz"`), every file response carries `Vary: Accept-Encoding`, and a conditional request
matches either ETag, since both name the same version of the file.

Feed readers poll all day with If-None-Match, so the 304 answer skips the worker-thread hop of
StaticFiles: the validators of every file served are kept in memory by path, checked against a
stat() of the file (a rewrite is a new inode, so it invalidates them), and a match answers 304
on the event loop.
"""

from __future__ import annotations

import gzip
import mimetypes
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Receive, Scope, Send

MEDIA_TYPES = {
    ".rss": "application/rss+xml; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
    ".json": "application/feed+json; charset=utf-8",
    ".opml": "text/x-opml; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
CACHE_CONTROL = "public, max-age=60"
GZIP_MIN_SIZE = 512  # below this the gzip header eats most of the saving
_GZIP_SUFFIX = "-gz"
_CACHE_BYTES = 32 * 1024 * 1024


def media_type_for(path: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    if suffix in MEDIA_TYPES:
        return MEDIA_TYPES[suffix]
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def _compressible(media_type: str) -> bool:
    kind = media_type.partition(";")[0].strip()
    return kind.startswith("text/") or kind.endswith(("+xml", "+json", "/xml", "/json"))


# Real clients send a few dozen bytes. Parsing a longer header would cost the event loop time
# in proportion to its length, for nothing: the file as it is is always a valid answer.
MAX_ACCEPT_ENCODING = 1024


def accepts_gzip(accept_encoding: str) -> bool:
    """True when the client accepts gzip with a non-zero quality; an explicit gzip entry
    overrides `*` (RFC 9110 12.5.3). A header longer than MAX_ACCEPT_ENCODING gets no gzip."""
    if len(accept_encoding) > MAX_ACCEPT_ENCODING:
        return False
    qualities: dict[str, float] = {}
    for part in accept_encoding.split(","):
        coding, _, params = part.partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        qualities[coding.strip().lower()] = quality
    for coding in ("gzip", "x-gzip", "*"):
        if coding in qualities:
            return qualities[coding] > 0
    return False


def gzip_etag(etag: str) -> str:
    return etag[:-1] + _GZIP_SUFFIX + '"' if etag.endswith('"') else etag + _GZIP_SUFFIX


class _GzipCache:
    """Compressed bodies by file version, so a popular feed is compressed once per render."""

    def __init__(self, max_bytes: int = _CACHE_BYTES) -> None:
        self._max_bytes = max_bytes
        self._size = 0
        self._entries: OrderedDict[tuple[str, int, int, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str, stat_result: os.stat_result) -> bytes:
        key = (path, stat_result.st_ino, stat_result.st_mtime_ns, stat_result.st_size)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        with open(path, "rb") as handle:
            # mtime=0: the same file always compresses to the same bytes.
            body = gzip.compress(handle.read(), compresslevel=6, mtime=0)
        with self._lock:
            if key not in self._entries:
                self._entries[key] = body
                self._size += len(body)
            while self._size > self._max_bytes and len(self._entries) > 1:
                _, dropped = self._entries.popitem(last=False)
                self._size -= len(dropped)
        return body


class _GzipFileResponse(Response):
    """A file sent gzip-compressed; compression runs in a worker thread, not the event loop."""

    def __init__(
        self,
        path: str,
        stat_result: os.stat_result,
        headers: dict[str, str],
        media_type: str,
        cache: _GzipCache,
    ) -> None:
        super().__init__(status_code=200, headers=headers, media_type=media_type)
        self._path = path
        self._stat = stat_result
        self._cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await anyio.to_thread.run_sync(self._cache.get, self._path, self._stat)
        self.headers["content-length"] = str(len(body))
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        head_only = scope["method"].upper() == "HEAD"
        await send({"type": "http.response.body", "body": b"" if head_only else body})


@dataclass(frozen=True, slots=True)
class _Validators:
    """What a 304 for one served file needs, valid while the file's stat key is unchanged."""

    full_path: str
    key: tuple[int, int, int]  # inode, mtime_ns, size
    etag: str  # of the identity representation
    gzip_etag: str | None  # of the gzip one, when the file is served compressed


def _stat_key(stat_result: os.stat_result) -> tuple[int, int, int]:
    return (stat_result.st_ino, stat_result.st_mtime_ns, stat_result.st_size)


def _offers(if_none_match: str, etags: tuple[str, ...]) -> bool:
    """Whether If-None-Match names one of `etags`, by weak comparison (RFC 9110 13.1.2): a W/
    prefix from a proxy still matches."""
    # A tag can only match where its text occurs: a long list naming none of them is not split.
    if not any(etag in if_none_match for etag in etags):
        return False
    return any(tag.strip().removeprefix("W/") in etags for tag in if_none_match.split(","))


class FeedFiles(StaticFiles):
    """StaticFiles (path checks, 404, HEAD, ranges, If-Modified-Since) with explicit media
    types, Cache-Control, per-representation gzip and a cheap 304 path."""

    def __init__(self, directory: Path) -> None:
        # check_dir off: the daemon may start serving before its first render creates the folder.
        super().__init__(directory=directory, html=True, check_dir=False)
        self._gzip_cache = _GzipCache()
        # Filled only by the full path, after StaticFiles has checked the path is inside the
        # folder; bounded by the number of files in it.
        self._validators: dict[str, _Validators] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            response = self._quick_not_modified(scope)
            if response is not None:
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _quick_not_modified(self, scope: Scope) -> Response | None:
        request_headers = Headers(scope=scope)
        if_none_match = request_headers.get("if-none-match")
        if not if_none_match or "range" in request_headers:
            return None
        known = self._validators.get(self.get_path(scope))
        if known is None:
            return None
        try:
            # A stat on the loop costs microseconds; the thread hop it saves costs far more.
            current = os.stat(known.full_path)
        except OSError:
            return None
        if _stat_key(current) != known.key:
            return None
        if not _offers(if_none_match, ("*", known.etag, gzip_etag(known.etag))):
            return None
        gzipped = known.gzip_etag is not None and accepts_gzip(
            request_headers.get("accept-encoding", "")
        )
        return Response(
            status_code=304,
            headers={
                "cache-control": CACHE_CONTROL,
                "vary": "Accept-Encoding",
                "etag": known.gzip_etag if gzipped and known.gzip_etag else known.etag,
            },
        )

    def _remember(self, scope: Scope, path: str, stat_result: os.stat_result, etag: str) -> None:
        media_type = media_type_for(path)
        compressible = stat_result.st_size >= GZIP_MIN_SIZE and _compressible(media_type)
        self._validators[self.get_path(scope)] = _Validators(
            full_path=path,
            key=_stat_key(stat_result),
            etag=etag,
            gzip_etag=gzip_etag(etag) if compressible else None,
        )

    async def check_config(self) -> None:
        # A missing folder answers 404 until render creates it, instead of a 500 forever.
        return None

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        path = os.fspath(full_path)
        media_type = media_type_for(path)
        request_headers = Headers(scope=scope)
        headers = {"cache-control": CACHE_CONTROL, "vary": "Accept-Encoding"}
        response: Response = FileResponse(
            path,
            status_code=status_code,
            headers=headers,
            media_type=media_type,
            stat_result=stat_result,
        )
        etag = response.headers["etag"]
        if status_code == 200:
            self._remember(scope, path, stat_result, etag)
        compress = (
            status_code == 200
            and "range" not in request_headers
            and stat_result.st_size >= GZIP_MIN_SIZE
            and _compressible(media_type)
            and accepts_gzip(request_headers.get("accept-encoding", ""))
        )
        if compress:
            headers = {
                **headers,
                "etag": gzip_etag(etag),
                "last-modified": response.headers["last-modified"],
                "content-encoding": "gzip",
            }
            response = _GzipFileResponse(path, stat_result, headers, media_type, self._gzip_cache)
        if self.is_not_modified(response.headers, request_headers):
            return NotModifiedResponse(response.headers)
        return response

    def is_not_modified(self, response_headers: Headers, request_headers: Headers) -> bool:
        if_none_match = request_headers.get("if-none-match")
        if not if_none_match:
            return super().is_not_modified(response_headers, request_headers)
        if if_none_match.strip() == "*":
            return True
        etag = response_headers["etag"]
        base = etag.replace(_GZIP_SUFFIX + '"', '"')
        return _offers(if_none_match, (base, gzip_etag(base)))
