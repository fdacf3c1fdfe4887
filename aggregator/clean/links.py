"""Per-element rules of the clean stage: junk by class and id, images and links fixed."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import urlsplit

from lxml import etree

from aggregator.clean import rules as cr
from aggregator.clean.audit import Audit
from aggregator.urls import absolute_url, is_web_url, remove_tracking_parameters

_Element = etree._Element

UNWRAPPED_TAG = "font"  # inline, not allowed by nh3, and not one whose content nh3 removes


def attribute_rule(el: _Element, names: Sequence[str | bytes]) -> str | None:
    """The junk rule an element's attributes (`names`: all of them) say it falls under; only
    attributes it has are read, each read being a lookup and a decode in lxml."""
    if "hidden" in names:
        return "hidden"
    if "aria-hidden" in names and (el.get("aria-hidden") or "").strip().lower() == "true":
        return "hidden"
    if "style" in names and (style := el.get("style")) and cr.HIDDEN_STYLE.search(style.lower()):
        return "hidden"
    for name in ("class", "id"):  # looked up apart: ids are often unique, classes repeat
        if name in names and (value := el.get(name)) and (rule := junk_rule(value)):
            return rule
    return None


@lru_cache(maxsize=8192)
def junk_rule(value: str) -> str | None:
    """Rule for class and id names: whole names first, then their word tokens (split on
    punctuation and camelCase), so `header`, `shadow` or `download` never read as `ad`."""
    tokens: list[str] = []
    for name in value.split():
        lowered = name.lower()
        if lowered in cr.HIDDEN_CLASSES:
            return "hidden"
        if not lowered.startswith(cr.IGNORED_CLASS_PREFIXES):
            tokens.extend(token.lower() for token in cr.CLASS_TOKEN.findall(name))
    for token in tokens:
        if (rule := cr.JUNK_TOKENS.get(token)) is not None:
            return rule
        for prefix, prefixed_rule in cr.JUNK_PREFIXES:
            if token.startswith(prefix):
                return prefixed_rule
    for sequence, rule in cr.JUNK_SEQUENCES:
        size = len(sequence)
        if any(tuple(tokens[i : i + size]) == sequence for i in range(len(tokens) - size + 1)):
            return rule
    return None


def fix_image(img: _Element, base: str | None, rules: Audit) -> str | None:
    """Resolve lazy loading and make src absolute; returns the rule name if the image must go."""
    for size in (img.get("width"), img.get("height")):
        match = cr.LEADING_INT.match(size) if size else None
        if match and int(match.group(1)) <= cr.TRACKING_PIXEL_MAX_SIZE:
            return "tracking-pixel"
    src = (img.get("src") or "").strip()
    chosen = first_url(img, cr.LAZY_SRC_ATTRIBUTES, cr.LAZY_SRCSET_ATTRIBUTES)
    if not chosen or chosen == src:
        chosen = src
        name = src.partition("?")[0].rpartition("/")[2].lower()
        if not src or src.startswith(("data:", "about:")) or cr.PLACEHOLDER_NAME.search(name):
            chosen = first_url(img, (), ("srcset",)) or src
    if chosen != src:
        rules.add("lazy-image")
    url, tracked = clean_url(chosen, base)
    if url is None or not is_web_url(url):
        relative = base is None and chosen and not cr.URL_SCHEME.match(chosen)
        return "relative-image-dropped" if relative else "bad-image-src"
    lowered = url.lower()
    if any(part in lowered for part in cr.TRACKER_URL_PARTS):
        return "tracking-pixel"
    name = lowered.partition("?")[0].rpartition("/")[2]
    if cr.QR_IMAGE.search(name) or cr.QR_IMAGE.search(img.get("alt") or ""):
        return "qr-code"
    if tracked:
        rules.add("tracking-parameter")
    img.set("src", url)
    return None


def first_url(el: _Element, plain: Sequence[str], srcsets: Sequence[str]) -> str:
    """First non-empty URL attribute; from a srcset, its first candidate."""
    for name in (*plain, *srcsets):
        value = (el.get(name) or "").strip()
        if value:
            return value.split(None, 1)[0].rstrip(",") if name in srcsets else value
    return ""


def fix_link(a: _Element, base: str | None, rules: Audit) -> str | None:
    href = a.get("href")
    if href is None:
        return None
    try:
        url = absolute_url(href, base) if href.strip() else ""
        # urlsplit lowercases the scheme and drops tabs/newlines like browsers
        parts = urlsplit(url)
    except ValueError:
        url = ""
    if not url or (parts.scheme and parts.scheme not in cr.URL_SCHEMES):
        del a.attrib["href"]
        rules.add("unsafe-link")
        return None
    if not parts.scheme:
        # Relative with no base to resolve against: republished, it would point into the
        # aggregator's own site, broken for every reader. Keep the words, lose the link.
        unwrap_link(a)
        rules.add("relative-link-unwrapped")
        return None
    if (parts.hostname or "").startswith("subscribe.") or cr.PAYWALL_PATH.search(parts.path):
        return "paywall-link"
    if cr.SHARE_URL.match(url):
        return "share-bar"
    if _unsubscribe_url(url) and cr.UNSUBSCRIBE_TEXT.search(link_text(a)):
        return "newsletter-footer"
    url, tracked = strip_tracking(url)
    if tracked:
        rules.add("tracking-parameter")
    a.set("href", url)
    return None


def unwrap_link(a: _Element) -> None:
    """Make `a` a tag outside nh3's allow-list, which nh3 unwraps keeping its text; renamed
    rather than unwrapped here, so the walk still visits its children."""
    a.attrib.clear()
    a.tag = UNWRAPPED_TAG


def clean_url(url: str, base: str | None) -> tuple[str | None, bool]:
    """Absolute, tracking-free `url` (None when unusable), and whether parameters went."""
    try:
        return strip_tracking(absolute_url(url, base)) if url else (None, False)
    except ValueError:  # e.g. a malformed IPv6 host
        return None, False


def strip_tracking(url: str) -> tuple[str, bool]:
    cleaned = remove_tracking_parameters(url)
    return cleaned, cleaned != url


def _unsubscribe_url(url: str) -> bool:
    """UNSUBSCRIBE_URL.search, skipped for an ASCII URL holding none of its words (the regex
    ignores case, which on ASCII text is what lowercasing does)."""
    if url.isascii():
        lowered = url.lower()
        if not any(word in lowered for word in cr.UNSUBSCRIBE_URL_WORDS):
            return False
    return cr.UNSUBSCRIBE_URL.search(url) is not None


def link_text(a: _Element) -> str:
    return str(etree.tostring(a, method="text", encoding="unicode", with_tail=False))
