"""Every ``python`` code block in docs/ runs, page by page, so the docs cannot rot.

Blocks of one page share a namespace and run in order, in a temporary working
directory. A page may shrink its workload for the test run with HTML comments
(invisible on the site) of the form::

    <!-- docs-test: replace "max_steps=2000" with "max_steps=20" -->

which rewrite the page's code blocks before they run. A page that needs an
optional extra names the module it imports, and is skipped where it is missing::

    <!-- docs-test: requires "flwr" -->
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
REPLACE = re.compile(r'<!--\s*docs-test:\s*replace\s+"(.*?)"\s+with\s+"(.*?)"\s*-->')
REQUIRES = re.compile(r'<!--\s*docs-test:\s*requires\s+"(.*?)"\s*-->')
PAGES = sorted(p for p in DOCS.rglob("*.md") if BLOCK.search(p.read_text(encoding="utf-8")))


def page_code(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    blocks = BLOCK.findall(text)
    for old, new in REPLACE.findall(text):
        assert any(old in block for block in blocks), f"{page.name}: nothing to replace for {old!r}"
        blocks = [block.replace(old, new) for block in blocks]
    return blocks


def test_docs_have_code_to_run() -> None:
    assert PAGES, "no page in docs/ has a python code block"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_code_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for module in REQUIRES.findall(page.read_text(encoding="utf-8")):
        pytest.importorskip(module, reason=f"{page.name} needs the optional module {module!r}")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for index, block in enumerate(page_code(page)):
        code = compile(block, f"{page.relative_to(DOCS)}[block {index}]", "exec")
        exec(code, namespace)
