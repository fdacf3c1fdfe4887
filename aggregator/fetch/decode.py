"""Content-Encoding undone in bounded steps, so a body is measured as it expands.

httpx's decoders hand back whatever one decompress() call gives: a 16 KB gzip chunk can be
16 MB, and under `gzip, gzip` each of those megabytes expands a thousandfold again before any
caller sees a byte. Here every layer of a stack (`gzip, gzip`, `br, gzip`, ...) hands the next
at most about STEP bytes at a time, and pieces flow through the stack lazily: a reader that
stops at its limit has never held more than a few STEPs per layer, however far the body would
have gone on.

    decoding = Decoding(response.headers.get("content-encoding", ""))
    for piece in decoding.feed(raw_chunk): ...     # each piece at most about STEP bytes
    for piece in decoding.finish(): ...            # once the raw body has ended

An encoding we cannot decode, or a body that is not what its header says, raises
httpx.DecodingError.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any, Protocol

import httpx

STEP = 65_536
# Real servers stack at most two (a proxy gzipping a gzip file); each layer holds a window
# (brotli's up to 16 MB), so a header listing hundreds is refused rather than obeyed.
MAX_LAYERS = 4
_GZIP = 16 + zlib.MAX_WBITS
_GZIP_MAGIC = b"\x1f\x8b"


def _bounded_brotli() -> ModuleType | None:
    """A brotli binding that can stop mid-output (brotli >= 1.2), else None: an older one
    expands a whole input chunk at once, which is the bomb this module exists to stop."""
    for name in ("brotli", "brotlicffi"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        probe: Any = module.Decompressor()
        try:
            probe.process(b"", output_buffer_limit=STEP)
            probe.can_accept_more_data()
            probe.is_finished()
        except (AttributeError, TypeError):
            continue
        return module
    return None


_brotli = _bounded_brotli()
HAS_BROTLI = _brotli is not None


class _Layer(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def finish(self) -> Iterator[bytes]: ...


class Decoding:
    """The decoder of one response body, from its Content-Encoding header."""

    def __init__(self, content_encoding: str) -> None:
        names = [name.strip().lower() for name in content_encoding.split(",")]
        names = [name for name in names if name and name != "identity"]
        if len(names) > MAX_LAYERS:
            raise httpx.DecodingError(
                f"{len(names)} stacked content encodings (at most {MAX_LAYERS})"
            )
        # The header lists encodings in the order they were applied; undo the last first.
        self._layers = [_layer(name) for name in reversed(names)]

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces of the next raw chunk."""
        return self._through(0, data)

    def finish(self) -> Iterator[bytes]:
        """Whatever the layers still hold once the raw body has ended."""
        for depth, layer in enumerate(self._layers):
            for piece in layer.finish():
                yield from self._through(depth + 1, piece)

    def _through(self, depth: int, data: bytes) -> Iterator[bytes]:
        if depth == len(self._layers):
            if data:
                yield data
            return
        for piece in self._layers[depth].feed(data):
            yield from self._through(depth + 1, piece)


def _layer(name: str) -> _Layer:
    if name in ("gzip", "x-gzip"):
        return _Zlib(gzip=True)
    if name == "deflate":
        return _Zlib(gzip=False)
    if name == "br" and _brotli is not None:
        return _Brotli(_brotli)
    raise httpx.DecodingError(f"unsupported Content-Encoding {name!r}")


class _Zlib:
    """gzip (every member of a multi-member body) or deflate (zlib-wrapped or raw)."""

    def __init__(self, *, gzip: bool) -> None:
        self._gzip = gzip
        # deflate waits for two bytes to tell a zlib header from raw deflate, as servers send
        # both; gzip waits for them after a member, to tell another member from trailing junk.
        self._inflate = zlib.decompressobj(_GZIP) if gzip else None
        self._head = b""
        self._ended = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data and not self._ended:
            inflate = self._inflate
            if inflate is None:
                self._head += data
                if len(self._head) < 2:
                    return
                data, self._head = self._head, b""
                inflate = self._inflate = self._start(data)
                if inflate is None:
                    self._ended = True
                    return
            try:
                out = inflate.decompress(data, STEP)
                while True:
                    if out:
                        yield out
                    # A full STEP may leave output inside zlib even when all input is taken.
                    if inflate.eof or (not inflate.unconsumed_tail and len(out) < STEP):
                        break
                    out = inflate.decompress(inflate.unconsumed_tail, STEP)
            except zlib.error as exc:
                raise httpx.DecodingError(f"{self._name}: {exc}") from exc
            if not inflate.eof:
                return
            data, self._inflate = inflate.unused_data, None
            self._ended = not self._gzip

    def finish(self) -> Iterator[bytes]:
        if self._head and not self._gzip and not self._ended:
            # A deflate body of one byte: too short for a header, let zlib judge it.
            self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            head, self._head = self._head, b""
            yield from self.feed(head)
        # Truncated streams are let through, as httpx does: what arrived may still parse.

    @property
    def _name(self) -> str:
        return "gzip" if self._gzip else "deflate"

    def _start(self, head: bytes) -> Any:
        if self._gzip:
            return zlib.decompressobj(_GZIP) if head.startswith(_GZIP_MAGIC) else None
        cmf, flg = head[0], head[1]
        wrapped = cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf << 8 | flg) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)


class _Brotli:
    def __init__(self, module: ModuleType) -> None:
        self._module = module
        self._decompressor: Any = module.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        decompressor = self._decompressor
        if decompressor.is_finished():
            return  # trailing bytes after the stream, ignored as gzip's are
        try:
            out: bytes = decompressor.process(data, output_buffer_limit=STEP)
            # Output can wait inside even once more input is accepted: drain until none comes.
            while not decompressor.is_finished() and (
                out or not decompressor.can_accept_more_data()
            ):
                if out:
                    yield out
                out = decompressor.process(b"", output_buffer_limit=STEP)
            if out:
                yield out
        except self._module.error as exc:
            raise httpx.DecodingError(f"br: {exc}") from exc

    def finish(self) -> Iterator[bytes]:
        return iter(())
