"""The `aggregator` command: one module per command group, thin over config, pipeline, daemon
and serve.

    commands.py  the group, its options, and run, check, fetch, serve
    reports.py   status, clusters
    sources.py   sources list/add/remove/enable/disable, opml import/export
    clean.py     explain, reclean
    common.py    exit codes, loading the config, opening the store, saying what failed once,
                 "did you mean" for names, completing source names
"""

from aggregator.cli import clean, reports, sources
from aggregator.cli.commands import main

main.add_command(reports.status)
main.add_command(reports.clusters)
main.add_command(sources.sources)
main.add_command(sources.opml)
main.add_command(clean.explain)
main.add_command(clean.reclean)

__all__ = ["main"]
