"""The small frozen records that stages hand to each other.

sources -> Document -> parse -> Entry -> clean (CleanedHtml) -> dedupe -> Article -> store
store -> Article clusters -> dedupe.merge_cluster -> FeedItem -> render

No stage passes ORM rows; only store.py knows the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class Document:
    """Raw bytes of one post file or one fetched page, before parsing."""

    source: str
    origin: str  # file path or URL: what messages name
    data: bytes
    base_url: str | None = None
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One parsed article, still with its raw HTML body."""

    source: str
    origin: str  # file path, or feed URL + entry index, for messages
    key: str  # identity inside the source: guid, else canonical link, else a content hash
    title: str  # plain text
    link: str | None  # absolute article URL as published, may carry tracking parameters
    published: datetime  # timezone-aware
    updated: datetime  # timezone-aware; equals published when the source gives no update date
    author: str | None
    tags: tuple[str, ...]  # the entry's own tags and categories, in order, without repeats
    content_html: str  # raw body HTML (Markdown already rendered)
    image: str | None = None  # lead image (front matter headimg/thumbnail, enclosure)
    # False: the source gave no date, and `published` is when the entry was first seen (the
    # store keeps the first such date for good).
    dated: bool = True


class RuleHit(NamedTuple):
    """One clean rule that fired on an article: how often, and samples of what it removed.
    A tuple, so the audit serialises to JSON as it is."""

    rule: str
    times: int
    samples: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CleanedHtml:
    """Result of the clean stage for one HTML body."""

    html: str  # sanitized; nh3 ran last
    text: str  # plain text of html, paragraphs separated by newlines
    summary: str  # plain text, about 200 characters, ends with an ellipsis when cut
    images: tuple[str, ...]  # absolute src of every kept image, in order
    rules: tuple[str, ...]  # names of the junk rules that fired, for the audit
    removed: tuple[RuleHit, ...] = ()  # the audit: per rule, count and samples of removed text


@dataclass(frozen=True, slots=True)
class Article:
    """A cleaned, identified article, the unit the store keeps."""

    id: str  # stable: derived from (source, key), never changes for the same story
    source: str
    key: str
    title: str
    link: str | None  # canonical URL, tracking parameters removed
    published: datetime
    updated: datetime
    author: str | None
    tags: tuple[str, ...]  # source tags + entry tags + rule tags, display names, no repeats
    content_html: str  # cleaned
    summary: str
    raw_html: str  # as fetched, so a rule change can re-clean
    content_hash: str | None  # hash of normalised text; None when the text is too short
    image: str | None = None
    cluster_id: str = ""  # id of the first article of its story; "" until dedupe assigns it
    # Near-duplicate layer (dedupe.minhash): MinHash of the text's character 5-grams, and how
    # many distinct 5-grams it has; () and 0 when the text is too short to compare.
    minhash: tuple[int, ...] = ()
    shingles: int = 0
    lead_minhash: tuple[int, ...] = ()  # MinHash of the first 150 characters, for excerpts
    bands: tuple[int, ...] = ()  # LSH band keys of minhash + lead_minhash (aggregator.dedupe.lsh)
    clean_audit: tuple[RuleHit, ...] = ()  # what the clean stage removed, for `explain`
    dated: bool = True  # False: `published` is when it was first seen (see Entry.dated)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one entry may hold at most (the config's `limits`)."""

    html_depth: int = 2000
    categories: int = 32
    category_length: int = 100
    title_length: int = 500


@dataclass(frozen=True, slots=True)
class Provenance:
    """Another source that carried the same story."""

    source: str
    title: str
    link: str | None


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One story as a feed shows it: a cluster of articles merged into one item."""

    id: str  # the cluster id: stable when later copies arrive
    source: str  # the source of the representative article
    title: str
    link: str | None  # None: the story has no public URL, render links a local page
    published: datetime
    updated: datetime
    author: str | None
    tags: tuple[str, ...]  # union over the cluster
    content_html: str
    summary: str
    image: str | None = None
    also_reported: tuple[Provenance, ...] = ()


@dataclass(frozen=True, slots=True)
class TagSummary:
    name: str
    slug: str
    count: int  # stories (clusters), not articles
    last_updated: datetime | None


@dataclass(frozen=True, slots=True)
class SourceState:
    """What the store remembers of a source between passes."""

    name: str
    etag: str | None = None
    last_modified: str | None = None
    last_fetch_at: datetime | None = None
    last_success_at: datetime | None = None
    last_result: str | None = None  # "ok", "not modified", or the error message
    last_error: str | None = None
    new_items: int = 0
    error_streak: int = 0
    next_fetch_at: datetime | None = None
    permanent_url: str | None = None  # where a 301/308 pointed
    last_status: int | None = None  # HTTP status of the last fetch
    failing_since: datetime | None = None  # first failure of the current streak
    disabled_reason: str | None = None  # set when the source must not be fetched again (410)
    # The last feed body processed without error, hashed with how it was processed (see
    # pipeline.recipe.body_digest): the same bytes again are unchanged, 304 or not.
    body_digest: str | None = None
    moved_from: str | None = None  # the configured URL whose redirect led to permanent_url
    skipped: int = 0  # entries the last successful read skipped, each named in the log
    undated: int = 0  # entries of the last successful read without a date: first seen
    limited: int = 0  # entries of the last successful read cut to the config's `limits`
    fetched_by: str | None = None  # the node whose pass read it last
    # The lease of the node fetching it now (several nodes on one store): until when, and the
    # fencing token its claim raised, which its save must still hold to be taken. A state
    # with `claimed_by` set is saved only under that token (store/sources.py).
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    claim_token: int = 0


@dataclass(frozen=True, slots=True)
class FeedData:
    """One feed to render: `slug` None is the all-stories feed."""

    slug: str | None
    title: str
    items: tuple[FeedItem, ...]


@dataclass(frozen=True, slots=True)
class SiteSettings:
    """What render needs from the config's `output` section."""

    dir: Path
    base_url: str  # ends with "/"
    title: str
    items_per_feed: int = 50
    # name -> the title a person gave or the feed announced; names stay slugs for the CLI
    source_titles: Mapping[str, str] = field(default_factory=dict)

    def source_label(self, name: str) -> str:
        """How pages and feeds show a source to a reader: its display title, else its name."""
        return self.source_titles.get(name) or name


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """A source as the index page shows it."""

    name: str
    kind: str  # posts | feed | page
    enabled: bool
    items: int  # articles stored from it
    state: SourceState | None  # None: never fetched yet


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """One conditional GET of a source's URL."""

    source: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    timeout: float = 20.0  # seconds for the whole exchange, body included
    max_bytes: int = 5_000_000
    # The source may reach private networks and loopback whatever its URL names (an intranet
    # feed under a public-looking name); link-local and cloud metadata stay out of reach.
    private_network: bool = False
    user_agent: str | None = None  # None: the fetcher's own


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What a fetch gave. Network and HTTP problems are results, never exceptions."""

    source: str
    url: str  # as requested
    final_url: str  # after redirects
    status: int | None  # the last HTTP status; None when no response came
    document: Document | None = None  # the body on 200
    not_modified: bool = False  # 304: nothing to parse
    etag: str | None = None
    last_modified: str | None = None
    permanent_url: str | None = None  # where a chain of 301/308 ended
    retry_after: datetime | None = None  # from 429/503 Retry-After, absolute
    error: str | None = None  # None on success; otherwise a message a user understands
    error_kind: str | None = None  # timeout | network | http | too_large | redirects | gone | ...
    elapsed: float = 0.0  # seconds


class KnownCopy(NamedTuple):
    """A stored article that an article being clustered shares a canonical URL or a text hash
    with: its story, and what tells whether it can be the same story (see dedupe)."""

    cluster_id: str
    source: str
    title: str


@dataclass(frozen=True, slots=True)
class NearCandidate:
    """A stored article that shares an LSH band with an article being clustered."""

    article_id: str
    source: str
    title: str
    published: datetime
    minhash: tuple[int, ...]
    shingles: int
    cluster_id: str
    # Age of its cluster (first seen, then published, of the cluster's first article): when an
    # article matches several clusters it joins the oldest, as with exact matches.
    cluster_first_seen: datetime
    cluster_published: datetime


@dataclass(frozen=True, slots=True)
class DailyCounts:
    """Items per day for the pages' charts, per source and per tag slug.

    The window ends on `last`, the day of the pass (UTC), so a chart shows how a source has
    been lately. A source or tag with no item in that window but older ones gets its own window
    instead, ending on the day of its newest item (`source_ends`, `tag_ends`): its chart shows
    when it was last active rather than nothing.
    """

    last: date | None  # None: no item at all
    days: int
    sources: Mapping[str, tuple[int, ...]]  # articles per day, oldest day first
    tags: Mapping[str, tuple[int, ...]]  # stories (clusters) per day, oldest day first
    source_ends: Mapping[str, date] = field(default_factory=dict)
    tag_ends: Mapping[str, date] = field(default_factory=dict)
