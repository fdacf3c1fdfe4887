"""The parse stage: raw documents become Entries.

- `parse_post` (posts.py): a Jekyll-style post file, the format of seeds/.
- `parse_feed` (feeds.py): RSS 0.9x/1.0/2.0, Atom or JSON Feed bytes plus the Content-Type header.
  Well-formed XML takes the strict lxml path; a document lxml refuses takes the feedparser
  fallback (fallback.py); JSON Feed has its own reader (jsonfeed.py). All three hand raw entries
  to the same rules (common.py), so an entry comes out the same whichever path read it.
- `find_article_links`, `extract_article`, `discover_feeds` (pages.py): HTML listing pages and
  article pages for `page` sources.

Charsets (charsets.py) come from a BOM, the bytes themselves, the XML prolog or <meta>, the
Content-Type header, in that order of trust. Nothing here fetches anything: every function works
on the bytes it is given. The stage imports only the models, errors and URL helpers.

The rules every feed entry goes through (common.build_entry):
- origin: "<feed origin> entry <n>", n counting every entry from 1, skipped ones included.
- key: the guid/id as written (stripped), else canonical_url(link), else "sha256:" of the
  title and the text of the body; an entry with no guid, no link and no body is skipped.
- title: plain text; without one, the first 80 characters of the body's text (with "…" when
  cut), else "(untitled)".
- link: RSS <link>, else Atom rel=alternate (HTML), else a permalink guid; absolute (xml:base,
  then the feed URL) and http(s), or None.
- published: published/pubDate/issued, else updated/dc:date, else the feed's own date
  (lastBuildDate/updated, then pubDate); an entry with none is skipped, never dated by guess.
  A date without a zone is in the source's configured zone. updated is never before published.
- tags: categories (term, else label), dc:subject, media:category/keywords, JSON tags; unique.
- content_html: the fullest of content:encoded, Atom content, description, summary; plain text
  bodies are escaped into <p>; relative links inside are made absolute.
- image: media:thumbnail, else an image media:content, else an image enclosure.
"""

from __future__ import annotations

from .common import ParsedFeed, parse_date
from .feeds import parse_feed
from .pages import discover_feeds, extract_article, find_article_links
from .posts import decode, parse_post, render_markdown, strip_archiver_leftovers

__all__ = [
    "ParsedFeed",
    "decode",
    "discover_feeds",
    "extract_article",
    "find_article_links",
    "parse_date",
    "parse_feed",
    "parse_post",
    "render_markdown",
    "strip_archiver_leftovers",
]
