"""The README is a front door: small, and every relative link in it and in docs/ resolves.

The quick starts it shows are checked against ``examples/`` by
``tests/test_examples.py``; this file checks the size and the links (files,
and ``#anchors`` against the target's headings, as GitHub renders them).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCED = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def prose(text: str) -> str:
    """The text without code: a ``](`` inside code is not a link."""
    return INLINE_CODE.sub("", FENCED.sub("", text))


def anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to '-', repeats numbered."""
    seen: Counter[str] = Counter()
    result = set()
    for heading in HEADING.findall(FENCED.sub("", page.read_text(encoding="utf-8"))):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower()).replace(" ", "-")
        result.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
        seen[slug] += 1
    return result


def relative_links(page: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(prose(page.read_text(encoding="utf-8")))
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto:
    ]


def test_readme_is_at_most_10_kb() -> None:
    assert len(README.read_bytes()) <= 10_000  # 10 kB, however one counts a kB


def test_every_page_links_somewhere() -> None:
    """The link check below checks something: the README links to the pages it moved content to."""
    targets = {link.split("#")[0] for link in relative_links(README)}
    for moved in ("docs/contract.md", "docs/api.md", "benchmarks/README.md", "CONTRIBUTING.md"):
        assert moved in targets


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for link in relative_links(page):
        path_part, _, fragment = link.partition("#")
        target = (page.parent / unquote(path_part)).resolve() if path_part else page
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif fragment and target.suffix == ".md" and fragment not in anchors(target):
            broken.append(f"{link}: no heading #{fragment} in {target.relative_to(ROOT)}")
        elif fragment and target.suffix != ".md":
            broken.append(f"{link}: an anchor into a file that is not markdown")
    assert not broken, broken


def test_anchor_rules() -> None:
    """The slug rules on headings like the docs' own (so the link test means what GitHub means)."""
    page = ROOT / "docs" / "contract.md"
    found = anchors(page)
    assert "6-async-with-ws-and-async-for-message-in-ws" in found
    assert "contract-notes" in found
    assert "bench_opspy-cost-per-operation-in-process" in anchors(ROOT / "benchmarks" / "README.md")
