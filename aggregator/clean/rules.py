"""Patterns and tables for aggregator.clean: data only, no logic.

Rule names (the values below) end up in CleanedHtml.rules, so keep them short and stable.
"""

from __future__ import annotations

import re
from typing import Any

# Elements removed with everything inside them; value is the rule name recorded.
DROP_TAGS: dict[str, str] = {
    "script": "script",
    "noscript": "noscript",
    "style": "style",
    "link": "style",
    "meta": "meta",
    "base": "meta",
    "title": "meta",
    "head": "meta",
    "iframe": "iframe",
    "frame": "iframe",
    "frameset": "iframe",
    "object": "object",
    "applet": "object",
    "embed": "embed",
    "form": "form",
    "input": "form",
    "button": "form",
    "select": "form",
    "textarea": "form",
    "template": "template",
    "svg": "svg",
    "math": "math",
    "canvas": "media",
    "video": "media",
    "audio": "media",
    "noembed": "embed",
    "noframes": "iframe",
    "xmp": "script",
    "plaintext": "script",
    "dialog": "hidden",
}

# Void in HTML but not to libxml2, which nests what follows inside them (<picture><source><img>):
# walked through untouched, nh3 unwraps them.
PASS_TAGS: frozenset[str] = frozenset({"source", "track", "wbr", "picture"})

# What nh3 may keep. Everything else is unwrapped (text kept) or, for CLEAN_CONTENT_TAGS, removed.
ALLOWED_TAGS: frozenset[str] = frozenset(
    {
        "p", "br", "a", "img", "figure", "figcaption", "h1", "h2", "h3", "h4", "h5", "h6",
        "ul", "ol", "li", "blockquote", "pre", "code", "em", "strong", "b", "i", "u", "s",
        "sub", "sup", "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "hr",
        "div", "span", "dl", "dt", "dd", "abbr", "cite", "q", "small", "mark", "del", "ins",
        "time",
    }
)  # fmt: skip
# Must stay disjoint from ALLOWED_TAGS (nh3 refuses otherwise) and a subset of DROP_TAGS, so the
# text computed from the tree before nh3 equals the text of nh3's output.
CLEAN_CONTENT_TAGS: frozenset[str] = frozenset(
    {
        "script", "style", "noscript", "iframe", "frame", "frameset", "object", "applet",
        "embed", "noembed", "noframes", "template", "svg", "math", "textarea", "select",
        "title", "xmp", "plaintext", "head", "canvas", "video", "audio", "form", "button",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES: dict[str, frozenset[str]] = {
    "a": frozenset({"href", "title"}),
    "img": frozenset({"src", "alt", "title", "width", "height"}),
    "td": frozenset({"colspan", "rowspan"}),
    "th": frozenset({"colspan", "rowspan"}),
    "abbr": frozenset({"title"}),
    "time": frozenset({"datetime"}),
    "del": frozenset({"datetime"}),
    "ins": frozenset({"datetime"}),
    "ol": frozenset({"start"}),
}
URL_SCHEMES: frozenset[str] = frozenset({"http", "https", "mailto"})
NH3_OPTIONS: dict[str, Any] = {
    "tags": ALLOWED_TAGS,
    "clean_content_tags": CLEAN_CONTENT_TAGS,
    "attributes": ALLOWED_ATTRIBUTES,
    "url_schemes": URL_SCHEMES,
    "link_rel": "noopener noreferrer",
    "strip_comments": True,
}

# Class/id tokens (split on non-alphanumerics and camelCase, lowercased) naming junk containers.
JUNK_TOKENS: dict[str, str] = {
    **dict.fromkeys(
        (
            "ad", "ads", "adv", "adsbygoogle", "adsense", "adslot", "adbox", "adunit",
            "adblock", "adcontainer", "adwrap", "adwrapper", "adzone", "dfp", "doubleclick",
            "innity", "imu", "mpu", "outbrain", "taboola", "revcontent", "mgid",
        ),
        "ad-container",
    ),
    **dict.fromkeys(
        (
            "share", "shares", "sharing", "sharethis", "sharebar", "sharebox", "sharedaddy",
            "addthis", "addtoany", "feedflare", "sociable",
        ),
        "share-bar",
    ),
    **dict.fromkeys(("qr", "qrcode", "erweima", "ewm"), "qr-code"),
    **dict.fromkeys(("followme", "followus"), "follow-prompt"),
    **dict.fromkeys(("reward", "donate", "donation", "donations", "tipjar"), "donation"),
    **dict.fromkeys(("button", "btn"), "cta-button"),
    "copyright": "copyright-box",
    **dict.fromkeys(
        ("subscribe", "subscription", "signup", "mailchimp", "mc4wp", "optin"), "newsletter"
    ),
    **dict.fromkeys(("disqus", "comments", "commentlist"), "comments"),
    "paywall": "paywall-link",
}  # fmt: skip
# Token prefixes, for families like advert*, sponsor*, newsletter*, related*.
JUNK_PREFIXES: tuple[tuple[str, str], ...] = (
    ("advert", "ad-container"),
    ("sponsor", "ad-container"),
    ("newsletter", "newsletter"),
    ("related", "related-list"),
    ("recommend", "related-list"),
    ("yarpp", "related-list"),
)
# Consecutive token runs that are junk only together ("article editor", not "editor" alone).
JUNK_SEQUENCES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("article", "editor"), "editor-credit"),
    (("social", "share"), "share-bar"),
    (("social", "links"), "share-bar"),
    (("social", "icons"), "share-bar"),
    (("social", "buttons"), "share-bar"),
    (("more", "stories"), "related-list"),
    (("read", "next"), "related-list"),
    (("also", "read"), "related-list"),
    (("rich", "link"), "related-list"),
    (("further", "reading"), "related-list"),
    (("most", "popular"), "related-list"),
    (("most", "read"), "related-list"),
    (("social", "bar"), "share-bar"),
    (("download", "app"), "app-promo"),
    # "follow" alone also names follow-up stories; only follow-us boxes and widgets are junk.
    *(((("follow", word)), "follow-prompt") for word in ("us", "me", "block", "buttons", "box")),
)
# Whole class names that mean "not shown to sighted readers".
HIDDEN_CLASSES: frozenset[str] = frozenset(
    {"sr-only", "screen-reader-text", "visually-hidden", "visuallyhidden", "screenreader-only"}
)
# Taxonomy classes (WordPress tags every post wrapper with them) say nothing about the element.
IGNORED_CLASS_PREFIXES: tuple[str, ...] = ("tag-", "category-", "tags-", "post-tag-")
CLASS_TOKEN = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden")
# A container this large holds the article itself, whatever its class says.
JUNK_MAX_SHARE = 0.5
JUNK_MIN_CHARS = 200
WRAPPER_MIN_CHARS = 20  # below this, nothing worth keeping is lost anyway
# A "button" holding more text than a label is not a call to action.
CTA_MAX_CHARS = 40
# Rules for boxes: an inline element with such a class (a photo's copyright line in a caption)
# is left alone.
BLOCK_ONLY_RULES: frozenset[str] = frozenset({"copyright-box", "donation", "follow-prompt"})

# Links that only share the page or manage a newsletter subscription. Such a link goes, and so
# does its nearest block when at most this much text is left in it ("Share:", a mail footer).
SHARE_URL = re.compile(
    r"https?://(?:www\.|m\.)?(?:facebook\.com/sharer|twitter\.com/(?:intent|share)|x\.com/intent"
    r"|linkedin\.com/(?:shareArticle|sharing)|reddit\.com/submit|api\.whatsapp\.com/send|wa\.me/\?"
    r"|social-plugins\.line\.me/lineit/share|service\.weibo\.com/share|connect\.qq\.com/widget/shareqq"
    r"|sns\.qzone\.qq\.com/cgi-bin/qzshare|news\.ycombinator\.com/submitlink|pinterest\.com/pin/create"
    r"|t\.me/share|telegram\.me/share|tumblr\.com/share|vk\.com/share|getpocket\.com/save)",
    re.IGNORECASE,
)
UNSUBSCRIBE_URL = re.compile(
    r"/unsubscribe|[?&]unsubscribe|list-manage\.com/profile|/email-preferences"
    r"|manage-subscription",
    re.IGNORECASE,
)
# A word of each alternative above, lowercase: an ASCII URL holding none cannot match.
UNSUBSCRIBE_URL_WORDS: tuple[str, ...] = (
    "unsubscribe",
    "list-manage.com/profile",
    "/email-preferences",
    "manage-subscription",
)
# ...and only when the link says so: an article may well link to a page about unsubscribing.
UNSUBSCRIBE_TEXT = re.compile(
    r"unsubscribe|opt[ -]out|preferences|退订|退訂|取消订阅|取消訂閱", re.IGNORECASE
)
LINK_BLOCK_RULES: dict[str, int] = {"share-bar": 16, "newsletter-footer": 600}
LINK_BLOCK_TAGS: frozenset[str] = frozenset(
    {"p", "div", "td", "li", "section", "dd", "center", "blockquote", "footer", "aside"}
)

# Paywall / subscription offers: host subscribe.*, or a path segment naming the offer.
PAYWALL_PATH = re.compile(
    r"(?:^|/)(?:subscribe|subscriptions?|promotions?)(?:/|\.|$)", re.IGNORECASE
)

# Lazy-load attributes holding the real image URL, most specific first.
LAZY_SRC_ATTRIBUTES: tuple[str, ...] = (
    "data-src",
    "data-original",
    "data-lazy-src",
    "data-actualsrc",
    "data-lazyload",
    "data-url",
    "data-hi-res-src",
)
LAZY_SRCSET_ATTRIBUTES: tuple[str, ...] = ("data-srcset", "data-lazy-srcset")
# Placeholder file names (blank.gif, spacer.png, lazy-placeholder.svg...), tested on the last
# path segment only: a regex over the whole URL backtracks badly on long ones.
PLACEHOLDER_NAME = re.compile(
    r"blank|spacer|placeholder|transparent|loading|lazy|empty|grey|gray|pixel|1x1"
)
TRACKING_PIXEL_MAX_SIZE = 2
# QR codes by file name or alt text (their surrounding box usually goes by class).
QR_IMAGE = re.compile(r"qr[-_]?code|erweima|(?:^|[-_])qr(?:[-_.]|$)|二维码|二維碼|\bQR\b")
TRACKER_URL_PARTS: tuple[str, ...] = (
    "feeds.feedburner.com/~r/",
    "feedproxy.google.com/~r/",
    "pixel.wp.com/",
    "stats.wordpress.com/",
    "google-analytics.com/",
    "doubleclick.net/",
    "pixel.quantserve.com/",
    "scorecardresearch.com/",
    "feedsportal.com/",
    "/track/open",
    "/_/stat?",
    "/tracker/",
)
LEADING_INT = re.compile(r"\s*([0-9]+)")
URL_SCHEME = re.compile(r"\s*(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)")  # absolute or protocol-relative


# Elements that may carry a text rule (drop_text, editor credit).
TEXT_RULE_TAGS: tuple[str, ...] = (
    "p", "div", "span", "font", "section", "li", "dd", "dt", "td", "th", "h1", "h2", "h3",
    "h4", "h5", "h6", "blockquote", "figcaption", "center", "strong", "b", "em",
)  # fmt: skip
# A text rule only removes a block that holds none of these, never a wrapper of paragraphs.
STRUCTURAL_TAGS: tuple[str, ...] = (
    "p", "div", "section", "article", "li", "ul", "ol", "dl", "table", "blockquote", "h1",
    "h2", "h3", "h4", "h5", "h6", "figure", "pre", "header", "footer", "aside", "main", "nav",
)  # fmt: skip
# Blocks whose leading/trailing whitespace and <br> runs are trimmed.
TRIM_TAGS: frozenset[str] = frozenset(
    {
        "p", "div", "section", "article", "li", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6",
        "blockquote", "figcaption", "td", "th", "caption", "center", "header", "footer",
        "aside", "main", "nav",
    }
)  # fmt: skip
# Removed when left without text or image; inline ones are unwrapped so a space survives.
EMPTY_BLOCK_TAGS: tuple[str, ...] = (
    "p", "div", "section", "article", "span", "font", "li", "ul", "ol", "dl", "dt", "dd",
    "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "figure", "figcaption", "center", "a",
    "strong", "b", "em", "i", "u", "small", "header", "footer", "aside", "main", "nav",
)  # fmt: skip
INLINE_TAGS: frozenset[str] = frozenset(
    {
        "span", "font", "a", "strong", "b", "em", "i", "u", "s", "small", "mark", "sub", "sup",
        "code", "abbr", "cite", "q", "del", "ins", "time", "big", "tt", "label",
    }
)  # fmt: skip
# Block boundaries for CleanedHtml.text.
TEXT_BLOCK_TAGS: frozenset[str] = frozenset(
    {
        "p", "div", "section", "article", "aside", "header", "footer", "main", "nav", "h1",
        "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "dl", "dt", "dd", "blockquote", "pre",
        "figure", "figcaption", "table", "caption", "thead", "tbody", "tfoot", "tr", "td",
        "th", "hr", "center", "address", "details", "summary",
    }
)  # fmt: skip
# Whitespace trimmed at paragraph edges: ASCII, no-break, ideographic (U+3000) and zero-width.
EDGE_WHITESPACE = (
    " \t\n\r\f\v\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u200b\u202f\u205f\u3000\ufeff"
)
# What str.split() splits on besides the space (str.isspace), as single characters.
ODD_SPACES: tuple[str, ...] = (
    "\t", "\n", "\v", "\f", "\r", "\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\xa0", "\u1680",
    "\u2000", "\u2001", "\u2002", "\u2003", "\u2004", "\u2005", "\u2006", "\u2007", "\u2008",
    "\u2009", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000",
)  # fmt: skip
# Collapsed inside a line of text; U+3000 is a visible character in CJK text, so it stays.
INNER_WHITESPACE = re.compile(r"[ \t\n\r\f\v\u00a0\u200b\ufeff]+")
# C0 controls (but tab, LF, FF, CR) and DEL, removed from the UTF-8 bytes before parsing.
CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F])
SUMMARY_LENGTH = 200
# Two letters of a script that separates words with spaces (not CJK, kana, fullwidth forms):
# the summary must not be cut between them.
_SPACED = r"[^\W\u2e80-\ua4cf\uf900-\ufaff\uff00-\uffef\U00020000-\U0010ffff]"
SPACED_LETTER = re.compile(_SPACED * 2)
ELLIPSIS = "…"
