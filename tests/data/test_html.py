"""HtmlToText keeps readable text and structure, drops scripts and styles."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from genarch import Document
from genarch.data import HtmlToText, html_to_text
from genarch.testing import data_processor_checks, parametrize_with_checks

PAGE = """<html><head><title>T</title><style>p {color: red}</style></head>
<body><h1>Lists &amp; tuples</h1><p>Lists are <em>mutable</em>.<br>Tuples are not.</p>
<script>alert("x")</script><ul><li>append</li><li>extend</li></ul>
<pre>for x in y:
    print(x)</pre><p>See <a href="https://docs.python.org">the docs</a>.</p></body></html>"""


@parametrize_with_checks(
    data_processor_checks(HtmlToText(), [Document(id="p", text=PAGE), Document(id="e", text="")])
)
def test_html_to_text_conforms(check):
    check()


def test_keeps_text_and_structure_drops_code_and_style():
    text = html_to_text(PAGE)
    assert text.startswith("Lists & tuples\n\nLists are mutable.\nTuples are not.")
    assert "- append\n\n- extend" in text
    assert "for x in y:\n    print(x)" in text
    assert "alert" not in text
    assert "color" not in text
    assert "T\n" not in text  # the <head> title is not body text


def test_links_can_be_kept():
    from genarch.data.html import HtmlToTextConfig

    assert html_to_text(PAGE, HtmlToTextConfig(keep_links=True)).endswith(
        "See the docs (https://docs.python.org)."
    )


def test_broken_html_still_gives_text():
    assert html_to_text("<p>unclosed <b>bold <i>and") == "unclosed bold and"


@given(st.text())
def test_plain_text_without_markup_keeps_its_words(text):
    words = html_to_text(text.replace("<", " ").replace("&", " ")).split()
    assert words == text.replace("<", " ").replace("&", " ").split()


def test_unknown_marked_sections_are_bogus_comments_not_assertion_errors():
    assert html_to_text("<p>a<![foo]>b<![ x]>c</p>") == "abc"


# The implementation before the linear rewrite, kept here only as the oracle
# that the rewrite must match on ordinary HTML.
import re as _re  # noqa: E402
from html.parser import HTMLParser as _HTMLParser  # noqa: E402

from genarch.data.html import _BLOCK, _SKIP, _VOID, HtmlToTextConfig  # noqa: E402


class _OldExtractor(_HTMLParser):
    def __init__(self, config):
        super().__init__(convert_charrefs=True)
        self.config = config
        self.parts = []
        self.skip_depth = 0
        self.pre_depth = 0
        self.links = []

    def handle_starttag(self, tag, attrs):
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

    def handle_endtag(self, tag):
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

    def handle_data(self, data):
        if self.skip_depth:
            return
        if self.pre_depth:
            self.parts.append((data, True))
        else:
            self.parts.append((_re.sub(r"\s+", " ", data), False))


def _old_tidy(flowing):
    return _re.sub(r"\n{3,}", "\n\n", _re.sub(r" *\n *", "\n", flowing))


def old_html_to_text(html, config=None):
    parser = _OldExtractor(config or HtmlToTextConfig())
    parser.feed(html)
    parser.close()
    pieces, flowing = [], []
    for text, preformatted in parser.parts:
        if preformatted:
            pieces.append(_old_tidy("".join(flowing)))
            flowing = []
            pieces.append(text)
        else:
            flowing.append(text)
    pieces.append(_old_tidy("".join(flowing)))
    return "".join(pieces).strip()


_TAGS = [
    "p",
    "b",
    "i",
    "a",
    "div",
    "li",
    "ul",
    "br",
    "hr",
    "pre",
    "script",
    "style",
    "td",
    "span",
    "img",
    "h1",
    "head",
]
_words = st.text(alphabet=" \n\t\xa0xyzé-.,;'\"=/>", max_size=8)
_entities = st.sampled_from(
    ["&amp;", "&lt;", "&gt;", "&#65;", "&#x42;", "&nbsp;", "&notit;", "&amp", "& ", "&#;"]
)
_value = st.text(alphabet="ab <>&=/ '\"", max_size=6)
_attribute = st.one_of(
    st.builds(
        lambda n, v: f' {n}="{v.replace(chr(34), "")}"',
        st.sampled_from(["href", "class", "x-y"]),
        _value,
    ),
    st.builds(
        lambda n, v: f" {n}='{v.replace(chr(39), '')}'", st.sampled_from(["href", "title"]), _value
    ),
    st.builds(
        lambda n, v: f" {n}={v}",
        st.sampled_from(["href", "id"]),
        st.text(alphabet="ab/.:", max_size=5),
    ),
    st.sampled_from([" hidden", " ", "\n", "/"]),
)
_start = st.builds(
    lambda t, attrs, close: f"<{t}{''.join(attrs)}{close}",
    st.sampled_from([*_TAGS, "P", "Br"]),
    st.lists(_attribute, max_size=3),
    st.sampled_from([">", "/>", " >"]),
)
_markup = st.one_of(
    _start,
    st.builds(lambda t: f"</{t}>", st.sampled_from(_TAGS)),
    st.builds(lambda t: f"<!--{t}-->", _words),
    st.sampled_from(
        ["<!DOCTYPE html>", "<![CDATA[x]]>", "<?php x ?>", "<!x>", "< b", "<>", "</>", "<3"]
    ),
)
_html = st.lists(st.one_of(_words, _entities, _markup), max_size=25).map("".join)


@given(_html, st.booleans())
def test_output_matches_the_previous_implementation_on_ordinary_html(html, keep_links):
    config = HtmlToTextConfig(keep_links=keep_links)
    assert html_to_text(html, config) == old_html_to_text(html, config)


@given(_html, st.integers(min_value=0))
def test_output_matches_the_previous_implementation_on_truncated_html(html, cut):
    truncated = html[: cut % (len(html) + 1)]
    assert html_to_text(truncated) == old_html_to_text(truncated)
