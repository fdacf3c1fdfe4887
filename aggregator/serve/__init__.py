"""Serve stage: the output folder over HTTP, with validators, 304s and gzip, plus /healthz."""

from aggregator.serve.app import Health, HealthStatus, Metrics, create_app, serve
from aggregator.serve.files import FeedFiles, accepts_gzip, gzip_etag, media_type_for
from aggregator.serve.guard import ConnectionGuard, GuardStats, Limits, server_config
from aggregator.serve.resources import log_accept_errors

__all__ = [
    "ConnectionGuard",
    "FeedFiles",
    "GuardStats",
    "Health",
    "HealthStatus",
    "Limits",
    "Metrics",
    "accepts_gzip",
    "create_app",
    "gzip_etag",
    "log_accept_errors",
    "media_type_for",
    "serve",
    "server_config",
]
