"""Python execution environments (``EXECUTION_ENV_PATH``): found, unpacked and checked
in the parent's load path, once for every instance and model naming the same archive.

As Triton's Python backend (pb_env.cc): ``$$TRITON_MODEL_DIRECTORY`` is the model's
directory; a directory is used where it is; an archive (conda-pack's tar.gz) is
unpacked once into ``<TMPDIR>/tritond_python_env_<pid>_<random>/<n>`` and again into
a new ``<n>`` when its modification time changes; the whole directory is removed at
shutdown, or by the next server to unpack one if this one was killed. Entries that
would land outside it are refused with libarchive's texts as Triton reports them
("archive_write_header() failed with error code = -25 error message is Path contains
'..'", "... Path is absolute"); links, device files and entries written through a
link are checked by tarfile's "data" filter (an absolute symlink, such as a venv's
``bin/python``, is kept, as Triton keeps it). The blocking work runs in a thread
(``Loader`` awaits ``asyncio.to_thread(envs.prepare, ...)``): the parent's loop keeps
serving.

How a worker then uses the environment, and the numpy rule: tritond/execenv.py.
"""
from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import tarfile
import tempfile
import threading

from tritond import execenv
from tritond.channel import pid_alive
from tritond.errors import Code, TritonError

log = logging.getLogger("tritond.supervisor")

PARAMETER = "EXECUTION_ENV_PATH"
MODEL_DIRECTORY = "$$TRITON_MODEL_DIRECTORY"
PREFIX = "tritond_python_env_"     # + <pid>_<random>, under TMPDIR


def requested(cfg) -> str:
    """The ``EXECUTION_ENV_PATH`` a Python model or a Python-based backend's model asks
    for ("" if none; other backends ignore the parameter, as in Triton)."""
    if (cfg.backend != "python" and cfg.runtime != "model.py") or \
            PARAMETER not in cfg.parameters:
        return ""
    return cfg.parameters[PARAMETER].string_value


def resolve(value: str, model_dir: str) -> str:
    """``value`` with ``$$TRITON_MODEL_DIRECTORY`` replaced by the model's directory."""
    return value.replace(MODEL_DIRECTORY, model_dir, 1)


class Environments:
    """The server's environments: canonical archive path -> (mtime, unpacked root)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()     # loads of several models run in threads at once
        self._base = ""
        self._unpacked: dict[str, tuple[int, str]] = {}
        self._made = 0                    # directories made under base

    @property
    def base(self) -> str:
        """Where archives are unpacked ("" until the first one)."""
        return self._base

    def prepare(self, value: str, model_dir: str) -> str:
        """The root directory of the environment ``value`` names, ready for a worker
        (blocking); a TritonError says why not."""
        path = resolve(value, model_dir)
        log.info("Using Python execution env %s", path)
        canonical = os.path.realpath(path)
        if not path or not os.path.exists(canonical):
            raise failed(f"Failed to get the canonical path for {path}.")
        root = canonical if os.path.isdir(canonical) else self._unpack(canonical)
        check(root, path)
        return root

    def _unpack(self, archive: str) -> str:
        with self._lock:
            mtime = os.stat(archive).st_mtime_ns
            known = self._unpacked.get(archive)
            if known is not None and known[0] == mtime:
                return known[1]
            if not self._base:
                reap_orphans(tempfile.gettempdir())
                self._base = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}_")
                self._made = 0
            # A new directory, not the old one emptied: workers of the version being
            # replaced may still import from it until they stop (removed at shutdown).
            dst = os.path.join(self._base, str(self._made))
            self._made += 1
            os.mkdir(dst)
            log.info("Extracting Python execution env %s", archive)
            try:
                extract(archive, dst)
            except BaseException:
                shutil.rmtree(dst, ignore_errors=True)
                raise
            self._unpacked[archive] = (mtime, dst)
            return dst

    def close(self) -> None:
        """Remove every unpacked environment (at shutdown; also from a forced exit's
        signal handler, so without the lock an unpacking may hold)."""
        base, self._base = self._base, ""
        if base:
            shutil.rmtree(base, ignore_errors=True)
        self._unpacked.clear()


def reap_orphans(tmp: str) -> list[str]:
    """Remove the environments a server that died without its shutdown left in ``tmp``
    (the directory names carry the server's pid); returns what was removed."""
    removed = []
    for path in glob.glob(os.path.join(tmp, f"{PREFIX}*_*")):
        match = re.fullmatch(rf"{PREFIX}(\d+)_\w+", os.path.basename(path))
        if match and not pid_alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def extract(archive: str, dst: str) -> None:
    """Unpack ``archive`` (tar, optionally gzip/bz2/xz) into ``dst``, refusing any
    entry that would be written outside it (Triton's texts: libarchive's)."""
    if not hasattr(tarfile, "data_filter"):     # added in 3.11.4 (PEP 706)
        raise failed("unpacking a Python execution environment needs Python 3.11.4 or "
                     "newer (tarfile's extraction filters)")
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise failed(f"archive_read_open_filename() failed. '{archive}' is not a readable "
                     "tar archive (tar, tar.gz, tar.bz2, tar.xz)") from exc
    try:
        with tar:
            members = tar.getmembers()
            for member in members:
                _refuse_escape(member.name)
            tar.extractall(dst, members=members, filter=_filter)
    except tarfile.FilterError as exc:
        raise _refused(str(exc)) from exc
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        text = " ".join(str(exc).split())
        raise failed(f"Failed to extract Python execution env '{archive}': {text}") from exc


def failed(message: str) -> TritonError:
    """A load failure as Triton's Python backend reports it (INTERNAL; the version's reason
    names the code first, tritond.errors.status_text)."""
    return TritonError(Code.INTERNAL, message)


def _refused(reason: str) -> TritonError:
    # libarchive's archive_write_header() refusing an entry: ARCHIVE_FAILED
    return failed(f"archive_write_header() failed with error code = -25 error message is "
                  f"{reason}")


def _filter(member: tarfile.TarInfo, dst: str) -> tarfile.TarInfo:
    if member.issym() and member.linkname.startswith("/"):
        # A venv's bin/python links to its base interpreter (Triton keeps such links);
        # writing *through* a link out of dst is still refused: the data filter
        # resolves every later entry's path on disk.
        return tarfile.tar_filter(member, dst)
    return tarfile.data_filter(member, dst)


def _refuse_escape(name: str) -> None:
    # libarchive's ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS / _NODOTDOT, as Triton extracts
    if name.startswith("/"):
        raise _refused(f"Path is absolute ('{name}')")
    if ".." in name.split("/"):
        raise _refused(f"Path contains '..' ('{name}')")


def check(root: str, named: str) -> None:
    """Refuse the environment at ``root`` (``named`` by the config) if a worker cannot
    use it: no activate script (Triton's rule), another Python minor version, or a
    numpy older than tritond's own floor."""
    activate = os.path.join(root, "bin", "activate")
    if not os.path.isfile(activate):
        raise failed(f"Path {activate} does not exist. The Python environment should "
                     "contain an 'activate' script.")
    want = execenv.python_dir()
    site = execenv.site_dir(root)
    if not os.path.isdir(site):
        found = sorted(os.path.basename(os.path.dirname(p))
                       for p in glob.glob(os.path.join(root, "lib", "python*", "site-packages")))
        what = (f"is for {', '.join(found)} (lib/{found[0]}/site-packages)" if found
                else "has no lib/python*/site-packages")
        raise failed(
            f"the Python execution environment {named} {what}, but tritond's Python worker "
            f"runs {want}: the environment's Python version must match the worker's "
            f"(lib/{want}/site-packages)")
    numpy = _numpy_version(site)
    if numpy is not None and numpy < execenv.NUMPY_FLOOR:
        raise failed(
            f"the Python execution environment {named} carries numpy "
            f"{'.'.join(map(str, numpy))}; tritond's worker uses the environment's numpy "
            f"and needs numpy >= {'.'.join(map(str, execenv.NUMPY_FLOOR))}")


def _numpy_version(site: str) -> tuple[int, ...] | None:
    """numpy's version in ``site`` from its dist-info name (pip and conda both write one;
    older conda packages an egg-info)."""
    for info in glob.glob(os.path.join(site, "numpy-*.*-info")):
        match = re.match(r"numpy-(\d+)\.(\d+)", os.path.basename(info))
        if match:
            return tuple(int(g) for g in match.groups())
    return None
