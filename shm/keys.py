"""Client shared-memory keys: checked before any system call sees them.

A key is a POSIX shm name (``shm_open``): one path component with an
optional leading '/'. A NUL byte, a '/' inside, '.'/'..', an over-long name,
or a name in the server's own namespace (``tritond-*``, see
:mod:`tritond.shm.region`) is refused with INVALID_ARG. The server's segments
are also recognised by inode after opening (a link under another name).
"""
from __future__ import annotations

import os

from tritond.errors import invalid_arg

from .region import SERVER_PREFIX, SHM_DIR

NAME_MAX = 255          # bytes in one /dev/shm entry (Linux NAME_MAX)


def check_key(key) -> str:
    """The POSIX name ('/' + one component) for client key ``key``; INVALID_ARG if unusable."""
    if type(key) is not str or not key:
        raise invalid_arg("Unable to parse 'key'")
    name = key[1:] if key.startswith("/") else key
    if "\0" in name:
        raise invalid_arg("shared memory key must not contain a NUL character")
    if not name or "/" in name or name in (".", ".."):
        raise invalid_arg(f"shared memory key '{key}' must be one name with an optional "
                          f"leading '/'")
    if len(name.encode("utf-8", "surrogatepass")) > NAME_MAX:
        raise invalid_arg(f"shared memory key is longer than {NAME_MAX} bytes")
    if name.startswith(SERVER_PREFIX):
        raise invalid_arg(f"shared memory key '{key}' is reserved for the server's own memory")
    return "/" + name


def is_server_segment(fd: int) -> bool:
    """True if ``fd`` is one of the server's segments under another name (a hard link)."""
    st = os.fstat(fd)
    try:
        entries = os.scandir(SHM_DIR)
    except OSError:
        return False
    with entries:
        for entry in entries:
            if entry.name.startswith(SERVER_PREFIX):
                try:
                    if entry.inode() == st.st_ino and entry.stat().st_dev == st.st_dev:
                        return True
                except OSError:
                    continue
    return False
