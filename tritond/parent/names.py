"""The parent's name -> key resolution (``--model-namespacing``; tritond/namespaces.py).

The load/unload API, polling and ensembles name models by their bare name; the
registry keys them by ``namespaces.key``. Without namespacing a key is the name and
every function here returns ``[name]`` or ``name``.
"""
from __future__ import annotations

import os

from tritond import namespaces
from .models import UNLOADED, Registry


class Names:
    """Resolves model names for the parent's control plane."""

    def __init__(self, options, registry: Registry) -> None:
        self.options = options
        self.registry = registry

    @property
    def namespacing(self) -> bool:
        return self.options.model_namespacing

    def on_disk(self, name: str) -> list[str]:
        """The keys of every repository directory called ``name`` (one per repository
        with namespacing; without it the bare name, once, if any repository has it)."""
        if not name or "/" in name:
            return []
        repos = [r for r in self.options.model_repository if os.path.isdir(os.path.join(r, name))]
        if not self.namespacing:
            return [name] if repos else []
        return [namespaces.key(r, name, True) for r in repos]

    def loaded(self, name: str) -> list[str]:
        """The keys of ``name`` the registry knows a version (or a failed load) of."""
        keys = {k for (k, _), mv in self.registry.versions.items() if mv.reason != UNLOADED}
        keys.update(self.registry.failed)
        keys.update(self.registry.refused)
        return sorted(k for k in keys if namespaces.name_of(k) == name)

    def composing_on_disk(self, ensemble: str, name: str) -> str:
        """:func:`step` against the repositories and the loaded models (explicit loads)."""
        keys = set(self.on_disk(name))
        keys.update(k for k in known_index(self.registry).get(name, ())
                    if self.registry.versions_of(k))
        return step(ensemble, name, namespaces.index(keys))

    def directory(self, key: str) -> list[tuple[str, str]]:
        """(repository, model directory) of a key: its own with namespacing; without it
        every repository holding the name (several are refused by the caller)."""
        if self.namespacing:
            repo = namespaces.namespace_of(key)
            return [(r, os.path.join(r, namespaces.name_of(key)))
                    for r in self.options.model_repository
                    if r.rstrip("/") == repo and os.path.isdir(os.path.join(r, key.rsplit("/", 1)[-1]))]
        return [(repo, os.path.join(repo, key)) for repo in self.options.model_repository
                if key and os.path.isdir(os.path.join(repo, key))]


def known_index(registry: Registry) -> dict[str, list[str]]:
    """Name -> keys of every model with a version loaded, loading or failed to load
    (not unloaded): what an ensemble step can be connected to."""
    keys = {k for (k, _), mv in registry.versions.items() if mv.reason != UNLOADED}
    keys.update(k for k, _ in registry.loading)
    return namespaces.index(keys)


def step(ensemble: str, name: str, index: dict[str, list[str]]) -> str:
    """The key an ensemble step naming ``name`` uses: the model in the ensemble's own
    namespace, else the only one (else the bare name, which fails the load)."""
    return namespaces.prefer(namespaces.namespace_of(ensemble), name, index) or name
