"""Modification times of a model directory, compared as Triton compares them on a reload.

Triton (core's ``ModelTimestamp``) keeps, per entry of the model directory, the newest
mtime found under it. On a reload a version that is already serving is reloaded only
when its own version directory, or a file beside the versions that is not the config,
is newer than at its last load; otherwise it keeps serving (its config may still
change its instance groups in place, ``tritond/parent/reloads.py``).
"""
from __future__ import annotations

import os

CONFIG_ENTRIES = ("config.pbtxt", "configs")   # the config file, custom configs


def read(model_dir: str) -> dict[str, int]:
    """{entry name: newest mtime (ns) under it}; {} when the directory cannot be read
    (every time then counts as 0: nothing looks modified, as in Triton)."""
    try:
        stamps = {entry: _newest(os.path.join(model_dir, entry))
                  for entry in os.listdir(model_dir)}
        stamps[""] = os.stat(model_dir).st_mtime_ns    # the directory itself: a removal
    except OSError:
        return {}
    return stamps


def modified(old: dict[str, int], new: dict[str, int]) -> bool:
    """Whether anything in the model directory is newer in ``new`` than in ``old``
    (Triton's ``ModelTimestamp::IsModified``: an unmodified model is not reloaded)."""
    return max(new.values(), default=0) > max(old.values(), default=0)


def version_modified(old: dict[str, int], new: dict[str, int], version: int) -> bool:
    """Whether ``version`` must reload: its directory or a non-config, non-version
    entry is newer in ``new`` than in ``old``."""
    return _version_time(new, version) > _version_time(old, version)


def _version_time(stamps: dict[str, int], version: int) -> int:
    beside = (t for entry, t in stamps.items()
              if entry and not entry.isdigit() and entry not in CONFIG_ENTRIES)
    return max(stamps.get(str(version), 0), *beside, 0)


def _newest(path: str) -> int:
    try:
        newest = os.stat(path, follow_symlinks=True).st_mtime_ns
    except OSError:
        return 0
    if os.path.isdir(path):
        try:
            children = os.listdir(path)
        except OSError:
            return newest
        for child in children:
            newest = max(newest, _newest(os.path.join(path, child)))
    return newest
