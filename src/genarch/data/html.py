"""HTML to plain text with the standard library's parser.

Web pages are a common source of training text. :class:`HtmlToText` keeps the
readable text and its paragraph structure, drops scripts, styles and other
non-content elements, and decodes entities — without any third-party parser.

Time is linear in the input, hostile input included. Python's
:class:`html.parser.HTMLParser` is not: when a construct never closes (a tag
without ``>``, a comment without ``-->``), ``close()`` turns text up to the
next ``>`` or ``<`` into data and parses again from there, and each new attempt
scans to the end of the input once more — ``"<b " * n`` is quadratic. Here the
parser's ``feed`` (linear: it stops at the first unclosed construct) does all
the work on ordinary HTML, and :func:`_finish` replaces ``close()``: it parses
the unclosed rest with the parser's own methods, but first asks memoised
searches whether the construct can close at all, and an unclosed start tag
turns everything its scan passed into text, so no character is scanned twice.
Ordinary HTML gives the same text as before; on unclosed constructs the text
can differ from ``close()`` only where an unclosed tag's scan ran past a ``>``
inside a quoted attribute value (that whole stretch stays text).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from html import unescape
from html.parser import HTMLParser

from genarch.configured import Configured
from genarch.errors import InvalidInputError
from genarch.schemas import Config, Document
from genarch.validation import checked_items, describe, require_text

__all__ = ["HtmlToText", "HtmlToTextConfig", "html_to_text"]

_BLOCK = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "thead",
        "tfoot",
        "tr",
        "ul",
    ]
)
_SKIP = frozenset(
    ["script", "style", "head", "noscript", "template", "svg", "iframe", "object", "canvas"]
)
_VOID = frozenset(
    [
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
        "source",
        "track",
        "wbr",
    ]
)


class HtmlToTextConfig(Config):
    """Settings of :class:`HtmlToText`.

    Attributes:
        list_bullet: text put before each ``<li>`` item.
        keep_links: append a link's target after its text, as ``text (url)``.
    """

    list_bullet: str = "- "
    keep_links: bool = False


class _TextExtractor(HTMLParser):
    def __init__(self, config: HtmlToTextConfig) -> None:
        super().__init__(convert_charrefs=True)
        self.config = config
        self.parts: list[tuple[str, bool]] = []  # (text, preformatted)
        self.skip_depth = 0
        self.pre_depth = 0
        self.links: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            if tag not in _VOID:
                self.skip_depth += 1
            return
        if tag == "br":
            self.parts.append(("\n", False))
        elif tag in _BLOCK:
            self.parts.append(("\n\n", False))
        if tag == "li":
            self.parts.append((self.config.list_bullet, False))
        elif tag == "pre":
            self.pre_depth += 1
        elif tag in ("td", "th"):
            self.parts.append((" ", False))
        elif tag == "a":
            self.links.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if tag in _BLOCK:
            self.parts.append(("\n\n", False))
        if tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
        elif tag == "a" and self.links:
            href = self.links.pop()
            if self.config.keep_links and href and not self.skip_depth:
                self.parts.append((f" ({href})", False))

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if self.pre_depth:
            self.parts.append((data, True))  # preformatted: kept exactly
        else:
            self.parts.append((re.sub(r"\s+", " ", data), False))

    def parse_marked_section(self, i: int, report: bool = True) -> int:
        # The standard library raises AssertionError on "<![foo" (an unknown
        # keyword) and "<![ x" (no name); browsers read both as a bogus comment.
        try:
            return int(super().parse_marked_section(i, report))
        except AssertionError:
            return self.parse_bogus_comment(i, report)


# What Python 3.11's HTMLParser looks for to close each construct (html.parser
# and _markupbase); _finish asks these before it lets the parser try.
_TAG_OPEN = re.compile(r"<[a-zA-Z]")
_START_TAG = re.compile(
    r"""
  <[a-zA-Z][^\t\n\r\f />\x00]*       # tag name
  (?:[\s/]*                          # optional whitespace before attribute name
    (?:(?<=['"\s/])[^\s/>][^\s/=>]*  # attribute name
      (?:\s*=+\s*                    # value indicator
        (?:'[^']*'                   # LITA-enclosed value
          |"[^"]*"                   # LIT-enclosed value
          |(?!['"])[^>\s]*           # bare value
         )
        \s*                          # possibly followed by a space
       )?(?:\s|/(?!>))*
     )*
   )?
  \s*                                # trailing whitespace
""",
    re.VERBOSE,
)
_DECL_NAME = re.compile(r"[a-zA-Z][-_.a-zA-Z0-9]*\s*")
_COMMENT_CLOSE = re.compile(r"--\s*>")
_SECTION_CLOSE = re.compile(r"]\s*]\s*>")
_MS_SECTION_CLOSE = re.compile(r"]\s*>")


class _Search:
    """``pattern.search(text, pos)`` for non-decreasing ``pos``, each character scanned once.

    A search that found nothing from ``pos`` finds nothing from any later
    position, and one that found a match still finds it from any position up
    to its start, so both answers are kept.
    """

    def __init__(self, pattern: re.Pattern[str], text: str) -> None:
        self.pattern = pattern
        self.text = text
        self.start = -1
        self.match: re.Match[str] | None = None

    def found(self, pos: int) -> bool:
        reusable = 0 <= self.start <= pos and (self.match is None or pos <= self.match.start())
        if not reusable:
            self.start = pos
            self.match = self.pattern.search(self.text, pos)
        return self.match is not None


def _start_tag_end(text: str, i: int) -> tuple[bool, int]:
    """Whether the start tag at ``i`` can be parsed now, and where its scan stopped.

    Mirrors ``HTMLParser.check_for_whole_start_tag``: it cannot when the scan
    ran to the end of the input or stopped before a letter, ``=`` or ``/``.
    """
    match = _START_TAG.match(text, i)
    assert match is not None  # text[i] is "<" and text[i + 1] a letter
    end = match.end()
    following = text[end : end + 1]
    if following == "/":
        return text.startswith("/>", end), end
    unclosed = following == "" or (
        following.isascii() and (following.isalpha() or following == "=")
    )
    return not unclosed, end


def _finish(parser: _TextExtractor) -> None:
    """``parser.close()`` in linear time: parse the data ``feed`` left unparsed.

    ``feed`` stops at the first construct that does not close; ``close()``
    would turn it into data up to the next ``>`` (or ``<``) and parse again
    from there. This does the same, but asks ``_Search`` and the position of
    the last ``>`` whether a construct can close before it lets the parser
    try, and makes everything an unclosed start tag's scan passed into data,
    so each character is scanned a bounded number of times.
    """
    text = parser.rawdata  # the parser's parse_* methods read this same string
    n = len(text)
    last_gt = text.rfind(">")
    comments = _Search(_COMMENT_CLOSE, text)
    sections = _Search(_SECTION_CLOSE, text)
    ms_sections = _Search(_MS_SECTION_CLOSE, text)
    i = 0
    while i < n:
        if parser.cdata_elem:  # inside <script> or <style>: raw text up to its end tag
            end_tag = parser.interesting.search(text, i)
            if end_tag is None:
                break  # close() drops an unclosed script or style too
            j = end_tag.start()
            if i < j:
                parser.handle_data(text[i:j])
        else:
            j = text.find("<", i)
            if j < 0:
                j = n
            if i < j:
                parser.handle_data(unescape(text[i:j]))
        i = j
        if i == n:
            break
        scanned = i + 1
        if _TAG_OPEN.match(text, i):
            can_close, scanned = _start_tag_end(text, i)
            k = parser.parse_starttag(i) if can_close else -1
        elif text.startswith("</", i):
            k = parser.parse_endtag(i) if last_gt > i else -1
        elif text.startswith("<!--", i):
            k = parser.parse_comment(i) if comments.found(i + 4) else -1
        elif text.startswith("<?", i):
            k = parser.parse_pi(i) if last_gt > i else -1
        elif text.startswith("<![", i):
            name = _DECL_NAME.match(text, i + 3)
            if name is None:  # a bogus comment, see parse_marked_section
                can_close = last_gt > i
            else:
                scanned = name.end()
                keyword = name.group().strip().lower()
                if scanned == n:
                    can_close = False
                elif keyword in {"temp", "cdata", "ignore", "include", "rcdata"}:
                    can_close = sections.found(i + 3)
                elif keyword in {"if", "else", "endif"}:
                    can_close = ms_sections.found(i + 3)
                else:
                    can_close = last_gt > i
            k = parser.parse_html_declaration(i) if can_close else -1
        elif text.startswith("<!", i):
            k = parser.parse_html_declaration(i) if last_gt > i else -1
        else:
            parser.handle_data("<")
            k = i + 1
        if k < 0:  # never closes: data up to the next ">" (or "<"), as close() does
            k = text.find(">", i + 1) + 1 if last_gt > i else 0
            if k == 0:
                k = text.find("<", i + 1)
                if k < 0:
                    k = i + 1
            k = max(k, scanned)
            parser.handle_data(unescape(text[i:k]))
        i = k
    parser.rawdata = ""


def _tidy(flowing: str) -> str:
    """Strip spaces around line breaks and keep at most one blank line."""
    # Line by line rather than re.sub(" *\n *"): that regex is quadratic on a long run of spaces.
    lines = flowing.split("\n")
    if len(lines) > 1:
        lines = (
            [lines[0].rstrip(" ")]
            + [line.strip(" ") for line in lines[1:-1]]
            + [lines[-1].lstrip(" ")]
        )
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def html_to_text(html: str, config: HtmlToTextConfig | None = None) -> str:
    """Extract readable text from an HTML string, keeping paragraph breaks.

    Raises:
        InvalidInputError: ``html`` is not a str (bytes included), holds a lone
            surrogate (its position is named), or ``config`` is not a
            :class:`HtmlToTextConfig`.

    Examples:
        >>> html_to_text("<p>Hello <b>world</b> &amp; all</p><script>x()</script><ul><li>one<li>two</ul>")
        'Hello world & all\\n\\n- one\\n\\n- two'
    """
    html = require_text(html, "html_to_text", name="html")
    if config is None:
        config = HtmlToTextConfig()
    elif not isinstance(config, HtmlToTextConfig):
        raise InvalidInputError(
            f"html_to_text expected config as an HtmlToTextConfig, got {describe(config)}"
        )
    parser = _TextExtractor(config)
    parser.feed(html)  # linear: stops at the first construct that does not close
    _finish(parser)  # instead of parser.close(), which is quadratic on what feed left
    pieces: list[str] = []
    flowing: list[str] = []
    for text, preformatted in parser.parts:
        if preformatted:
            pieces.append(_tidy("".join(flowing)))
            flowing = []
            pieces.append(text)
        else:
            flowing.append(text)
    pieces.append(_tidy("".join(flowing)))
    return "".join(pieces).strip()


class HtmlToText(Configured[HtmlToTextConfig]):
    """Turns documents holding HTML into documents holding plain text, one to one.

    Args:
        config: a :class:`HtmlToTextConfig`; keyword arguments are shorthand
            for its fields.

    Examples:
        >>> converter = HtmlToText()
        >>> [d.text for d in converter.process([Document(id="p", text="<h1>Title</h1><p>Body</p>")])]
        ['Title\\n\\nBody']
    """

    def process(self, items: Iterable[Document]) -> Iterator[Document]:
        """Yield each document with its HTML replaced by plain text.

        Raises:
            InvalidInputError: an item is not a Document, or its text holds a
                lone surrogate.
        """
        for document in checked_items(items, Document, where="HtmlToText.process"):
            yield document.model_copy(update={"text": html_to_text(document.text, self.config)})
