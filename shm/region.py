"""POSIX shared-memory segments: create, attach, unlink, reap orphans, check free space.

Our segments are named ``/tritond-<server_id>-<pid>-<tag>`` so that a crash of
the owning process can be detected from the name alone (docs/architecture.md
invariant 3): :func:`reap_orphans` unlinks every segment whose owner is dead.
"""
from __future__ import annotations

import errno
import mmap
import os
import re
from typing import Optional

import posix_ipc

from tritond.errors import Code, TritonError, invalid_arg, unavailable

SHM_DIR = "/dev/shm"
SERVER_PREFIX = "tritond-"     # every segment of every tritond server; never a client key
_NAME = re.compile(r"^tritond-([A-Za-z0-9_.]+)-(\d+)-(.+)$")
_SERVER_ID = re.compile(r"^[A-Za-z0-9_.]+$")
# /proc start times have 1/CLK_TCK resolution and btime whole seconds: allow slack.
_PID_REUSE_SLACK_S = 2.0


def segment_name(server_id: str, tag: str, pid: Optional[int] = None) -> str:
    """``/tritond-<server_id>-<pid>-<tag>``; ``server_id`` may not contain '-' (it delimits the pid)."""
    if not _SERVER_ID.match(server_id):
        raise invalid_arg(f"server id '{server_id}' must match [A-Za-z0-9_.]+")
    if not tag or "/" in tag:
        raise invalid_arg(f"segment tag '{tag}' must be non-empty and contain no '/'")
    return f"/tritond-{server_id}-{os.getpid() if pid is None else pid}-{tag}"


def is_server_name(name: str) -> bool:
    """True for the name of a tritond segment (of any server run)."""
    return name.lstrip("/").startswith(SERVER_PREFIX)


def label(name: str) -> str:
    """How error texts name a segment: a client's key, never a server segment's name."""
    return "a server buffer" if is_server_name(name) else f"shared memory region '{name}'"


def _posix_name(name: str) -> str:
    # shm_open ignores one leading '/', posix_ipc requires it: accept both spellings.
    return name if name.startswith("/") else "/" + name


class Segment:
    """One mapped POSIX shared-memory object; ``buf`` is a memoryview of all ``size`` bytes.

    The fd is closed right after mapping; only the mapping is kept.
    """

    __slots__ = ("name", "size", "buf", "_mm", "fd")

    def __init__(self, name: str, size: int, mm: Optional[mmap.mmap], fd: int = -1):
        self.name = name
        self.size = size
        self._mm = mm
        self.fd = fd           # kept open for client regions: their size is checked per use
        self.buf = memoryview(mm) if mm is not None else memoryview(b"")

    @classmethod
    def create(cls, name: str, size: int, reserve: bool = False) -> "Segment":
        """Create (O_CREX), size and map a new segment.

        ``reserve`` allocates the pages now (posix_fallocate): a full /dev/shm then
        fails here with UNAVAILABLE and an actionable message instead of killing the
        process with SIGBUS on first write.
        """
        if size <= 0:
            raise invalid_arg(f"{label(name)} needs a positive size, got {size}")
        try:
            shm = posix_ipc.SharedMemory(_posix_name(name), posix_ipc.O_CREX, mode=0o600, size=size)
        except posix_ipc.ExistentialError:
            raise TritonError(Code.ALREADY_EXISTS, f"{label(name)} already exists") from None
        try:
            if reserve:
                _reserve(shm.fd, name, size)
            mm = mmap.mmap(shm.fd, size)
        except BaseException:
            shm.unlink()
            raise
        finally:
            shm.close_fd()
        return cls(name, size, mm)

    @classmethod
    def attach(cls, name: str, size: Optional[int] = None, writable: bool = True,
               keep_fd: bool = False) -> "Segment":
        """Map an existing segment; ``size`` defaults to the object's size and may not exceed it.

        ``keep_fd``: keep the descriptor (``fd``, closed by ``close``) so that the
        object's current size can be checked before each use.
        """
        try:
            shm = posix_ipc.SharedMemory(_posix_name(name), 0, read_only=not writable)
        except (posix_ipc.Error, ValueError) as e:
            if is_server_name(name):   # a server buffer gone (reload, restart): no name leaks
                raise unavailable("a server buffer is no longer available; retry") from None
            raise invalid_arg(f"unable to open shared memory region '{name}': {e}") from None
        fd = os.dup(shm.fd) if keep_fd else -1
        try:
            actual = os.fstat(shm.fd).st_size
            if size is None:
                size = actual
            elif size < 0 or size > actual:
                # Mapping past the end of the object would SIGBUS on access.
                raise invalid_arg(f"{label(name)} is {actual} bytes, cannot map {size}")
            if size == 0:
                return cls(name, 0, None, fd)
            prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
            return cls(name, size, mmap.mmap(shm.fd, size, prot=prot), fd)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        finally:
            shm.close_fd()

    def close(self) -> None:
        """Unmap. Views still exported keep the mapping alive until they are dropped.

        (CPython refuses to munmap under an exported buffer; we then just drop our
        reference and the mapping goes when the last view does.) Idempotent.
        """
        mm, self._mm = self._mm, None
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)
        try:
            self.buf.release()
        except BufferError:
            pass
        if mm is not None:
            try:
                mm.close()
            except BufferError:
                pass

    def unlink(self) -> None:
        """Remove the name; existing mappings (here and elsewhere) stay valid. Idempotent."""
        unlink(self.name)

    def __repr__(self) -> str:
        return f"Segment({self.name!r}, {self.size})"


def unlink(name: str) -> bool:
    """Unlink a segment by name; False if it did not exist."""
    try:
        posix_ipc.unlink_shared_memory(_posix_name(name))
        return True
    except posix_ipc.ExistentialError:
        return False


def _reserve(fd: int, name: str, size: int) -> None:
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.ENOMEM):
            raise unavailable(check_space(size) or f"no space for {label(name)}") from None
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise


# ------------------------------------------------------------------ listing and reaping


def list_segments(server_id: Optional[str] = None) -> list[str]:
    """Names (with the leading '/') of our segments in /dev/shm, optionally of one server id."""
    prefix = "tritond-" if server_id is None else f"tritond-{server_id}-"
    try:
        entries = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return []
    return sorted("/" + e for e in entries if e.startswith(prefix) and _NAME.match(e))


def reap_orphans(prefix: str = "tritond-") -> list[str]:
    """Unlink our segments whose owner pid is dead (or was reused); returns the names removed.

    Caveat: pids are those of this pid namespace; a segment shared from another
    container's namespace would be judged by an unrelated pid, so scope ``prefix``
    to a server id when /dev/shm is shared.
    """
    prefix = prefix.lstrip("/")
    removed = []
    live = live_servers()
    for name in list_segments():
        m = _NAME.match(name[1:])
        if not name[1:].startswith(prefix) or m is None:
            continue
        # A running server unlinks its own dead workers' segments, some on purpose only
        # seconds later (a retired worker's outputs still being read): not ours to take.
        if m.group(1) in live:
            continue
        if not _owner_alive(int(m.group(2)), name) and unlink(name):
            removed.append(name)
    return removed


def live_servers() -> set[str]:
    """Ids of the servers running in this network namespace: their parent listens on
    ``@tritond-<id>-parent`` (tritond/framing.py ``address``)."""
    try:
        with open("/proc/net/unix") as table:
            lines = table.read().splitlines()[1:]
    except OSError:
        return set()
    out = set()
    for line in lines:
        path = line.rsplit(None, 1)[-1]
        if path.startswith("@tritond-") and path.endswith("-parent"):
            out.add(path[len("@tritond-"):-len("-parent")])
    return out


def _owner_alive(pid: int, name: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass                           # alive, owned by another user
    # A live pid may have been recycled: the creator started before it created the
    # segment, so a process that started clearly after the segment's mtime is not it.
    started = _start_time(pid)
    try:
        mtime = os.stat(os.path.join(SHM_DIR, name[1:])).st_mtime
    except FileNotFoundError:
        return True                    # already gone: nothing to reap
    return started is None or started <= mtime + _PID_REUSE_SLACK_S


def _boot_time() -> float:
    with open("/proc/stat", "rb") as f:
        for line in f:
            if line.startswith(b"btime "):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def _start_time(pid: int) -> Optional[float]:
    """Wall-clock start time of ``pid`` from /proc, or None if unavailable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        ticks = int(stat[stat.rindex(b")") + 2:].split()[19])   # field 22: starttime
        return _boot_time() + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


# ------------------------------------------------------------------ free space


def shm_free_bytes(path: str = SHM_DIR) -> int:
    """Bytes available to unprivileged writers on the filesystem at ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def check_space(needed: int, path: str = SHM_DIR) -> Optional[str]:
    """None if ``needed`` bytes fit in ``path``, else one line saying how to make room."""
    free = shm_free_bytes(path)
    if needed <= free:
        return None
    # Suggest room for what is already used plus the need, with headroom, rounded up.
    st = os.statvfs(path)
    want = _size_arg(2 * ((st.f_blocks - st.f_bavail) * st.f_frsize + needed))
    k8s = want[:-1] + want[-1].upper() + "i"
    return (f"{path} has {_human(free)} free but {_human(needed)} of shared memory is needed; "
            f"enlarge it: docker run --shm-size={want}, on Kubernetes mount an emptyDir "
            f"(medium: Memory, sizeLimit: {k8s}) at {path}, "
            f"or run `mount -o remount,size={want} {path}`")


def _human(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _size_arg(n: int) -> str:
    """A size for --shm-size / mount options, rounded up to whole M or G."""
    mib = -(-n // (1 << 20))
    return f"{-(-mib // 1024)}g" if mib >= 1024 else f"{mib}m"
