"""The feed farm itself: well-formed feeds, honest validators, churn, gzip only when asked."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from lxml import etree

from tests.farm import Farm, FarmConfig


@pytest.fixture(scope="module")
def farm() -> Iterator[Farm]:
    with Farm(FarmConfig(feeds=12, items=5, churn=0.25, gbk_fraction=0.3, gzip_fraction=0.5)) as f:
        yield f


def test_every_good_feed_is_well_formed_xml_in_its_declared_encoding(farm: Farm) -> None:
    kinds = set()
    with httpx.Client(headers={"Accept-Encoding": "identity"}) as client:
        for url in farm.feed_urls():
            response = client.get(url)
            meta = farm.feed_meta(url)
            assert response.status_code == 200 and response.content == farm.body(url)
            assert response.headers["content-type"].endswith(f"charset={meta.encoding}")
            root = etree.fromstring(response.content)
            kinds.add((root.tag.rsplit("}", 1)[-1], meta.encoding))
            guids = [item.guid for item in farm.items(url)]
            assert len(guids) == 5 and all(guid.encode() in response.content for guid in guids)
    assert {tag for tag, _ in kinds} == {"rss", "feed"}
    assert {encoding for _, encoding in kinds} == {"UTF-8", "GBK"}


def test_validators_304_and_churn(farm: Farm) -> None:
    with httpx.Client() as client:
        first = {url: client.get(url) for url in farm.feed_urls()}
        for url, response in first.items():
            etag, modified = response.headers["etag"], response.headers["last-modified"]
            assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
            assert client.get(url, headers={"If-Modified-Since": modified}).status_code == 304
        farm.next_pass()
        changed = [
            url
            for url, response in first.items()
            if client.get(url, headers={"If-None-Match": response.headers["etag"]}).status_code
            == 200
        ]
    assert len(changed) == 3  # 25% of 12


def test_gzip_only_when_accepted(farm: Farm) -> None:
    url = next(u for u in farm.feed_urls() if farm.feed_meta(u).gzip)
    with httpx.Client() as client:
        plain = client.get(url, headers={"Accept-Encoding": "identity"})
        packed = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert plain.content == packed.content == farm.body(url)


def test_unknown_paths_are_404(farm: Farm) -> None:
    with httpx.Client() as client:
        assert client.get(farm.base_url + "/nothing-here").status_code == 404
        assert client.get(farm.base_url + "/feeds/9999.xml").status_code == 404
