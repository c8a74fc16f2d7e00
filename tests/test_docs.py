"""The documentation: the generated key reference is current, the README stays
short, and every relative link points at a file that exists."""

import re

import pytest

from conftest import REPO
from snakeshuf.planning import configdoc

README_LIMIT = 10_240
# [text](target) or [text](target "title"); the target ends at a space or ')'.
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def relative_links(page):
    """Link targets that name a file in the repository, without their #anchor."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)  # code is not links
    text = re.sub(r"`[^`\n]*`", "", text)
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:", "#")):
            continue
        yield target.split("#", 1)[0]


def test_config_reference_is_generated_from_the_schema():
    expected = configdoc.markdown(configdoc.load("schema.yaml"), configdoc.load("config.yaml"))
    written = (REPO / "docs" / "config.md").read_text()
    assert written == expected, f"docs/config.md is out of date; regenerate it: cd {REPO} && {configdoc.COMMAND}"


def test_readme_is_short():
    size = (REPO / "README.md").stat().st_size
    assert size <= README_LIMIT, f"README.md is {size} bytes; move detail to docs/ (limit {README_LIMIT})"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(REPO).as_posix())
def test_relative_links_resolve(page):
    missing = [target for target in relative_links(page) if not (page.parent / target).exists()]
    assert not missing, f"{page.relative_to(REPO)} links to files that do not exist: {missing}"
