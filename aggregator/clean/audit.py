"""What the clean stage removed and why: per rule, how often it fired and samples of what went.

Kept with each article in the store and shown by `aggregator explain`, so a user can see why
text vanished. Samples are taken only for the first few hits of a rule: the audit must cost
next to nothing on the hot path.
"""

from __future__ import annotations

from lxml import etree

from aggregator.models import RuleHit

_Element = etree._Element
MAX_SAMPLES = 3
SAMPLE_CHARS = 120


class Audit:
    """Rule name -> [count, samples]; `add` has set.add's shape so rules can call it alike."""

    __slots__ = ("_hits",)

    def __init__(self) -> None:
        self._hits: dict[str, tuple[list[int], list[str]]] = {}

    def add(self, rule: str, removed: _Element | None = None) -> None:
        hit = self._hits.get(rule)
        if hit is None:
            hit = self._hits[rule] = ([0], [])
        hit[0][0] += 1
        if removed is not None and len(hit[1]) < MAX_SAMPLES and (sample := describe(removed)):
            hit[1].append(sample)

    def __contains__(self, rule: object) -> bool:
        return rule in self._hits

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._hits))

    def hits(self) -> tuple[RuleHit, ...]:
        return tuple(
            RuleHit(rule, count[0], tuple(samples))
            for rule, (count, samples) in sorted(self._hits.items())
        )


def describe(el: _Element) -> str:
    """The text an element held, shortened; without text, what it was: a link's target, an
    image's URL, else its tag with its id or class (an empty ad slot, say)."""
    text = " ".join(
        str(etree.tostring(el, method="text", encoding="unicode", with_tail=False)).split()
    )
    if not text:
        text = el.get("href") or ""
        image = el if el.tag == "img" else next(el.iter("img"), None)
        if not text and image is not None:
            text = image.get("src") or image.get("data-src") or ""
        if not text and isinstance(el.tag, str):
            name = next((f' {key}="{el.get(key)}"' for key in ("id", "class") if el.get(key)), "")
            text = f"<{el.tag}{name}>"
    if len(text) > SAMPLE_CHARS:
        text = text[: SAMPLE_CHARS - 1] + "…"
    return text
