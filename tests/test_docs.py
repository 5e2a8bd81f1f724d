"""README and docs/ stay inside the repository, and the quickstart installs what it imports."""
from __future__ import annotations

import re

from tests.server import ROOT

PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_no_page_points_outside_the_repository():
    for page in PAGES:
        text = page.read_text()
        assert "../shared" not in text and "shared folder" not in text, page
        assert "protocol.md" not in text and "ARCHITECTURE.md" not in text, page
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            path = (page.parent / target).resolve()
            assert path.is_relative_to(ROOT) and path.exists(), f"{page.name}: {target}"
        for target in re.findall(r"`((?:docs|deploy|bench|model_repository)/[\w./-]+)`", text):
            assert (ROOT / target).exists(), f"{page.name}: {target}"


def test_quickstart_installs_the_client_before_the_snippet():
    text = (ROOT / "README.md").read_text()
    quick = text[text.index("## Quickstart"):]
    assert quick.index(".venv/bin/pip install 'tritonclient[http]>=2.73'") < \
        quick.index("import numpy as np, tritonclient.http")
