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

from tritond import namespaces
from . import names as names_mod
from .models import UNLOADED

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


def _changed(old: tuple, new: tuple) -> set[str]:
    """The repositories (stripped as in a key) whose copy of a model is new or changed."""
    return {repo.rstrip("/") for repo, fp in new if (repo, fp) not in old}


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
        old, self.seen = self.seen, new
        for name in removed:
            log.info("poll: '%s' was removed from the repository: unloading", name)
            await self.remove(name)
        for name in added + modified:
            log.info("poll: '%s' %s: loading", name, "is new" if name in added else "changed")
        await asyncio.gather(*(self.load(n, _changed(old.get(n, ()), new[n]))
                               for n in added + modified))
        if self.options.model_namespacing and (added or removed or modified):
            await self.relink()

    async def load(self, name: str, repos: set[str] | None = None) -> None:
        """(Re)load ``name`` after its directory appeared or changed: each namespace's copy
        (with namespacing only those in ``repos``, the changed ones); a copy whose
        directory is gone is removed."""
        control, names = self.control, self.control.names
        keys = names.on_disk(name) or [name]
        for key in sorted(set(names.loaded(name)) | self._known(name)):
            if key not in keys:
                await control.apply_change(key, lambda key=key: control.forget_key(key))
        control.registry.known.update(keys)
        if self.options.model_namespacing and repos is not None:
            keys = [k for k in keys if namespaces.namespace_of(k) in repos]
        await asyncio.gather(*(control.apply_change(key, lambda key=key: control.load_key(key))
                               for key in keys))

    async def remove(self, name: str) -> None:
        """Unload ``name`` (every namespace's copy) and forget it: its directory is gone."""
        control = self.control
        for key in sorted(set(control.names.loaded(name)) | self._known(name) or {name}):
            await control.apply_change(key, lambda key=key: control.forget_key(key))

    def _known(self, name: str) -> set[str]:
        return {k for k in self.control.registry.known if namespaces.name_of(k) == name}

    async def relink(self) -> None:
        """Reload each ensemble whose steps now resolve to another namespace's model: Triton
        reconnects them when a model of a step's name appears or goes (test_dynamic_resolution
        of Triton's L0_model_namespacing)."""
        registry = self.control.registry
        index = names_mod.known_index(registry)
        stale = sorted({key for (key, _), mv in registry.versions.items()
                        if mv.ensemble and mv.reason != UNLOADED and any(
                            names_mod.step(key, namespaces.name_of(s.model_name), index)
                            != s.model_name for s in mv.spec.steps)})
        for key in stale:
            log.info("poll: ensemble '%s' links to other models now: reloading",
                     namespaces.identifier(key))
            await self.control.apply_change(key, lambda key=key: self.control.load_key(key))
