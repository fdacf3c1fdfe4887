"""Serve stage: the output folder over HTTP, with validators, 304s and gzip, plus /healthz."""

from aggregator.serve.app import Health, Metrics, create_app, serve
from aggregator.serve.files import FeedFiles, accepts_gzip, gzip_etag, media_type_for

__all__ = [
    "FeedFiles",
    "Health",
    "Metrics",
    "accepts_gzip",
    "create_app",
    "gzip_etag",
    "media_type_for",
    "serve",
]
