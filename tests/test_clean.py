"""The clean stage: golden fixtures under tests/fixtures/clean/<case>/, plus targeted rules.

A fixture folder holds input.html, optional base_url.txt and options.json (drop_selectors,
drop_text), expected.txt (article paragraphs, one per line, written by hand) and expected.json
(images, links, rules that must fire, strings that must be absent).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lxml.html
import pytest

from aggregator import clean
from aggregator.clean import clean_html
from aggregator.clean import rules as clean_rules
from aggregator.models import CleanedHtml
from aggregator.urls import is_web_url

FIXTURES = Path(__file__).parent / "fixtures" / "clean"
CASES = sorted(path.name for path in FIXTURES.iterdir() if (path / "input.html").is_file())


def parse_output(html: str) -> Any:
    return lxml.html.fragment_fromstring(html or "<div></div>", create_parent="div")


def run_case(case: str) -> tuple[CleanedHtml, dict[str, Any], list[str]]:
    folder = FIXTURES / case
    base_file = folder / "base_url.txt"
    base_url = base_file.read_text(encoding="utf-8").strip() if base_file.exists() else None
    options_file = folder / "options.json"
    options = json.loads(options_file.read_text(encoding="utf-8")) if options_file.exists() else {}
    result = clean_html(
        (folder / "input.html").read_text(encoding="utf-8"),
        base_url,
        drop_selectors=options.get("drop_selectors", ()),
        drop_text=options.get("drop_text", ()),
    )
    expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    lines = (folder / "expected.txt").read_text(encoding="utf-8").splitlines()
    return result, expected, [line.strip() for line in lines if line.strip()]


def test_fixture_cases_found() -> None:
    assert len(CASES) >= 30  # the 5 samples and at least 25 written cases


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    result, expected, expected_lines = run_case(case)
    text_lines = [line.strip() for line in result.text.split("\n")]

    for line in expected_lines:
        assert line in text_lines, f"missing paragraph: {line!r}"
    assert text_lines == expected_lines, "text holds something that is not article text"
    for needle in expected.get("absent", []):
        assert needle not in result.html, f"{needle!r} left in html"
        assert needle not in result.text, f"{needle!r} left in text"

    tree = parse_output(result.html)
    srcs = [img.get("src") for img in tree.iter("img")]
    for src in srcs:
        assert src is not None and is_web_url(src), f"image without absolute http(s) src: {src!r}"
    assert list(result.images) == srcs
    for image in expected.get("images", []):
        assert image in result.images
        assert image in srcs
    assert len(srcs) == len(expected.get("images", [])), f"unexpected images: {srcs}"
    hrefs = [a.get("href") for a in tree.iter("a")]
    for link in expected.get("links", []):
        assert link in hrefs, f"link {link!r} not in {hrefs}"

    assert set(expected.get("rules", [])) <= set(result.rules), result.rules
    assert list(result.rules) == sorted(set(result.rules))
    assert [hit.rule for hit in result.removed] == list(result.rules)
    assert len(result.summary) <= 201
    assert result.summary
    assert not any(rule.startswith("error:") for rule in result.rules)


def test_the_audit_counts_each_rule_and_samples_what_it_removed() -> None:
    html = (
        "<p>Article text.</p>"
        '<div class="share"><a href="https://example.com/s">Share   on\nX</a></div>'
        '<div class="share-links">Share two</div><div class="share">three</div>'
        '<div class="share">four</div><p>来源：某报</p>'
        '<img src="https://example.com/p.gif" width="1" height="1">'
    )
    result = clean_html(html, None, drop_text=["^来源"])
    hits = {hit.rule: hit for hit in result.removed}
    assert hits["share-bar"].times == 4
    assert hits["share-bar"].samples == ("Share on X", "Share two", "three")  # first three
    assert hits["drop-text"].samples == ("来源：某报",)
    assert hits["tracking-pixel"].samples == ("https://example.com/p.gif",)
    empty = clean_html('<p>x</p><div id="dfp-ad-1" class="ad"></div>', None).removed
    assert empty[0].samples == ('<div id="dfp-ad-1">',)
    paywall = (
        '<p>x</p><a href="https://subscribe.example.com/offer"><img src="https://e.com/b.png"></a>'
    )
    assert clean_html(paywall, None).removed[0].samples == ("https://subscribe.example.com/offer",)
    assert result.text == "Article text."
    article = "<p>" + "article text " * 100 + "</p>"
    long = clean_html(f'{article}<div class="share">{"word " * 60}</div>', None).removed
    assert long[0].rule == "share-bar"
    assert len(long[0].samples[0]) == 120
    assert long[0].samples[0].endswith("…")


def test_summary_cuts_latin_text_at_a_word_boundary() -> None:
    words = " ".join(f"word{i:03d}" for i in range(60))  # 479 characters
    result = clean_html(f"<p>{words}</p>", None)
    assert result.summary.endswith("…")
    assert len(result.summary) <= 201
    body = result.summary[:-1]
    assert words.startswith(body)
    assert words[len(body)] == " ", "cut in the middle of a word"


def test_summary_cuts_cjk_text_anywhere_and_keeps_it_exact() -> None:
    sentence = "中方支持南北改善和发展关系，乐见朝美适时重启对话。"
    result = clean_html(f"<p>{sentence * 20}</p>", None)
    assert result.summary == (sentence * 20)[:200] + "…"
    assert result.text == sentence * 20
    assert " " not in result.text


def test_short_text_summary_is_not_cut() -> None:
    result = clean_html("<p>One short paragraph.</p><p>Another.</p>", None)
    assert result.summary == "One short paragraph. Another."
    assert result.text == "One short paragraph.\nAnother."


@pytest.mark.parametrize(
    "value", ["header", "shadow", "download", "leader", "loaded", "badge", "thread", "breadcrumb"]
)
def test_words_containing_ad_are_not_ad_containers(value: str) -> None:
    result = clean_html(f'<div class="{value}"><p>Kept text.</p></div>', None)
    assert result.text == "Kept text."
    assert "ad-container" not in result.rules


@pytest.mark.parametrize(
    ("attributes", "rule"),
    [
        ('id="dfp-ad-imu1"', "ad-container"),
        ('class="adsbygoogle"', "ad-container"),
        ('class="advertisement"', "ad-container"),
        ('class="headerAd"', "ad-container"),
        ('class="social-share"', "share-bar"),
        ('class="sharethis-inline"', "share-bar"),
        ('class="clearfix appendQr_wrap"', "qr-code"),
        ('class="QRCode"', "qr-code"),
        ('class="newsletter-box"', "newsletter"),
        ('class="related-news"', "related-list"),
        ('class="article-editor"', "editor-credit"),
        ('class="screen-reader-text"', "hidden"),
    ],
)
def test_junk_containers(attributes: str, rule: str) -> None:
    result = clean_html(f"<p>Article text.</p><div {attributes}><p>junk</p></div>", None)
    assert result.text == "Article text."
    assert rule in result.rules


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ('<div class="follow-up"><p>A follow-up story.</p></div>', "A follow-up story."),
        (
            '<p>Text. <span class="photo-copyright">Photo: Reuters</span></p>',
            "Text. Photo: Reuters",
        ),
        (
            '<p>See <a href="https://e.com/how-to-unsubscribe-from-spam">this guide</a>.</p>',
            "See this guide.",
        ),
        (
            '<p>Read <a href="https://e.com/unsubscribe">a page about it</a> first.</p>',
            "Read a page about it first.",
        ),
        (
            '<p>A <a class="btn" href="https://e.com/r">link long enough to be part of the'
            " sentence, not a button</a>.</p>",
            "A link long enough to be part of the sentence, not a button.",
        ),
        ("<h2>Related</h2><p>The list that is not.</p>", "The list that is not."),
        ("<p>Why every advertisement costs more.</p>", "Why every advertisement costs more."),
        (
            "<p>编辑部的故事：一部电视剧的回忆。" + "内容" * 60 + "</p>",
            "编辑部的故事：一部电视剧的回忆。" + "内容" * 60,
        ),
        ('<p><a href="https://twitter.com/jack">Jack</a> said so.</p>', "Jack said so."),
    ],
)
def test_generic_rules_leave_article_text_alone(html: str, text: str) -> None:
    assert clean_html(html, None).text == text


def test_junk_class_on_the_article_wrapper_keeps_the_article() -> None:
    article = "<p>" + "A long paragraph of the article itself. " * 20 + "</p>"
    result = clean_html(f'<div class="post has-share-buttons">{article}</div>', None)
    assert result.text.startswith("A long paragraph")


def test_taxonomy_classes_are_ignored() -> None:
    result = clean_html('<div class="post tag-ads category-sponsored"><p>Text.</p></div>', None)
    assert result.text == "Text."


def test_editor_credit_needs_a_short_leaf_block() -> None:
    html = (
        "<div><p>编辑：张三</p><p>正文第一段。</p></div>"
        "<p>编辑说明：这一段很长。" + "内容" * 80 + "</p>"
    )
    result = clean_html(html, None)
    assert "张三" not in result.text
    assert "正文第一段。" in result.text.split("\n")
    assert "编辑说明" in result.text


def test_drop_text_removes_matching_leaf_blocks_only() -> None:
    html = "<div><p>来源：某某网</p><p>正文。</p></div>"
    result = clean_html(html, None, drop_text=["^来源[:：]"])
    assert result.text == "正文。"
    assert "drop-text" in result.rules


def test_invalid_rules_raise_value_error() -> None:
    with pytest.raises(ValueError, match="selector"):
        clean_html("<p>x</p>", None, drop_selectors=["div[["])
    with pytest.raises(ValueError, match="pattern"):
        clean_html("<p>x</p>", None, drop_text=["(unclosed"])


def test_relative_links_resolve_and_lose_tracking_parameters() -> None:
    html = '<p><a href="../b?id=3&amp;utm_source=x&amp;gclid=1">b</a></p>'
    result = clean_html(html, "https://example.com/a/c.html")
    hrefs = [a.get("href") for a in parse_output(result.html).iter("a")]
    assert hrefs == ["https://example.com/b?id=3"]
    assert "tracking-parameter" in result.rules
    assert 'rel="noopener noreferrer"' in result.html


def test_relative_link_without_base_is_unwrapped_keeping_its_text() -> None:
    html = (
        '<p>See <a href="/x" title="t">the <b>report</b></a>, <a href="#n">a note</a>,'
        ' <a href="//cdn.example.com/y">cdn</a> and <a href="mailto:a@example.com">mail</a>.</p>'
    )
    result = clean_html(html, None)
    tree = parse_output(result.html)
    hrefs = [a.get("href") for a in tree.iter("a")]
    assert hrefs == ["https://cdn.example.com/y", "mailto:a@example.com"]
    assert [b.text for b in tree.iter("b")] == ["report"]  # the link's markup stays
    assert result.text == "See the report, a note, cdn and mail."
    assert "relative-link-unwrapped" in result.rules
    # With a base URL the same links resolve and stay links.
    based = clean_html(html, "https://example.com/a/")
    assert [a.get("href") for a in parse_output(based.html).iter("a")][:2] == [
        "https://example.com/x",
        "https://example.com/a/#n",
    ]
    assert "relative-link-unwrapped" not in based.rules


def test_relative_image_without_base_is_dropped() -> None:
    result = clean_html('<p>x</p><img src="/a.jpg"><img src="//cdn.example.com/b.jpg">', None)
    assert result.images == ("https://cdn.example.com/b.jpg",)
    assert "relative-image-dropped" in result.rules


def test_tracking_pixel_by_size() -> None:
    result = clean_html('<p>x<img src="https://e.com/p.gif" width="1" height="1"></p>', None)
    assert result.images == ()
    assert "tracking-pixel" in result.rules


def test_empty_and_whitespace_input() -> None:
    for html in ("", "   \n", "<!-- nothing -->", "<div><p> </p></div>"):
        result = clean_html(html, None)
        assert result.text == ""
        assert result.summary == ""
        assert result.images == ()


def test_control_characters_do_not_break_cleaning() -> None:
    result = clean_html("<p>a\x00b\x07c</p>", None)
    assert result.text == "abc"


def test_failure_falls_back_to_nh3_on_the_original(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(clean, "_walk", explode)
    html = '<p onclick="x()">Hello <a href="/x?utm_source=y">w</a></p><script>alert(1)</script>'
    result = clean_html(html, "https://example.com/")
    assert result.rules == ("error:RuntimeError",)
    assert "script" not in result.html
    assert "onclick" not in result.html
    assert 'href="https://example.com/x"' in result.html
    assert result.text == "Hello w"


def test_output_is_stable_when_cleaned_twice() -> None:
    result, _, _ = run_case("wordpress_share_related")
    again = clean_html(result.html, None)
    assert again.text == result.text
    assert again.images == result.images


@pytest.mark.parametrize("depth", [300, 1500])
def test_deep_nesting_keeps_the_text(depth: int) -> None:
    html = "<font>" * depth + "deep text" + "</font>" * depth + "<p>after</p>"
    result = clean_html(html, None)
    assert result.text == "deep text\nafter"
    assert result.rules == ()


def test_nesting_beyond_the_depth_limit_keeps_the_text_without_the_deeper_tags() -> None:
    html = "<div>" * 3000 + "deep &amp; text" + "</div>" * 3000 + "<script>x()</script>"
    result = clean_html(html, None)
    assert result.rules == ("depth-limit", "script")
    assert "deep & text" in result.text
    assert "<script" not in result.html
    assert result.html.count("<div>") == 2000


@pytest.mark.parametrize("depth", [20_000, 200_000])
def test_nesting_of_any_depth_costs_linear_time(depth: int) -> None:
    html = "<div>" * depth + "deep text" + "</div>" * depth
    started = time.perf_counter()
    result = clean_html(html, None)
    assert time.perf_counter() - started < 2.0
    assert result.text == "deep text"
    assert "depth-limit" in result.rules


def test_a_broken_parser_still_ends_in_nh3() -> None:
    # Beyond libxml2's own depth limit (a low html_depth keeps nh3 quick here).
    html = "<div>" * 3000 + "deep &amp; text" + "</div>" * 3000 + "<script>x()</script>"
    result = clean_html(html, None, max_depth=3000)
    assert result.rules == ("error:ValueError",)
    assert "deep & text" in result.text
    assert "<script" not in result.html


def test_rule_tables_agree_with_nh3() -> None:
    # Text is computed from the tree before nh3: whatever nh3 empties must already be gone.
    assert set(clean_rules.CLEAN_CONTENT_TAGS).issubset(clean_rules.DROP_TAGS)
    assert clean_rules.ALLOWED_TAGS.isdisjoint(clean_rules.DROP_TAGS)
    assert clean_rules.ALLOWED_TAGS.isdisjoint(clean_rules.CLEAN_CONTENT_TAGS)
