"""The in-memory validators behind quick 304s: never stale after a rewrite or a removal."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from aggregator.serve import gzip_etag
from tests.test_serve import GZIP, IDENTITY, render_sample, running


def test_a_file_replaced_atomically_is_served_anew_to_the_old_etag(tmp_path: Path) -> None:
    output = tmp_path / "public"
    render_sample(output)
    feed = output / "all.atom"
    with running(output) as (url, _), httpx.Client(base_url=url) as http:
        etag = http.get("/all.atom", headers=IDENTITY).headers["etag"]
        assert http.get("/all.atom", headers={**IDENTITY, "If-None-Match": etag}).status_code == 304
        # As render replaces a feed: a new file of the same size renamed over the old one.
        replacement = tmp_path / "next.atom"
        replacement.write_bytes(feed.read_bytes().replace(b"Aggregator", b"Aggregated"))
        os.replace(replacement, feed)

        again = http.get("/all.atom", headers={**IDENTITY, "If-None-Match": etag})
        assert again.status_code == 200
        assert b"Aggregated" in again.content
        assert again.headers["etag"] != etag


def test_a_quick_304_names_the_representation_the_client_would_get(tmp_path: Path) -> None:
    output = tmp_path / "public"
    render_sample(output)
    with running(output) as (url, _), httpx.Client(base_url=url) as http:
        etag = http.get("/all.json", headers=IDENTITY).headers["etag"]
        for headers, expected in ((IDENTITY, etag), (GZIP, gzip_etag(etag))):
            for _ in range(2):  # the second answer comes from the remembered validators
                answer = http.get("/all.json", headers={**headers, "If-None-Match": etag})
                assert answer.status_code == 304
                assert answer.headers["etag"] == expected
                assert answer.headers["vary"] == "Accept-Encoding"
        (output / "all.json").unlink()
        gone = http.get("/all.json", headers={**IDENTITY, "If-None-Match": etag})
        assert gone.status_code == 404
