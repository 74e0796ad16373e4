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
