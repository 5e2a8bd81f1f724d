"""README's quickstart, as written, against the bundled models: the health line and the
tritonclient snippet (only the address differs: tests run on free ports)."""
from __future__ import annotations

import re
import subprocess
import sys
import urllib.request

from tests.server import ROOT


def _quickstart() -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index("## Quickstart"):text.index("## Compatibility")]


def test_the_health_line_answers_200(server):
    url = re.search(r"curl [^\n]*?(localhost:8000\S+)\s+# (\d+)", _quickstart())
    assert url, "README's quickstart no longer shows the health check"
    with urllib.request.urlopen("http://" + url[1].replace("localhost:8000", server.url)) as r:
        assert r.status == int(url[2])


def test_the_client_snippet_prints_the_sum_and_the_difference(server):
    snippet = re.search(r"<<'PY'\n(.*?)\nPY\n", _quickstart(), re.S)[1]
    assert snippet.count('"localhost:8000"') == 1
    done = subprocess.run([sys.executable, "-c", snippet.replace("localhost:8000", server.url)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    numbers = [int(n) for n in re.findall(r"-?\d+", done.stdout)]
    assert numbers == [*range(1, 17), *range(-1, 15)]     # INPUT0 + 1, INPUT0 - 1
