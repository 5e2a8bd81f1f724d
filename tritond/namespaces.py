"""Model namespaces (``--model-namespacing``): one model name served once per repository.

Triton keys a model by ``ModelIdentifier(namespace, name)``, the namespace being the
repository path, and resolves a client's bare name through its global map
(model_repository_manager.cc ``FindModelIdentifier``): unknown is INVALID_ARG, one
identifier is that model, several are an INVALID_ARG asking for a namespace (which no
client API can give). Ensemble steps prefer their own namespace.

tritond keys every model by one string everywhere (registry, model table, scheduler,
statistics). With namespacing that key is ``<repository>/<name>``: a model name is a
directory name, so it never holds a ``/`` and the key of a namespaced model never
equals a bare name; without namespacing the key is the bare name and nothing changes.
Everything a client sees shows :func:`name_of` (and :func:`namespace_of` as the
``namespace`` metrics label); logs and load-failure reasons show :func:`identifier`,
``<repository>::<name>``, as Triton's do.
"""
from __future__ import annotations

from tritond.errors import invalid_arg


def key(repository: str, name: str, namespacing: bool) -> str:
    """The internal key of model ``name`` found in ``repository``."""
    if not namespacing:
        return name
    return f"{repository.rstrip('/') or ''}/{name}"


def name_of(key: str) -> str:
    """The model name a client sees."""
    return key.rsplit("/", 1)[-1]


def identifier(key: str) -> str:
    """A model as Triton's logs and load reasons name it: ``<repository>::<name>`` for a
    namespaced key (core's ``ModelIdentifier::str()``), so that two copies of a name
    tell apart; the name itself without namespacing."""
    if "/" not in key:
        return key
    return f"{namespace_of(key)}::{name_of(key)}"


def namespace_of(key: str) -> str:
    """The repository of a namespaced key ("" for a bare name)."""
    return key.rsplit("/", 1)[0] if "/" in key else ""


def index(keys) -> dict[str, list[str]]:
    """Model name -> its keys (Triton's global map), each list in key order."""
    out: dict[str, list[str]] = {}
    for k in sorted(keys):
        out.setdefault(name_of(k), []).append(k)
    return out


def ambiguous(name: str, count: int):
    """Triton's error for a bare name that more than one namespace serves."""
    return invalid_arg(f"There are {count} identifiers of model '{name}' in global map, model "
                       f"namespace must be provided to resolve ambiguity.")


def resolve(name: str, by_name: dict[str, list[str]]) -> str | None:
    """The one key the bare ``name`` stands for; None when unknown; the ambiguity error
    when several namespaces serve it."""
    keys = by_name.get(name)
    if not keys:
        return None
    if len(keys) > 1:
        raise ambiguous(name, len(keys))
    return keys[0]


def prefer(namespace: str, name: str, by_name: dict[str, list[str]]) -> str | None:
    """An ensemble step's model: the one in the ensemble's own namespace, else the only
    one anywhere (Triton's DependencyGraph fuzzy match); None if none or ambiguous."""
    keys = by_name.get(name, [])
    own = f"{namespace}/{name}" if namespace else name
    if own in keys:
        return own
    return keys[0] if len(keys) == 1 else None
