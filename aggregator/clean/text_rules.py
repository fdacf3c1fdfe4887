"""Generic text rules of the clean stage: data only, applied by text.py.

Each names a kind of boilerplate line a careful editor removes whatever the site (editor
credits, page tools, ad labels, feed footers, follow prompts, disclaimers, newsletter footers,
related-story headings). Site-specific lines belong in a source's or host's `drop_text`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TextRule:
    """A leaf block (one holding no other block) whose whitespace-collapsed text matches
    `pattern` and is at most `max_chars` long is removed; with `and_list`, so is a list right
    after it. The rule only runs when one of `hints` (lowercase) occurs in the lowercased text
    of the article: most articles need no text rule at all."""

    name: str
    pattern: re.Pattern[str]
    max_chars: int
    hints: tuple[str, ...]
    and_list: bool = False


_RELATED_LABEL = (
    r"相关(?:新闻|阅读|文章|推荐|报道|链接)|相關(?:新聞|閱讀|文章|推薦|報導)|延伸阅读|延伸閱讀|推荐阅读"
    r"|推薦閱讀|猜你喜欢|热门推荐|更多精彩|(?i:more on this (?:story|topic)|related(?: (?:topics"
    r"|stories|articles|posts|content|coverage|reading|links))?|read (?:more|next|also)|see also"
    r"|also read|further reading|more (?:stories|coverage)|most (?:popular|read)"
    r"|you (?:may|might) also (?:like|enjoy)|mehr zum thema|(?:à )?lire aussi)"
)
TEXT_RULES: tuple[TextRule, ...] = (
    TextRule(
        "editor-credit", re.compile(r"^[【\[（(]?\s*(?:责任编辑|编辑|责编)\s*[:：]"), 100, ("编",)
    ),
    TextRule("correction-link", re.compile(r"^[【\[]?\s*(?:我要)?纠错\s*[】\]]?$"), 20, ("纠错",)),
    TextRule(
        "page-tools",
        re.compile(r"^(?:\s*[【\[]?(?:打印|打印本页|关闭|关闭窗口|收藏|返回顶部)[】\]]?)+$"),
        40,
        ("打印", "关闭"),
    ),
    TextRule(
        "ad-label",
        re.compile(r"^(?:advertisements?|sponsored|anzeige|werbung|publicité|广告|廣告)$", re.I),
        20,
        ("advertisement", "sponsored", "anzeige", "werbung", "publicit", "广告", "廣告"),
    ),
    TextRule(
        "feed-footer",
        re.compile(
            r"^The post .+ appeared first on .+|^.+ was originally published in .+ on Medium\b"
        ),
        600,
        ("appeared first on", "originally published in"),
    ),
    TextRule(
        "follow-prompt",
        re.compile(r"^(?:点击|點擊|长按|長按).{0,12}(?:关注|關注|订阅|訂閱|阅读原文|閱讀原文|二维码|二維碼)"),
        40,
        ("点击", "點擊", "长按", "長按"),
    ),
    TextRule(  # engagement bait closing a post
        "follow-prompt",
        re.compile(
            r"^(?:if you (?:liked|enjoyed|found) (?:this|it)"
            r"|觉得(?:有用|不错|有帮助)|覺得(?:有用|不錯))"
            r".{0,80}(?:follow|subscribe|share|clap|点赞|点个赞|關注|关注|转发|在看|收藏)",
            re.I,
        ),
        140,
        ("if you liked", "if you enjoyed", "if you found", "觉得", "覺得"),
    ),
    TextRule(  # portal disclaimers under user-submitted posts
        "disclaimer",
        re.compile(r"^(?:特别声明|免责声明|特別聲明|免責聲明)[:：].*(?:观点|立场|觀點|立場|仅供参考|僅供參考)"),
        300,
        ("特别声明", "免责声明", "特別聲明", "免責聲明"),
    ),
    TextRule(
        "newsletter-footer",
        re.compile(
            r"^view (?:this|it|the) (?:email|e-mail|newsletter|message) (?:in|on) (?:your|a)"
            r" (?:web )?browser",
            re.I,
        ),
        80,
        ("in your browser", "in a browser"),
    ),
    TextRule(
        "related-heading",
        re.compile(rf"^(?:{_RELATED_LABEL})\s*[:：]?$"),
        30,
        (
            "相关", "相關", "延伸", "推荐阅读", "推薦閱讀", "猜你喜欢", "热门推荐", "更多精彩",
            "more on", "related", "read more", "read next", "read also", "see also", "also read",
            "further reading", "more stories", "more coverage", "most popular", "most read",
            "you may", "you might", "mehr zum", "lire aussi",
        ),
        and_list=True,
    ),
)  # fmt: skip
