"""No payload gets through clean_html, nor through the pages render writes: checked on the parsed
output, never by grepping.

Each payload runs with and without a base URL, and once more through the degraded path (a rule
step raising), which must be just as safe because nh3 still runs last.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from lxml import etree

from aggregator import clean
from aggregator.clean import clean_html
from aggregator.models import (
    FeedData,
    FeedItem,
    Provenance,
    SiteSettings,
    SourceHealth,
    SourceState,
    TagSummary,
)
from aggregator.render import render_site
from aggregator.tags import slugify
from aggregator.urls import is_web_url

PAYLOADS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=http://xss.example/xss.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    '<script/xss src="http://xss.example/x.js"></script>',
    '<<script>alert("XSS");//<</script>',
    "<img src=x onerror=alert(1)>",
    "<IMG SRC=\"javascript:alert('XSS');\">",
    '<img src="https://e.example/a.jpg" onload="alert(1)">',
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<body onload=alert(1)><p>x</p>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="jav&#x09;ascript:alert(1)">x</a>',
    '<a href="jav&#x0A;ascript:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    '<a href="&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;alert(1)">x</a>',
    '<a href="&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114&#0000105'
    '&#0000112&#0000116&#0000058&#0000097&#0000108&#0000101&#0000114&#0000116">x</a>',
    '<a href=" &#14;  javascript:alert(1)">x</a>',
    '<a href="java\nscript:alert(1)">x</a>',
    '<a href="javas\x00cript:alert(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<a href="DATA:text/html,<script>alert(1)</script>">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    '<math><maction xlink:href="javascript:alert(2)">CLICK</maction></math>',
    '<math><mtext><table><mglyph><style><img src=x onerror="alert(1)"></style></mglyph></table>',
    '<svg><a xlink:href="javascript:alert(1)"><text x="20" y="20">x</text></a></svg>',
    "<svg><style><img src=x onerror=alert(1)></style></svg>",
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<iframe src="javascript:alert(1)"></iframe>',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<base href="javascript:alert(1)//"><a href="/x">x</a>',
    '<form action="javascript:alert(1)"><input type="submit"></form>',
    '<button formaction="javascript:alert(1)">x</button>',
    '<object data="javascript:alert(1)"></object>',
    '<embed src="javascript:alert(1)">',
    '<div style="width: expression(alert(1))">x</div>',
    '<p style="background:url(javascript:alert(1))">x</p>',
    '<link rel="stylesheet" href="javascript:alert(1)">',
    "<style>@import 'http://xss.example/xss.css';</style>",
    '<frameset><frame src="javascript:alert(1)"></frameset>',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
    '<a href="https://ok.example/" onmouseover="alert(1)">ok</a>',
    "<details open ontoggle=alert(1)><summary>x</summary></details>",
    '<video><source onerror="alert(1)"></video>',
    '<img src="https://e.example/a.gif" data-src="javascript:alert(1)">',
    '<img srcset="javascript:alert(1) 1x">',
    '<img data-original="data:text/html,<script>alert(1)</script>">',
    "<!--[if gte IE 4]><script>alert(1)</script><![endif]-->",
    '<table background="javascript:alert(1)"><tr><td>x</td></tr></table>',
    "<xmp><img src=x onerror=alert(1)></xmp>",
    "<textarea><img src=x onerror=alert(1)></textarea>",
    "<title><img src=x onerror=alert(1)></title>",
    "<template><img src=x onerror=alert(1)></template>",
    '<a href="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">x</a>',
    '<img src="https://e.example/a.jpg" style="x:expression(alert(1))">',
    "<p>x</p><plaintext><img src=x onerror=alert(1)>",
    '<?xml version="1.0"?><p>x</p><script>alert(1)</script>',
    "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>",
]

FORBIDDEN_TAGS = frozenset(
    {
        "script", "style", "iframe", "object", "embed", "form", "meta", "base", "svg", "math",
        "link", "frame", "frameset", "input", "button", "textarea", "template", "noscript",
        "applet",
    }
)  # fmt: skip
URL_ATTRIBUTES = frozenset(
    {
        "href", "src", "action", "formaction", "xlink:href", "data", "background", "poster",
        "cite", "srcset", "lowsrc", "dynsrc",
    }
)  # fmt: skip
BAD_SCHEMES = ("javascript:", "vbscript:", "data:")
CONTROL_AND_SPACE = re.compile(r"[\x00-\x20\x7f-\x9f]+")


def parse_output(html: str) -> Any:
    return lxml.html.fragment_fromstring(html or "<div></div>", create_parent="div")


def assert_safe(html: str) -> None:
    tree = parse_output(html)
    for el in tree.iter():
        if not isinstance(el.tag, str):
            assert el.tag is not etree.Comment, "a comment survived (IE conditional comments run)"
            continue
        tag = el.tag.lower().rsplit(":", 1)[-1]
        assert tag not in FORBIDDEN_TAGS, f"<{el.tag}> survived"
        for name, value in el.attrib.items():
            lowered = name.lower()
            assert not lowered.startswith("on"), f"event handler {name}={value!r} survived"
            assert lowered not in {"style", "srcdoc"}, f"{name}={value!r} survived"
            if lowered in URL_ATTRIBUTES or lowered.endswith(":href"):
                scheme_part = CONTROL_AND_SPACE.sub("", value).lower()
                assert not scheme_part.startswith(BAD_SCHEMES), f"{name}={value!r} survived"
        if tag == "a" and el.get("href"):
            assert el.get("rel") == "noopener noreferrer"


@pytest.mark.parametrize("base_url", ["https://example.com/post/1", None])
@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_is_neutralised(payload: str, base_url: str | None) -> None:
    result = clean_html(f"<div><p>Before.</p>{payload}<p>After.</p></div>", base_url)
    assert_safe(result.html)
    for img in parse_output(result.html).iter("img"):
        assert is_web_url(img.get("src") or ""), "img without absolute http(s) src"
    assert all(is_web_url(src) for src in result.images)
    assert not any(rule.startswith("error:") for rule in result.rules), result.rules


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_is_neutralised_on_the_fallback_path(
    payload: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object) -> None:
        raise RuntimeError("rule step failed")

    monkeypatch.setattr(clean, "tidy", explode)
    result = clean_html(f"<p>Before.</p>{payload}", "https://example.com/post/1")
    assert result.rules == ("error:RuntimeError",)
    assert_safe(result.html)


def test_payload_count() -> None:
    assert len(PAYLOADS) >= 60


def test_escaped_markup_stays_text() -> None:
    result = clean_html("<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>", None)
    assert result.text == "<script>alert(1)</script>"
    assert [el.tag for el in parse_output(result.html).iter()] == ["div", "p"]


# --- the pages render writes: every untrusted string stays text ------------------------------

HOSTILE_TAG = '"><script>alert(3)</script>'
HOSTILE = {
    "title": '<script>alert(1)</script>"><img src=x onerror=alert(1)>',
    "summary": "<img src=x onerror=alert(2)>",
    "label": "<b onmouseover=alert(4)>Evil</b>",
    "name": "<script>alert(5)</script>",
    "other": "javascript:alert(6)",
    "error": "<script>alert(9)</script>",
    "site": "</title><script>alert(10)</script>",
}
PAGE_FORBIDDEN = frozenset({"script", "iframe", "object", "embed", "form", "base", "frame"})


def _rendered_pages(tmp_path: Path) -> dict[str, Any]:
    site = SiteSettings(
        dir=tmp_path,
        base_url="http://127.0.0.1:8080/",
        title=HOSTILE["site"],
        source_titles={"evil": HOSTILE["label"]},
    )
    when = datetime(2024, 5, 1, tzinfo=UTC)
    story = FeedItem(
        id="0b6f2a40-6c3e-4d0a-9a4e-000000000001",
        source="evil",
        title=HOSTILE["title"],
        link="javascript:alert(8)",
        published=when,
        updated=when,
        author=None,
        tags=(HOSTILE_TAG,),
        content_html="<p>x</p>",
        summary=HOSTILE["summary"],
        also_reported=(Provenance(HOSTILE["other"], HOSTILE["title"], "javascript:alert(7)"),),
    )
    slug = slugify(HOSTILE_TAG)
    feeds = [FeedData(None, site.title, (story,)), FeedData(slug, HOSTILE_TAG, (story,))]
    failing = SourceState(HOSTILE["name"], last_error=HOSTILE["error"], error_streak=1)
    sources = [
        SourceHealth(HOSTILE["name"], "feed", True, 1, failing),
        SourceHealth("evil", "feed", True, 1, replace(failing, name="evil")),
    ]
    render_site(site, feeds, [TagSummary(HOSTILE_TAG, slug, 1, when)], sources)
    return {
        name: lxml.html.fromstring((tmp_path / name).read_bytes())
        for name in ("index.html", f"tags/{slug}.html", "sources.html")
    }


def test_untrusted_strings_stay_text_on_the_river_tag_and_sources_pages(tmp_path: Path) -> None:
    pages = _rendered_pages(tmp_path)
    for name, tree in pages.items():
        for el in tree.iter():
            if not isinstance(el.tag, str):
                continue
            assert el.tag.lower() not in PAGE_FORBIDDEN, f"{name}: <{el.tag}> survived"
            for attribute, value in el.attrib.items():
                assert not attribute.lower().startswith("on"), f"{name}: {attribute}={value!r}"
                if attribute.lower() in URL_ATTRIBUTES:
                    scheme_part = CONTROL_AND_SPACE.sub("", value).lower()
                    assert not scheme_part.startswith(BAD_SCHEMES), f"{name}: {value!r}"
        # What the hostile strings said is shown, as text.
        text = tree.text_content()
        assert HOSTILE["site"] in text, name
        assert HOSTILE["site"] in (tree.findtext(".//title") or ""), name
    river = (
        pages["index.html"].text_content()
        + pages[f"tags/{slugify(HOSTILE_TAG)}.html"].text_content()
    )
    for shown in (HOSTILE["title"], HOSTILE["summary"], HOSTILE["label"], HOSTILE_TAG):
        assert shown in river
    assert "also reported by 1: " + HOSTILE["other"] in river
    health = pages["sources.html"].text_content()
    assert HOSTILE["name"] in health and HOSTILE["error"] in health
    assert HOSTILE["name"] in pages["index.html"].get_element_by_id("health").text_content()
