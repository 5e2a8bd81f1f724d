"""Repository fingerprints and the changes a poll finds (tritond/parent/poll.py)."""
import os

from tritond.parent import poll


def test_fingerprint_changes_with_files_sizes_and_times(tmp_path):
    model = tmp_path / "m"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text("a")
    first = poll.fingerprint(str(model))
    assert first == poll.fingerprint(str(model))
    (model / "config.pbtxt").write_text("ab")
    second = poll.fingerprint(str(model))
    assert second != first
    os.utime(model / "config.pbtxt", ns=(1, 1))
    assert poll.fingerprint(str(model)) != second
    (model / "2").mkdir()
    assert any(entry[0] == "2" for entry in poll.fingerprint(str(model)))


def test_snapshot_and_changes(tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    (tmp_path / "not_a_model.txt").write_text("")
    old = poll.snapshot([str(tmp_path)])
    assert sorted(old) == ["a", "b", "c"]
    (tmp_path / "b" / "config.pbtxt").write_text("x")
    os.rmdir(tmp_path / "c")
    (tmp_path / "d").mkdir()
    new = poll.snapshot([str(tmp_path)])
    assert poll.changes(old, new) == (["d"], ["c"], ["b"])
    assert poll.snapshot([str(tmp_path / "missing")]) == {}
