"""Post files.

`parse_post` reads a Jekyll-style post: YAML front matter between `---` lines, then an HTML or
Markdown body. It strips what the archiver that produced the sample posts left behind (a
`<!--1635600600000-->` timestamp comment and a `[title](url)` line underlined with `------`).
Anything malformed raises EntryError naming the file, so the caller can skip it and go on.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo
from email.utils import parsedate_to_datetime
from typing import Any

from lxml import html as lxml_html

from aggregator.errors import DecodeError, EntryError
from aggregator.models import Document, Entry
from aggregator.urls import canonical_url, is_web_url

from .charsets import detected

_FRONT_MATTER = re.compile(r"\A\s*---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_ARCHIVER_STAMP = re.compile(r"\A\s*<!--\s*\d{10,}\s*-->[ \t]*\r?\n?")
_TITLE_LINK = re.compile(r"\A\s*\[(?P<text>[^\n]+)\]\((?P<url>[^)\s]+)\)[ \t]*\r?\n[-=]{3,}[ \t]*")
_STARTS_WITH_TAG = re.compile(r"\A\s*<[a-zA-Z!]")
_LINK_KEYS = ("from", "link", "url", "canonical_url")
_IMAGE_KEYS = ("headimg", "thumbnail", "image", "cover")
_TAG_KEYS = ("tags", "categories", "category", "tag")


def parse_post(document: Document, default_zone: tzinfo = UTC) -> Entry:
    """Parse one post file; raises EntryError (or DecodeError) naming the file."""
    origin = document.origin
    text = decode(document.data, origin)
    if not text.strip():
        raise EntryError(origin, "empty file")
    match = _FRONT_MATTER.match(text)
    if not match:
        raise EntryError(origin, "no YAML front matter (the file must start with a --- line)")
    front = _load_front_matter(match.group(1), origin)
    body = strip_archiver_leftovers(text[match.end() :], front.get("title"))

    title = _plain_text(_required_str(front, "title", origin))
    if not title:
        raise EntryError(origin, "front matter `title` is empty")
    published = _date(front.get("date"), origin, default_zone)
    updated_value = front.get("updated") or front.get("last_modified_at")
    updated = _date(updated_value, origin, default_zone) if updated_value else published
    link = _link(front, origin)
    content = body if _STARTS_WITH_TAG.match(body) else render_markdown(body)
    key = canonical_url(link) if link else _content_key(title, published)
    return Entry(
        source=document.source,
        origin=origin,
        key=key,
        title=title,
        link=link,
        published=published,
        updated=max(updated, published),
        author=_optional_str(front.get("author")),
        tags=_tags(front.get(key_name) for key_name in _TAG_KEYS),
        content_html=content.strip(),
        image=next(
            (
                str(front[key])
                for key in _IMAGE_KEYS
                if front.get(key) and is_web_url(str(front[key]))
            ),
            None,
        ),
    )


def decode(data: bytes, origin: str) -> str:
    """UTF-8 (with or without BOM), else the encoding charset-normalizer detects."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    guess = detected(data)
    if guess is not None:
        return guess
    raise DecodeError(origin, "bytes are not UTF-8 and no other encoding could be detected")


def strip_archiver_leftovers(body: str, title: object) -> str:
    """Drop the timestamp comment and the `[title](url)` + `------` header the archiver added."""
    body = _ARCHIVER_STAMP.sub("", body, count=1)
    header = _TITLE_LINK.match(body)
    if header and (not isinstance(title, str) or _same_text(header.group("text"), title)):
        body = body[header.end() :]
    return body


# markdown and ruamel.yaml (5.6 MB) are imported on the first post: a worker of a pass with no
# folder of posts never loads them.


def render_markdown(body: str) -> str:
    import markdown  # noqa: PLC0415 - see above

    return markdown.markdown(body, extensions=["extra", "sane_lists"], output_format="html")


def _load_front_matter(text: str, origin: str) -> dict[str, Any]:
    from ruamel.yaml import YAML  # noqa: PLC0415 - see render_markdown
    from ruamel.yaml.error import YAMLError  # noqa: PLC0415

    try:
        front = YAML(typ="safe", pure=True).load(text)
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (front matter line {mark.line + 2})" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise EntryError(origin, f"bad front matter{where}: {problem}") from None
    if not isinstance(front, dict):
        raise EntryError(origin, "front matter is not a mapping of keys")
    return {str(key).lower(): value for key, value in front.items()}


def _required_str(front: dict[str, Any], key: str, origin: str) -> str:
    value = front.get(key)
    if value is None or isinstance(value, dict | list):
        raise EntryError(origin, f"front matter has no `{key}`")
    return str(value)


def _optional_str(value: object) -> str | None:
    if isinstance(value, dict):
        value = value.get("name")
    text = " ".join(str(value).split()) if value is not None else ""
    return text or None


def _plain_text(value: str) -> str:
    if "<" in value:
        value = lxml_html.fragment_fromstring(value, create_parent="div").text_content()
    return " ".join(html.unescape(value).split())


def _same_text(left: str, right: str) -> bool:
    return _plain_text(left) == _plain_text(right)


def _date(value: object, origin: str, default_zone: tzinfo) -> datetime:
    """ISO 8601 or RFC 822; a date without a zone is taken in the source's zone."""
    if value is None or value == "":
        raise EntryError(origin, "front matter has no `date`")
    if isinstance(value, datetime):
        parsed = value
    elif hasattr(value, "year"):  # a bare YAML date
        parsed = datetime(value.year, value.month, value.day)  # type: ignore[attr-defined]
    else:
        parsed = _parse_date_text(str(value).strip(), origin)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=default_zone)
    return parsed


def _parse_date_text(text: str, origin: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError):
        pass
    from dateutil import parser as date_parser  # noqa: PLC0415 - see parse.common._parse

    try:
        return date_parser.parse(text)
    except (ValueError, OverflowError):
        raise EntryError(origin, f"front matter `date` {text!r} is not a date") from None


def _link(front: dict[str, Any], origin: str) -> str | None:
    for key in _LINK_KEYS:
        value = front.get(key)
        if value is None or value == "":
            continue
        link = str(value).strip()
        if not is_web_url(link):
            raise EntryError(origin, f"front matter `{key}` {link!r} is not an http(s) URL")
        return link
    return None


def _tags(values: Iterable[object]) -> tuple[str, ...]:
    """Tags and categories: YAML lists, or Jekyll's space-separated strings."""
    found: list[str] = []
    for value in values:
        items = value if isinstance(value, list) else str(value).split() if value else []
        for item in items:
            name = " ".join(str(item).split())
            if name and name not in found:
                found.append(name)
    return tuple(found)


def _content_key(title: str, published: datetime) -> str:
    """Identity of a post without a URL: its title and instant, stable across runs and edits."""
    basis = f"{title}\n{published.astimezone(UTC).isoformat()}"
    return "sha256:" + hashlib.sha256(basis.encode()).hexdigest()
