"""The ASGI app: the output folder (see files.py), /healthz, and the daemon's /metrics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from aggregator.serve.files import FeedFiles


def _count_atom_feeds(output_dir: Path) -> int:
    if not output_dir.is_dir():
        return 0
    return sum(1 for path in output_dir.rglob("*.atom") if path.is_file())


Health = Callable[[], tuple[bool, dict[str, Any]]]  # healthy?, details for /healthz
Metrics = Callable[[], tuple[bytes, str]]  # body, content type


def create_app(
    output_dir: Path, *, health: Health | None = None, metrics: Metrics | None = None
) -> Starlette:
    """The ASGI app serving `output_dir`; `/` is its index.html.

    The daemon passes `health` (its loop and sources, merged into /healthz, which answers 503
    when unhealthy) and `metrics` (the body of /metrics); `aggregator serve` has neither."""

    async def healthz(request: Request) -> Response:
        feeds = await anyio.to_thread.run_sync(_count_atom_feeds, output_dir)
        healthy, details = health() if health else (True, {})
        body = {"status": "ok" if healthy else "failing", "feeds": feeds, **details}
        return JSONResponse(
            body, status_code=200 if healthy else 503, headers={"cache-control": "no-store"}
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


def serve(output_dir: Path, host: str, port: int) -> None:
    """Serve the output folder until interrupted (blocking)."""
    uvicorn.run(create_app(output_dir), host=host, port=port, server_header=False)
