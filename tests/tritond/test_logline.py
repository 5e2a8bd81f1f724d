"""Triton's log line (tritond/logline.py): escaping as triton-common's SerializeString
(rapidjson) writes it, the fields of the default and ISO8601 shapes, where lines go."""
import io
import logging
import re
import sys

from tritond import logline

DEFAULT = re.compile(r'^(?P<level>[IWE])(?P<month>\d{2})(?P<day>\d{2}) '
                     r'(?P<time>\d{2}:\d{2}:\d{2}\.\d{6}) (?P<pid>\d+) '
                     r'(?P<file>[\w.]+):(?P<line>\d+)\] (?P<message>.*)$')
ISO8601 = re.compile(r'^(?P<stamp>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z) (?P<level>[IWE]) '
                     r'(?P<pid>\d+) (?P<file>[\w.]+):(?P<line>\d+)\] (?P<message>.*)$')


def _record(msg, level=logging.INFO, args=(), created=1764523462.123456, **extra):
    record = logging.LogRecord("tritond.x", level, "/a/b/loader.py", 42, msg, args, None)
    record.created = created
    record.__dict__.update(extra)
    return record


def test_escape_is_rapidjsons():
    # Triton 2.51 writes exactly these for the same texts (checked on the binary).
    assert logline.escape('init "quoted" tab\there back\\slash') == \
        r'"init \"quoted\" tab\there back\\slash"'
    assert logline.escape("ctl \x01\x1f\x7f é \u2028 / end") == \
        '"ctl \\u0001\\u001F\x7f é \u2028 / end"'
    assert logline.escape("a\nI1130 forged] x\r\b\f") == r'"a\nI1130 forged] x\r\b\f"'
    assert logline.escape("cut\0here") == '"cut"'      # a C string ends at NUL


def test_escaping_is_on_unless_the_variable_is_0():
    assert logline.escaping_on({})
    assert logline.escaping_on({logline.ESCAPE_ENV: "1"})
    assert logline.escaping_on({logline.ESCAPE_ENV: "false"})
    assert not logline.escaping_on({logline.ESCAPE_ENV: "0"})


def test_default_line_fields():
    line = logline.LineFormat("default", escaped=True).format(_record("x\ny %s", args=("z",)))
    m = DEFAULT.match(line)
    assert m and "\n" not in line
    assert (m["level"], m["month"], m["day"], m["time"]) == ("I", "11", "30", "17:24:22.123456")
    assert (m["file"], m["line"], m["message"]) == ("loader.py", "42", r'"x\ny z"')
    assert int(m["pid"]) == _record("").process


def test_iso8601_line_fields():
    line = logline.LineFormat("ISO8601", escaped=True).format(_record("m", logging.WARNING))
    m = ISO8601.match(line)
    assert m and (m["stamp"], m["level"], m["file"], m["message"]) == \
        ("2025-11-30T17:24:22Z", "W", "loader.py", '"m"')


def test_levels_have_tritons_three_letters():
    fmt = logline.LineFormat(escaped=True)
    letters = [fmt.format(_record("m", lvl))[0]
               for lvl in (logging.DEBUG, 9, 1, logging.INFO, logging.WARNING, logging.ERROR,
                           logging.CRITICAL)]
    assert letters == ["I", "I", "I", "I", "W", "E", "E"]


def test_escape_off_writes_the_message_as_it_is():
    line = logline.LineFormat(escaped=False).format(_record('a\n"b"'))
    assert line.endswith('] a\n"b"')


def test_a_traceback_is_part_of_the_one_line():
    try:
        raise ValueError("boom\nI1130 forged] x")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    line = logline.LineFormat(escaped=True).format(record)
    assert "\n" not in line and r"\nValueError: boom\nI1130 forged] x" in line


def test_a_table_is_written_unescaped():
    line = logline.LineFormat(escaped=True).format(_record("\n+--+\n| a |", **logline.UNESCAPED))
    assert line.endswith("] \n+--+\n| a |")


def test_a_lone_surrogate_does_not_stop_the_line():
    line = logline.LineFormat(escaped=True).format(_record("bad \udcff byte"))
    assert line.endswith(r'] "bad \udcff byte"')


def test_info_goes_to_stdout_warnings_and_errors_to_stderr(monkeypatch):
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    sink = logline.LineSink()
    sink.setFormatter(logline.LineFormat(escaped=True))
    for level in (5, logging.INFO, logging.WARNING, logging.ERROR):
        sink.emit(_record(logging.getLevelName(level), level))
    assert [line[0] for line in out.getvalue().splitlines()] == ["I", "I"]
    assert [line[0] for line in err.getvalue().splitlines()] == ["W", "E"]


def test_a_log_file_gets_every_line(tmp_path):
    path = tmp_path / "x.log"
    path.write_text("before\n")
    sink = logline.LineSink(str(path))
    sink.setFormatter(logline.LineFormat(escaped=True))
    sink.emit(_record("i"))
    sink.emit(_record("e", logging.ERROR))
    sink.close()
    lines = path.read_text().splitlines()
    assert lines[0] == "before" and [line[0] for line in lines[1:]] == ["I", "E"]


def test_a_closed_file_sink_opens_its_file_again(tmp_path):
    """uvicorn's logging set-up (dictConfig) closes every handler there is."""
    path = tmp_path / "x.log"
    sink = logline.LineSink(str(path))
    sink.setFormatter(logline.LineFormat(escaped=True))
    sink.close()
    sink.emit(_record("after close"))
    sink.close()
    assert path.read_text().endswith('] "after close"\n')
