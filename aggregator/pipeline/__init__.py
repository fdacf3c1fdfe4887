"""The one place where the stages are composed.

    sources/fetch ─▶ parse ─▶ clean ─▶ dedupe ─▶ store ─▶ dedupe.merge_cluster ─▶ render

run.py runs a pass: every due source concurrently (ingest.py: fetches on the event loop,
parsing and cleaning in worker processes (process.py), store writes on one thread, one
transaction per source so a crash never half-saves a source), then re-renders the feeds
(publish.py). This file stays empty so that worker processes, which import process.py, do not
pay for the store, the fetcher and the renderer.
"""
