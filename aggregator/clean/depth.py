"""A bound on how deep an article's HTML nests, applied before any parser sees it.

Sanitizers and tree walks cost more than linear time in the depth of a document (html5ever's
tree builder re-scans its stack of open elements for each new tag), so a small body of nested
tags could hold a worker for minutes. Past the bound, tags are dropped and their text kept;
nothing unsanitized gets through, since nh3 still runs last on what is left.
"""

from __future__ import annotations

import re

# Old CMS output leaves runs of <font> and <b> unclosed, a thousand deep and more; past this,
# what html5ever spends per tag starts to show.
MAX_DEPTH = 2000

# A tag ends at the first `>`, and never spans a `<`: each search stops at the next tag, so the
# scan stays linear whatever the input (a `>` inside a quoted attribute only blurs the count).
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)[^<>]*?(/?)>")
_VOID = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    }
)


def bound_depth(html: str, limit: int = MAX_DEPTH) -> tuple[str, bool]:
    """The HTML with every tag that would open deeper than `limit` (and its closing tag)
    removed, and whether any was. Linear in the input; a body with no more tags than the
    limit cannot be that deep and comes back untouched without a scan."""
    if html.count("<") <= limit:
        return html, False
    depth = 0
    kept: list[str] = []
    last = 0
    for match in _TAG.finditer(html):
        closing, name, self_closing = match.groups()
        if self_closing or name.lower() in _VOID:
            continue
        too_deep = depth > limit if closing else depth >= limit
        depth = max(0, depth - 1) if closing else depth + 1
        if too_deep:
            kept.append(html[last : match.start()])
            last = match.end()
    if not kept:
        return html, False
    kept.append(html[last:])
    return "".join(kept), True
