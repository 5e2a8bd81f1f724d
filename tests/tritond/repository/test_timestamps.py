"""Model directory timestamps as Triton compares them on a reload."""
import os

from tritond.repository import timestamps


def _age(path, t):
    os.utime(path, (t, t))


def test_a_version_is_modified_by_its_own_files_or_files_beside_the_versions(tmp_path):
    for entry in ("1", "2"):
        (tmp_path / entry).mkdir()
        (tmp_path / entry / "model.py").write_text("")
    (tmp_path / "config.pbtxt").write_text("")
    for path in tmp_path.rglob("*"):
        _age(path, 1000)
    before = timestamps.read(str(tmp_path))
    _age(tmp_path / "2" / "model.py", 2000)                  # deep in version 2
    after = timestamps.read(str(tmp_path))
    assert [timestamps.version_modified(before, after, v) for v in (1, 2)] == [False, True]
    _age(tmp_path / "config.pbtxt", 3000)                     # the config: no version
    assert not timestamps.version_modified(after, timestamps.read(str(tmp_path)), 1)
    (tmp_path / "helper.py").write_text("")                   # beside the versions: every one
    now = timestamps.read(str(tmp_path))
    assert all(timestamps.version_modified(after, now, v) for v in (1, 2))
    assert not timestamps.version_modified(now, now, 3)


def test_an_unreadable_directory_reads_as_unmodified(tmp_path):
    assert timestamps.read(str(tmp_path / "gone")) == {}
    assert not timestamps.version_modified({"1": 5}, {}, 1)
