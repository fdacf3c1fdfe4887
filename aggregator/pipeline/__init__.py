"""The one place where the stages are composed.

    sources/fetch ─▶ parse ─▶ clean ─▶ dedupe.identify ─▶ dedupe clusters ─▶ store ─▶ render
    (event loop)     └───── worker processes (process.py) ─────┘   └─ store thread ─┘

    run.py      a pass: choose the due sources, ingest them concurrently, then render what
                changed (publish.py)
    claims.py   which sources a pass works on: batches of due ones, by name, leases kept
    ingest.py   one source's whole job, top to bottom (Ingest._refresh)
    report.py   what that job comes to: the source's report, what it left with the store
    process.py  the CPU jobs the workers run: parse, clean, tag, identify
    recipe.py   what a job needs to know of its source (Recipe) and what it returns (Processed)
    cluster.py  exact and near-duplicate clustering against the store, on the store thread
    writer.py   group commit: the saves of many sources in one transaction, each in a savepoint
    waiting.py  fetched bodies waiting for the CPU, in memory or in files, bounded
    publish.py  the feeds and pages rendered from the store
    reclean.py  stored articles cleaned again with the current rules (`aggregator reclean`)
    discover.py a would-be source checked, and a page's announced feed found (`sources add`)
    worker.py   how a worker process starts (light: the pool imports it in every worker)

A source's save either commits whole or not at all (its savepoint), so a crash never half-saves
a source. This file stays empty so that worker processes, which import process.py, do not pay
for the store, the fetcher and the renderer.
"""
