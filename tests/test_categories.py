"""A source's `categories`: its entries' own categories become tags (the default), or not."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.config import load_config
from aggregator.pipeline.run import open_store, run_pass


def _config(tmp_path: Path, categories: str | None) -> Path:
    posts = tmp_path / "posts"
    posts.mkdir()
    (posts / "one.md").write_text(
        "---\ntitle: One\ndate: 2024-05-01T10:00:00+08:00\n"
        "categories: [Upstream, Politics]\ntags: [Misc]\n---\nA body of a few words.\n",
        encoding="utf-8",
    )
    setting = f"\n    categories: {categories}" if categories else ""
    config = tmp_path / "aggregator.yaml"
    config.write_text(
        'store: {url: "sqlite:///store.db"}\noutput: {dir: public}\nsources:\n'
        f"  - name: mine\n    kind: posts\n    path: posts\n    tags: [mine]{setting}\n",
        encoding="utf-8",
    )
    return config


@pytest.mark.parametrize(
    ("categories", "tags"),
    [(None, {"mine", "upstream", "politics", "misc"}), ("ignore", {"mine"})],
)
def test_a_source_decides_whether_categories_become_tags(
    tmp_path: Path, categories: str | None, tags: set[str]
) -> None:
    config = load_config(_config(tmp_path, categories))
    store = open_store(config)
    try:
        run_pass(config, store)
        assert {tag.slug for tag in store.tag_summaries()} == tags
    finally:
        store.close()
    assert {path.stem for path in (tmp_path / "public" / "tags").glob("*.atom")} == tags


def test_the_index_lists_the_users_tags_first_each_group_in_any_case(tmp_path: Path) -> None:
    posts = tmp_path / "posts"
    posts.mkdir()
    (posts / "one.md").write_text(
        "---\ntitle: One\ndate: 2024-05-01T10:00:00+08:00\n"
        "categories: [Adblocker, API, zlib]\n---\nA body of a few words.\n",
        encoding="utf-8",
    )
    config_file = tmp_path / "aggregator.yaml"
    config_file.write_text(
        'store: {url: "sqlite:///store.db"}\noutput: {dir: public}\nsources:\n'
        "  - {name: mine, kind: posts, path: posts, tags: [zeta, Beta]}\n"
        "rules:\n  - {tag: alpha, match: body}\n",
        encoding="utf-8",
    )
    config = load_config(config_file)
    store = open_store(config)
    try:
        run_pass(config, store)
    finally:
        store.close()
    index = (tmp_path / "public" / "index.html").read_text(encoding="utf-8")
    rows = index.split('<h2 id="tags">', 1)[1]
    order = sorted(["alpha", "Beta", "zeta", "Adblocker", "API", "zlib"], key=rows.find)
    assert order == ["alpha", "Beta", "zeta", "Adblocker", "API", "zlib"]
    assert all(rows.find(name) > 0 for name in order)
