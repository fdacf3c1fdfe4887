"""The daemon: one asyncio loop that polls due sources on a local clock and serves the feeds.

The schedule of record is each source's next_fetch_at in the store; APScheduler only wakes the
loop every few seconds to run a pass over the sources that are due.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from aggregator.config import Config
from aggregator.pipeline.run import open_store, run_pass
from aggregator.serve import create_app

log = logging.getLogger("aggregator")

TICK_SECONDS = 5


def run_daemon(config: Config) -> None:
    asyncio.run(_serve_and_poll(config))


async def _serve_and_poll(config: Config) -> None:
    store = open_store(config)
    scheduler = AsyncIOScheduler(timezone=UTC)

    async def tick() -> None:
        # Passes run in a worker thread so parsing and cleaning never stall the HTTP server.
        await asyncio.to_thread(run_pass, config, store, due_only=True)

    scheduler.add_job(
        tick,
        "interval",
        seconds=TICK_SECONDS,
        next_run_time=datetime.now(UTC),
        max_instances=1,
        coalesce=True,
        id="poll",
    )
    scheduler.start()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config.output.dir),
            host=config.server.host,
            port=config.server.port,
            log_level="warning",
        )
    )
    log.info(
        "serving %s on http://%s:%d/", config.output.dir, config.server.host, config.server.port
    )
    try:
        await server.serve()
    finally:
        scheduler.shutdown(wait=False)
        store.close()
