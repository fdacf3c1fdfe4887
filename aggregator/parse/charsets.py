"""Bytes to text for feeds and pages, whatever charset they declare or fail to declare.

Order of evidence: a byte-order mark; then bytes that are valid, non-ASCII UTF-8 (legacy-charset
text practically never validates as UTF-8, while UTF-8 mislabelled as ISO-8859-1 or GBK is
common); then the declared charsets in the order the caller gives (for XML the prolog before the
Content-Type header, for HTML the header before `<meta charset>`), the first one that decodes
without an error winning, so a header that contradicts the bytes loses to a prolog that matches
them; then the same declarations tolerating a few bad bytes; then, when nothing was declared,
windows-1252 as browsers do; only for a declaration that fits none of it, charset-normalizer's
guess.

Legacy Chinese and Japanese names are read as the supersets that real servers actually mean:
GB2312 and GBK as GB18030, Big5 as Big5-HKSCS, Shift_JIS as cp932.
"""

from __future__ import annotations

import codecs
import re

from aggregator.errors import DecodeError, EntryError

_PROLOG_ENCODING = re.compile(rb"""\A\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.I)
_HIGH_BYTE_RUN = re.compile(rb"[\x80-\xff]+")
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
_XML_DECLARATION = re.compile(r"\A[\ufeff\s]*<\?xml[^>]*\?>")

# Names Python's codec registry does not know, mapped to ones it does.
_ALIASES = {
    "x-gbk": "gbk",
    "x-euc-cn": "gb2312",
    "gb_2312-80": "gb2312",
    "x-sjis": "shift_jis",
    "windows-31j": "cp932",
    "x-x-big5": "big5",
    "x-euc-jp": "euc_jp",
    "x-mac-roman": "mac_roman",
    "unicode-1-1-utf-8": "utf-8",
}
# Codec (by Python's canonical name) -> codecs to try, superset first.
_READ_AS = {
    "gb2312": ("gb18030",),
    "gbk": ("gb18030",),
    "gb18030": ("gb18030",),
    "big5": ("big5hkscs", "cp950"),
    "big5hkscs": ("big5hkscs", "cp950"),
    "cp950": ("cp950", "big5hkscs"),
    "shift_jis": ("cp932", "shift_jis_2004"),
    "cp932": ("cp932", "shift_jis_2004"),
    "euc_kr": ("cp949",),
    "ascii": ("cp1252", "latin-1"),
    "latin-1": ("cp1252", "latin-1"),
    "iso8859-1": ("cp1252", "latin-1"),
}
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def codecs_for(name: str | None) -> tuple[str, ...]:
    """The codecs to try for a declared charset name; () when Python knows no such charset."""
    if not name:
        return ()
    lowered = name.strip().lower()
    try:
        canonical = codecs.lookup(_ALIASES.get(lowered, lowered)).name
    except LookupError:
        return ()
    return _READ_AS.get(canonical, (canonical,))


def header_charset(content_type: str | None) -> str | None:
    match = _HEADER_CHARSET.search(content_type or "")
    return match.group(1) if match else None


def decode_xml(data: bytes, content_type: str | None, origin: str) -> str:
    """The text of an XML (or JSON) body, ready for a parser: its XML declaration (which may
    name a charset the text is no longer in) and any blank before it become bare newlines, so
    a parser's line numbers still point into the original."""
    prolog = _PROLOG_ENCODING.match(data[:512])
    declared = (prolog.group(1).decode("ascii") if prolog else None, header_charset(content_type))
    text = _decode(data, declared, origin)
    return _XML_DECLARATION.sub(lambda match: "\n" * match[0].count("\n"), text, count=1)


def decode_html(data: bytes, content_type: str | None, origin: str) -> str:
    meta = _META_CHARSET.search(data[:4096])
    declared = (header_charset(content_type), meta.group(1).decode("ascii") if meta else None)
    # lxml refuses a str that still declares an encoding, as XHTML pages do
    return _XML_DECLARATION.sub("", _decode(data, declared, origin), count=1)


def _multibyte_runs(data: bytes) -> bool:
    """Whether most non-ASCII bytes come in runs, as the characters of a CJK charset (two bytes
    or more each) do, rather than alone, as Latin accents do."""
    high = _HIGH_BYTE_RUN.findall(data)
    return sum(len(run) for run in high if len(run) > 1) > 0.8 * sum(len(run) for run in high)


def _windows_1252(data: bytes) -> str:
    # The five bytes Python's cp1252 leaves undefined are C1 controls to WHATWG's decoder.
    text = data.decode("cp1252", errors="surrogateescape")
    return _ESCAPED_BYTE.sub(lambda match: chr(ord(match[0]) - 0xDC00), text)


def _decode(data: bytes, declared: tuple[str | None, ...], origin: str) -> str:
    if not data.strip():
        raise EntryError(origin, "empty body")
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, errors="replace")
    if len(data) >= 4 and data[1] == 0 and data[3] == 0 and data[0] and data[2]:
        return data.decode("utf-16-le", errors="replace")
    if len(data) >= 4 and data[0] == 0 and data[2] == 0 and data[1] and data[3]:
        return data.decode("utf-16-be", errors="replace")
    if data.isascii():
        return data.decode("ascii")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if not any(declared):
        text = data.decode("utf-8", errors="replace")
        bad = text.count("\ufffd")
        if sum(not char.isascii() for char in text) > 11 * bad:  # UTF-8, a few bytes broken
            return text
        if b"\x00" not in data and not _multibyte_runs(data):
            # Nothing declared, not UTF-8, and its non-ASCII bytes stand alone, as accents do
            # between ASCII letters: windows-1252, as browsers read it. A guess could take such
            # Latin bytes for a CJK charset, and turn every accent into an ideogram.
            return _windows_1252(data)
    # XML's default is UTF-8, so it is the last declaration when nothing else is said.
    candidates = [codec for name in (*declared, "utf-8") for codec in codecs_for(name)]
    for codec in candidates:
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    tolerated = max(3, len(data) // 1000)
    for codec in candidates:
        text = data.decode(codec, errors="replace")
        if text.count("\ufffd") <= tolerated:
            return text
    guess = detected(data)
    if guess is not None:
        return guess
    raise DecodeError(origin, "bytes are in no charset that could be detected")


def detected(data: bytes) -> str | None:
    """`data` decoded in the charset charset-normalizer finds for it, when it is confident;
    never for bytes holding a NUL. The last resort of the decoders here, so it is imported on
    first use: nearly every document is UTF-8 or says its charset, and a worker process that
    never guesses does not load it."""
    if b"\x00" in data:
        return None
    from charset_normalizer import from_bytes  # noqa: PLC0415 - see above

    best = from_bytes(data).best()
    return str(best) if best is not None and best.encoding and best.chaos < 0.2 else None
