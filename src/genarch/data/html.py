"""HTML to plain text with the standard library's parser.

Web pages are a common source of training text. :class:`HtmlToText` keeps the
readable text and its paragraph structure, drops scripts, styles and other
non-content elements, and decodes entities — without any third-party parser.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
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


def _tidy(flowing: str) -> str:
    """Strip spaces around line breaks and keep at most one blank line."""
    return re.sub(r"\n{3,}", "\n\n", re.sub(r" *\n *", "\n", flowing))


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
    parser.feed(html)
    parser.close()
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
