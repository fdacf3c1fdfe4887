"""`aggregator explain` and `aggregator reclean` through the real CLI, on a real SQLite store:
a rule added to the config after ingest changes the published feed once re-cleaned, and
explain names the rule and shows what it removed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aggregator.pipeline.recipe import Recipe
from tests.helpers import run_aggregator

LINK = "https://news.example.com/2024/05/08/cpi.html"
POST = f"""---
title: "4月CPI同比上涨0.3%"
date: 2024-05-08T10:00:00+08:00
author: 本报
from: {LINK}?utm_source=feed
tags: [经济]
---
<div class="article">
<p>国家统计局今天发布数据，4月份全国居民消费价格同比上涨0.3%。</p>
<p>来源：某某日报客户端</p>
<p>其中，城市上涨0.3%，农村上涨0.2%。</p>
<div class="promo-box"><p>下载某某客户端，看更多新闻</p></div>
<div class="share-bar"><a href="https://service.weibo.com/share/share.php?url=x">微博</a></div>
</div>
"""


def write_config(tmp_path: Path, source_clean: str = "", host_clean: str = "") -> Path:
    posts = tmp_path / "posts"
    posts.mkdir(exist_ok=True)
    (posts / "2024-05-08-cpi.md").write_text(POST, encoding="utf-8")
    config = tmp_path / "aggregator.yaml"
    config.write_text(
        f"""store: {{url: "sqlite:///{tmp_path / "store.db"}"}}
output: {{dir: {tmp_path / "public"}, base_url: "http://127.0.0.1:8080/"}}
sources:
  - name: papers
    kind: posts
    path: {posts}
    tags: [news]
{source_clean}{host_clean}""",
        encoding="utf-8",
    )
    return config


def feed_text(tmp_path: Path) -> str:
    feed: dict[str, Any] = json.loads((tmp_path / "public" / "all.json").read_text("utf-8"))
    (item,) = feed["items"]
    return str(item["content_html"])


def explain_json(config: Path, reference: str) -> dict[str, Any]:
    result = run_aggregator(config, "explain", reference, "--json")
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_a_new_drop_text_rule_reaches_the_feed_after_reclean(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert run_aggregator(config, "run", "--once").returncode == 0
    assert "来源：某某日报客户端" in feed_text(tmp_path)
    before = explain_json(config, LINK + "?utm_source=elsewhere")  # any spelling of the URL
    rules = {hit["rule"]: hit for hit in before["rules"]}
    assert "drop-text" not in rules
    assert rules["share-bar"]["times"] >= 1
    assert "微博" in rules["share-bar"]["samples"]
    assert before["source"] == "papers"

    write_config(tmp_path, '    clean: {drop_text: ["^来源[:：]"]}\n')
    result = run_aggregator(config, "reclean")
    assert result.returncode == 0, result.stderr
    assert "1 changed" in result.stdout

    html = feed_text(tmp_path)
    assert "来源" not in html
    assert "城市上涨0.3%" in html, "the rule ate article text"
    after = explain_json(config, before["id"])
    hit = next(hit for hit in after["rules"] if hit["rule"] == "drop-text")
    assert hit == {"rule": "drop-text", "times": 1, "samples": ["来源：某某日报客户端"]}
    assert after["source_rules"]["drop_text"] == ["^来源[:：]"]

    text = run_aggregator(config, "explain", LINK)
    assert text.returncode == 0, text.stderr
    assert "4月CPI同比上涨0.3%" in text.stdout
    assert "papers (posts," in text.stdout
    assert "drop-text x1" in text.stdout
    assert "removed: 来源：某某日报客户端" in text.stdout

    again = run_aggregator(config, "reclean", "--source", "papers")
    assert again.returncode == 0, again.stderr
    assert "0 changed" in again.stdout


def test_host_keyed_rules_apply_to_articles_of_that_host(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert run_aggregator(config, "run", "--once").returncode == 0
    assert "下载某某客户端" in feed_text(tmp_path)

    write_config(tmp_path, host_clean='clean:\n  example.com: {drop: [".promo-box"]}\n')
    assert run_aggregator(config, "check").returncode == 0
    result = run_aggregator(config, "reclean", "--source", "papers")
    assert result.returncode == 0, result.stderr
    assert "下载某某客户端" not in feed_text(tmp_path)
    rules = {hit["rule"]: hit for hit in explain_json(config, LINK)["rules"]}
    assert rules["drop-selector"]["samples"] == ["下载某某客户端，看更多新闻"]


def test_explain_and_reclean_report_what_they_cannot_do(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert run_aggregator(config, "run", "--once").returncode == 0
    missing = run_aggregator(config, "explain", "https://news.example.com/nothing.html")
    assert missing.returncode == 1
    assert "no stored article" in missing.stderr
    unknown = run_aggregator(config, "reclean", "--source", "nope")
    assert unknown.returncode == 1
    assert unknown.stderr == f"error: no source named 'nope' in {config}; the sources are papers\n"
    config.write_text(
        config.read_text("utf-8").replace("name: papers", "name: renamed"), encoding="utf-8"
    )
    orphan = run_aggregator(config, "explain", LINK)
    assert orphan.returncode == 0, orphan.stderr
    assert "papers (no longer in the config)" in orphan.stdout
    left = run_aggregator(config, "reclean")
    assert left.returncode == 0, left.stderr
    assert "re-cleaned 1 articles: 0 changed" in left.stdout
    assert "their source no longer in the config: 1" in left.stdout
    write_config(tmp_path, host_clean='clean:\n  "Not A Host!": {drop: [".x"]}\n')
    bad = run_aggregator(config, "check")
    assert bad.returncode == 2
    assert "clean" in bad.stderr


def test_host_rules_match_the_host_and_its_subdomains_only() -> None:
    recipe = Recipe(
        source="s", drop=(".own",), drop_text=("^own",), hosts=(("163.com", (".h",), ("^h",)),)
    )
    both = ((".own", ".h"), ("^own", "^h"))
    assert recipe.clean_rules("https://163.com/a") == both
    assert recipe.clean_rules("https://www.163.com/a?x=1") == both
    assert recipe.clean_rules("https://WWW.163.COM./a") == both
    own = ((".own",), ("^own",))
    assert recipe.clean_rules("https://not163.com/a") == own
    assert recipe.clean_rules("https://163.com.evil.example/a") == own
    assert recipe.clean_rules(None) == own
    assert recipe.clean_rules("http://[::1/broken") == own
