"""The `aggregator` command: one module per command group, thin over config, pipeline, daemon
and serve.

    commands.py  the group, its options, and run, check, fetch, serve
    reports.py   status, clusters
    sources.py   sources list/add/remove/enable/disable
    opml.py      opml import/export
    clean.py     explain, reclean
    common.py    exit codes, loading the config, opening the store, saying what failed once,
                 "did you mean" for names, completing source names, editing the config
"""

from aggregator.cli import clean, opml, reports, sources
from aggregator.cli.commands import main

main.add_command(reports.status)
main.add_command(reports.clusters)
main.add_command(sources.sources)
main.add_command(opml.opml)
main.add_command(clean.explain)
main.add_command(clean.reclean)

__all__ = ["main"]
