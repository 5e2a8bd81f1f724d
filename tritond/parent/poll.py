"""``--model-control-mode=poll``: re-scan the repositories every ``--repository-poll-secs``.

A model directory is summarised by a fingerprint (every file and directory under
it: relative path, size, mtime), as Triton compares model timestamps. Each poll
compares the new fingerprints with the last ones: a new directory is loaded, a
removed one unloaded and forgotten, a changed one reloaded through the same path
as the load API (the new versions load beside the old ones; if they fail, the
old ones keep serving). A change is tried once; it is retried when the
directory changes again. Polls never overlap.
"""
from __future__ import annotations

import asyncio
import logging
import os

log = logging.getLogger("tritond.supervisor")


def fingerprint(model_dir: str) -> tuple:
    """Everything under ``model_dir`` that a change to the model would touch."""
    entries = []
    for root, dirs, files in os.walk(model_dir):
        dirs.sort()
        for name in sorted(files) + dirs:
            path = os.path.join(root, name)
            try:
                st = os.stat(path)
            except OSError:
                continue                 # removed while we walked: the next poll sees it
            entries.append((os.path.relpath(path, model_dir), st.st_size, st.st_mtime_ns))
    return tuple(entries)


def snapshot(repositories: list[str]) -> dict[str, tuple]:
    """Model name -> fingerprint (a name in several repositories: each place counts)."""
    out: dict[str, tuple] = {}
    for repo in repositories:
        try:
            names = sorted(os.listdir(repo))
        except OSError as exc:
            log.error("failed to poll model repository '%s': %s", repo, exc.strerror)
            continue
        for name in names:
            path = os.path.join(repo, name)
            if os.path.isdir(path):
                out[name] = out.get(name, ()) + ((repo, fingerprint(path)),)
    return out


def changes(old: dict, new: dict) -> tuple[list[str], list[str], list[str]]:
    """(added, removed, modified) model names."""
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    modified = sorted(n for n in set(old) & set(new) if old[n] != new[n])
    return added, removed, modified


class Poller:
    """Applies repository changes through ModelControl (a member of the Supervisor)."""

    def __init__(self, options, control) -> None:
        self.options = options
        self.control = control
        self.seen: dict[str, tuple] = {}
        self._task: asyncio.Task | None = None

    def start_from(self, seen: dict[str, tuple]) -> None:
        """Poll from now on, against ``seen`` (the snapshot taken before the first load)."""
        self.seen = seen
        if self.options.repository_poll_secs > 0:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.options.repository_poll_secs)
            try:
                await self.poll()
            except Exception:  # noqa: BLE001 - a bug must not end polling
                log.exception("repository poll failed")

    async def poll(self) -> None:
        loop = asyncio.get_running_loop()
        new = await loop.run_in_executor(None, snapshot, self.options.model_repository)
        added, removed, modified = changes(self.seen, new)
        self.seen = new
        for name in removed:
            log.info("poll: '%s' was removed from the repository: unloading", name)
            await self.control.poll_remove(name)
        for name in added + modified:
            log.info("poll: '%s' %s: loading", name, "is new" if name in added else "changed")
        await asyncio.gather(*(self.control.poll_load(n) for n in added + modified))
