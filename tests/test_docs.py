"""README and docs/ stay inside the repository and true to the code: the quickstart installs
what it imports, every path and module attribute they name exists, every flag they name is
tritond's or refused by name, and docs/compatibility.md names every flag tritond has."""
from __future__ import annotations

import re

from tests.server import ROOT
from tritond.cli import LACKING, build_parser

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


READERS = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]
CODE_DIRS = "docs|deploy|bench|model_repository|tests|tritond|scheduler|frontend|workers|shm|protos"
# flags of other programs the pages show (docker run/stop, useradd, systemctl, kubernetes-validate) and
# the architecture diagram's "--descriptors-->" arrow
FOREIGN = {"--shm-size", "--stop-timeout", "--rm", "--system", "--home", "--now", "--strict", "--descriptors"}


def _defined(module: str, name: str) -> bool:
    path = ROOT / f"{module}.py"
    return path.exists() and re.search(
        rf"^\s*(?:async\s+)?(?:def|class)\s+{name}\b|^{name}\s*[:=]", path.read_text(), re.M) is not None


def test_every_code_path_and_attribute_the_docs_name_exists():
    """`frontend/proc.py`, `scheduler/`, `frontend/proc.bind` (module.attribute), `bench/*.py`."""
    stale = []
    for page in READERS:
        for target in re.findall(rf"`((?:{CODE_DIRS})/[\w./*-]+)`", page.read_text()):
            path = target.rstrip("/")
            dotted = re.fullmatch(r"(.+)\.(\w+)", path)
            if (ROOT / path).exists() or ("*" in path and any(ROOT.glob(path))) \
                    or (dotted and _defined(*dotted.groups())):
                continue
            stale.append(f"{page.name}: {target}")
    assert stale == []


def _help_flags() -> set[str]:
    return {flag for action in build_parser()._actions for flag in action.option_strings}


def _named_flags(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9*]", text)) - FOREIGN


def _matches(flag: str, known: set[str]) -> bool:
    if flag.endswith("*"):
        return any(k.startswith(flag.rstrip("*")) for k in known)
    return flag in known


def test_every_flag_the_docs_name_is_tritonds_or_refused_by_name():
    known = _help_flags() | set(LACKING)
    pages = [p for p in READERS if p.name != "benchmarks.md"]   # that one names bench/'s options
    unknown = [f"{page.name}: {flag}" for page in pages
               for flag in sorted(_named_flags(page.read_text())) if not _matches(flag, known)]
    assert unknown == []


def test_the_compatibility_table_names_every_flag_and_every_refused_one():
    table = (ROOT / "docs" / "compatibility.md").read_text()
    named = _named_flags(table)
    missing = sorted(f for f in _help_flags() | set(LACKING)
                     if f not in ("-h", "--help") and f not in named)
    assert missing == []


def test_frontend_core_contract_matches_the_code():
    """docs/frontend-core.md's classes: every method it shows exists with those parameters."""
    import importlib
    import inspect
    modules = [importlib.import_module(m) for m in (
        "tritond.frontend.types", "tritond.frontend.core", "tritond.frontend.control",
        "tritond.frontend.clientshm", "tritond.inferclient", "tritond.responsestream")]
    text = (ROOT / "docs" / "frontend-core.md").read_text()
    drift, cls = [], None
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        for line in block.splitlines():
            if (m := re.match(r"class (\w+)", line)):
                cls = next((getattr(mod, m[1]) for mod in modules if hasattr(mod, m[1])), None)
                assert cls is not None, m[1]
                continue
            for name, params in re.findall(r"def (\w+)\(([^)]*)\)", line):
                shown = [p.split(":")[0].split("=")[0].strip() for p in params.split(",")]
                shown = [p for p in shown if p and p != "self"]
                real = getattr(cls, name, None)
                if real is None:
                    drift.append(f"{cls.__name__}.{name}: missing")
                elif shown != [p for p in inspect.signature(real).parameters if p != "self"]:
                    drift.append(f"{cls.__name__}.{name}{tuple(shown)}")
    assert drift == []



def test_every_environment_variable_the_docs_name_is_an_options():
    """`TRITOND_HTTP_PORT` and the like: each is the variable of an option. TRITOND_ARGS is
    the systemd unit's own (the flags its ExecStart line passes), named only with the unit."""
    from tritond.options import OPTIONS
    known = {opt.env for opt in OPTIONS}
    unit = {ROOT / "docs" / "operations.md", *(ROOT / "deploy" / "systemd").iterdir()}
    files = [*READERS, ROOT / "Dockerfile", *sorted((ROOT / "deploy").rglob("*.*"))]
    unknown = [f"{path.name}: {name}" for path in files
               for name in sorted(set(re.findall(r"\bTRITOND_[A-Z0-9_]*[A-Z0-9]", path.read_text())))
               if name not in known and not (name == "TRITOND_ARGS" and path in unit)]
    assert unknown == []


def _as_default(text: str):
    """A default as the pages write it: "64 MiB", "30 s", "false", "on", "15"."""
    number = re.fullmatch(r"(\d+)(?: (MiB|s))?", text)
    if number:
        return int(number[1]) * (1 << 20 if number[2] == "MiB" else 1)
    return {"true": True, "on": True, "false": False, "off": False}.get(text, text)


def test_every_default_the_pages_state_is_the_options():
    """"`--exit-timeout-secs` ... default 30": the value tritond really uses."""
    from tritond.options import OPTIONS
    defaults = {flag: opt.default for opt in OPTIONS for flag in (opt.flags or (opt.flag,))}
    stated, wrong = 0, []
    for page in READERS:
        for flag, value in re.findall(r"`(--[a-z0-9-]+)`[^`\n]{0,40}?\(?default(?:s to)? "
                                      r"(\w+(?: MiB| s)?)", page.read_text()):
            if flag in defaults:
                stated += 1
                if _as_default(value) != defaults[flag]:
                    wrong.append(f"{page.name}: {flag} default {value}")
    assert stated >= 10 and wrong == []
