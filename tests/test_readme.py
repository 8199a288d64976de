"""The README is a product page: short, its commands the real ones, and every relative link in it, in docs/
and in the benchmarks' READMEs pointing at something that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
QUICKSTART = "pip install torch==2.13.0 -e . && ponder quickstart --out ponder-quickstart"
TESTS = 'pip install -q torch==2.13.0 -e ".[test]" && python -m pytest'

# [text](target) and ![alt](target); the target ends at whitespace (an optional "title" may follow) or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def markdown_files() -> list[Path]:
    files = [README, *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "benchmarks").rglob("README.md"))]
    return [f for f in files if f.is_file() and "runs" not in f.relative_to(ROOT).parts]


def relative_links(path: Path) -> list[str]:
    """The relative link targets of a Markdown file, without #anchors; code blocks and spans are not links."""
    text = CODE_SPAN.sub("", FENCE.sub("", path.read_text(encoding="utf-8")))
    out = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith(("#", "//")):
            continue  # http(s), mailto, ... and anchors within the page
        target = target.split("#", 1)[0].split("?", 1)[0]
        if target:
            out.append(target)
    return out


def test_readme_is_at_most_200_lines():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= 200, f"README.md has {n} lines; move details to docs/ or benchmarks/"


def test_readme_has_the_two_commands_exactly():
    text = README.read_text(encoding="utf-8")
    assert QUICKSTART in text
    assert TESTS in text


def test_readme_test_command_is_the_ci_one():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lines = [ln.strip() for ln in ci.splitlines() if "pytest" in ln and not ln.lstrip().startswith("#")]
    assert lines, ".ci/run has no pytest line"
    assert lines[-1] == TESTS, f".ci/run runs {lines[-1]!r}; the README must show the same command"
    assert lines[-1] in README.read_text(encoding="utf-8")


def test_the_files_are_found():
    names = {f.relative_to(ROOT).as_posix() for f in markdown_files()}
    assert {"README.md", "docs/README.md", "benchmarks/README.md"} <= names


def test_link_extraction_skips_urls_anchors_and_code(tmp_path):
    md = tmp_path / "x.md"
    md.write_text('[a](docs/a.md#part) ![img](p.png "title") [w](https://x.org) [s](#top) `[c](nope.md)`\n'
                  "```\n[d](nope2.md)\n```\n[`e`](../e.md)\n")
    assert relative_links(md) == ["docs/a.md", "p.png", "../e.md"]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(path):
    missing = [t for t in relative_links(path) if not (path.parent / t).exists()]
    assert not missing, f"{path.relative_to(ROOT)}: broken relative link(s): {', '.join(missing)}"
