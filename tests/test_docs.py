"""The README and docs/: links stay inside the repository and resolve; the commands they show exist as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stlib.paths import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings: lower case, punctuation dropped, spaces as hyphens."""
    prose = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # a comment in a code block is no heading
    heads = re.findall(r"^#+ (.+)$", prose, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def commands(path: Path) -> list[str]:
    """The lines of a file's bash blocks, continuation lines joined, comments dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [line.split(" # ")[0].strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_stay_in_the_repository_and_resolve(doc):
    for target in LINK.findall(doc.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        assert not target.startswith(("/", "..")) and "../" not in target, f"{doc.name}: {target} leaves the repository"
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        assert path.is_relative_to(REPO_ROOT) and path.exists(), f"{doc.name}: {target} does not exist"
        if anchor and path.suffix == ".md":
            assert anchor in anchors(path), f"{doc.name}: no heading #{anchor} in {path.name}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_commands_shown_exist(doc):
    make = (REPO_ROOT / "Makefile").read_text()
    for line in commands(doc):
        for target in re.findall(r"\bmake (\w+)", line):
            assert re.search(rf"^{target}:", make, flags=re.M), f"{doc.name}: no make target {target!r}: {line}"
        module = re.search(r"-m (stlib(?:\.\w+)*)", line)
        if module is None:
            continue
        name = module.group(1).replace(".", "/")
        source = REPO_ROOT / f"{name}.py"
        source = source if source.exists() else REPO_ROOT / name / "__main__.py"
        assert source.exists(), f"{doc.name}: no module {module.group(1)}: {line}"
        text = source.read_text()
        for flag in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", line[module.end() :]):
            assert f'"{flag}"' in text, f"{doc.name}: {module.group(1)} has no option {flag}: {line}"


def test_the_readme_reads_in_five_minutes():
    text = (REPO_ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 160
    for heading in ("## Two commands", "## Results", "## The notebooks", "## Data", "## Your own data", "## On a GPU"):
        assert heading in text
