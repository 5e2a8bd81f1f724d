"""--log-file and --log-format=ISO8601 on a real tritond."""
import re
import subprocess
import sys

from tests.server import REPO, Server

# Triton's shapes (qa/L0_logging): a Python source file and line where Triton has its .cc.
ISO_LINE = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ [IWE] (\d+) [\w.]+\.py:\d+\] (".*")?$')   # none: a table follows


def test_every_process_appends_iso8601_lines_to_the_log_file(tmp_path):
    log = tmp_path / "tritond.log"
    srv = Server([REPO], f"--log-file={log}", "--log-format=ISO8601")
    pids = {srv.proc.pid, *srv.children()}
    srv.stop()
    # The start-up model table continues one record over several lines (and a blank one),
    # as Triton's does.
    lines = [line for line in log.read_text().splitlines() if line[:1] not in ("+", "|", "")]
    assert lines and [line for line in lines if not ISO_LINE.match(line)] == []
    writers = {int(ISO_LINE.match(line).group(1)) for line in lines}
    assert srv.proc.pid in writers and len(writers & pids) >= 3   # parent, frontend, ...
    assert any("successfully loaded 'simple'" in line for line in lines)
    assert any("Started HTTPService" in line for line in lines)          # the frontend's
    assert "successfully loaded" not in srv.output()        # nothing on stderr


def test_default_format_on_the_console(tmp_path):
    srv = Server([REPO])
    srv.stop()
    assert re.search(rf'^I\d{{4}} \d\d:\d\d:\d\d\.\d{{6}} {srv.proc.pid} supervisor\.py:\d+\] "',
                     srv.output(), re.M)


def test_unwritable_log_file_stops_the_start(tmp_path):
    bad = tmp_path / "no_such_dir" / "x.log"
    proc = subprocess.run([sys.executable, "-m", "tritond.cli", "--model-repository", str(REPO),
                           f"--log-file={bad}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert f"tritond: error: failed to open log file '{bad}' (--log-file): No such file or " \
           "directory" in proc.stderr
