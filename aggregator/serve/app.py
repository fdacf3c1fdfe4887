"""The ASGI app: the output folder (see files.py), /healthz, and the daemon's /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from uvicorn.config import STARTUP_FAILURE

from aggregator.serve.files import FeedFiles
from aggregator.serve.guard import Limits, server_config
from aggregator.serve.resources import log_accept_errors


def _count_atom_feeds(output_dir: Path) -> int:
    if not output_dir.is_dir():
        return 0
    return sum(1 for path in output_dir.rglob("*.atom") if path.is_file())


# "degraded" still answers 200: the files served are fine, only not as fresh as they should be.
HealthStatus = Literal["ok", "degraded", "failing"]
Health = Callable[[], tuple[HealthStatus, dict[str, Any]]]  # status, details for /healthz
Metrics = Callable[[], tuple[bytes, str]]  # body, content type


def create_app(
    output_dir: Path, *, health: Health | None = None, metrics: Metrics | None = None
) -> Starlette:
    """The ASGI app serving `output_dir`; `/` is its index.html.

    The daemon passes `health` (its loop and sources, merged into /healthz, which answers 503
    when failing) and `metrics` (the body of /metrics); `aggregator serve` has neither."""

    async def healthz(request: Request) -> Response:
        feeds = await anyio.to_thread.run_sync(_count_atom_feeds, output_dir)
        status, details = health() if health else ("ok", {})
        body = {"status": status, "feeds": feeds, **details}
        return JSONResponse(
            body,
            status_code=503 if status == "failing" else 200,
            headers={"cache-control": "no-store"},
        )

    routes = [Route("/healthz", healthz, methods=["GET"])]
    if metrics is not None:
        expose = metrics

        async def metrics_page(request: Request) -> Response:
            body, content_type = expose()
            return Response(
                body, headers={"content-type": content_type, "cache-control": "no-store"}
            )

        routes.append(Route("/metrics", metrics_page, methods=["GET"]))
    return Starlette(routes=[*routes, Mount("/", app=FeedFiles(output_dir))])


def serve(output_dir: Path, host: str, port: int, *, limits: Limits | None = None) -> None:
    """Serve the output folder until interrupted (blocking); `limits` bound each connection."""
    config, guard = server_config(create_app(output_dir), host=host, port=port, limits=limits)
    server = uvicorn.Server(config)

    async def run() -> None:
        log_accept_errors(asyncio.get_running_loop(), guard)
        await server.serve()

    # As uvicorn.run: Ctrl-C is a normal way out, a socket that cannot be bound exits 3.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    if not server.started:
        sys.exit(STARTUP_FAILURE)
