"""The long-running process around the pipeline.

loop.py     the asyncio loop: a local ticker runs passes, uvicorn serves the output,
            signals stop it warm (SIGTERM) or cold (a second one), SIGHUP reloads
reload.py   a new config applied between passes
notify.py   systemd's notify protocol and watchdog
metrics.py  Prometheus metrics of passes, sources and the server
logs.py     the log's lines: time, level, source; text or JSON (--log-format)
"""
