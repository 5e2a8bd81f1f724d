"""A worker's execution environment: its variables and its place on sys.path."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.integration import execenv_repo as envs
from tritond import execenv


def test_variables_put_bin_and_lib_first():
    env = execenv.variables("/e", {"PATH": "/usr/bin", "LD_LIBRARY_PATH": ""})
    assert env == {"VIRTUAL_ENV": "/e", "PATH": "/e/bin:/usr/bin", "LD_LIBRARY_PATH": "/e/lib"}
    env = execenv.variables("/e", {"PATH": "/bin", "LD_LIBRARY_PATH": "/opt/lib"})
    assert env["LD_LIBRARY_PATH"] == "/e/lib:/opt/lib"


_PROBE = """
import json, sys
from tritond import execenv
execenv.activate(sys.argv[1])
import envmarker, msgspec, os
print(json.dumps({"path": sys.path, "marker": envmarker.__file__, "msgspec": msgspec.__file__,
                  "home": os.environ.get("PYTHONHOME"), "ld": os.environ["LD_LIBRARY_PATH"],
                  "bin": os.environ["PATH"], "venv": os.environ["VIRTUAL_ENV"]}))
"""


def test_activate_goes_ahead_of_the_server_s_site_packages_only(tmp_path):
    root = envs.fake_env(tmp_path / "env", python=envs.PYTHON)
    site = execenv.site_dir(str(root))
    os.makedirs(os.path.join(site, "envmarker"))
    open(os.path.join(site, "envmarker", "__init__.py"), "w").close()
    os.makedirs(os.path.join(site, "msgspec"))            # a copy tritond must not pick up
    open(os.path.join(site, "msgspec", "__init__.py"), "w").close()
    env = {**os.environ, "PYTHONHOME": sys.base_prefix}
    out = json.loads(subprocess.run([sys.executable, "-c", _PROBE, str(root)], env=env,
                                    check=True, capture_output=True, text=True).stdout)
    path = out["path"]
    stdlib = next(i for i, p in enumerate(path) if p.endswith(envs.PYTHON))
    server = next(i for i, p in enumerate(path) if p.endswith("site-packages") and p != site)
    assert stdlib < path.index(site) < server
    assert out["marker"].startswith(site)
    assert not out["msgspec"].startswith(site)           # imported before activation
    assert out["home"] is None                           # a Python the model starts is the env's
    assert out["venv"] == str(root) and out["bin"].startswith(f"{root}/bin:")
    assert out["ld"].startswith(f"{root}/lib")
