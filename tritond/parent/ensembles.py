"""Ensembles in the parent: no worker; READY once their composing models are.

An ensemble version waits for the composing models loading beside it, then
checks each step against the composing model's final config
(``repository.ensemble_graph.check_steps``). The scheduler runs it
(scheduler/ensembles.py). It is published live only while every composing
model is ready; in explicit mode, loading it loads what it needs first.

What Triton's dependency graph checks (composing models present and unambiguous,
no cycle, their versions loaded, the steps' maps against their configs: core's
model_repository_manager.cc ConnectDependencyGraph / CheckNode and
ensemble_utils.cc ValidateEnsembleConfig) fails the ensemble before its model
lifecycle sees it (``refuse``); the rest fails the version as any model's. A composing
model whose config failed the poll is no node of that graph (``unpolled``); one that
failed to load is quoted with its load status (``load_error``).
"""
from __future__ import annotations

import asyncio
import logging

import msgspec

from tritond import messages
from tritond.errors import Code, TritonError, status_text
from tritond.namespaces import identifier      # how Triton's reasons name a model
from . import names as names_mod
from .models import LOADED, LOADING, READY, UNAVAILABLE, ModelVersion, Registry, load_status

log = logging.getLogger("tritond.supervisor")

WAIT_S = 0.02
_waiting: dict[str, list[str]] = {}    # ensemble loading now -> the models it waits for
_in_cycle: dict[str, str] = {}         # ensemble -> its circular dependency error, found by another


def composing(cfg) -> list[str]:
    """The models an ensemble config's steps name, in step order, once each."""
    names: list[str] = []
    for step in cfg.ensemble_scheduling.step:
        if step.model_name not in names:
            names.append(step.model_name)
    return names


def is_ensemble(cfg) -> bool:
    return cfg.platform == "ensemble" or cfg.HasField("ensemble_scheduling")


async def load_ensemble(loader, mv: ModelVersion, cfg) -> None:
    """Make ``mv`` LOADED (or UNAVAILABLE with the reason) once its steps can be checked."""
    from tritond import repository
    from tritond.repository.ensemble_graph import check_steps
    from tritond.repository.validation import check_response_cache

    try:
        repository.validate(cfg, mv.model_dir)   # steps connected, acyclic (ensemble_graph)
    except TritonError as exc:
        return loader._fail(mv, exc.message)
    registry: Registry = loader.registry
    index = names_mod.known_index(registry)
    keys = {n: names_mod.step(mv.name, n, index) for n in composing(cfg)}
    unavailable = [n for n, k in keys.items() if (k == n and len(index.get(n, ())) > 1)
                   or (k not in registry.known and not registry.versions_of(k))
                   or unpolled(registry, k)]
    if unavailable:       # Triton's DependencyGraph message
        return refuse(mv, f"ensemble {identifier(mv.name)} contains models that are not "
                          f"available or ambiguous: {', '.join(unavailable)}")
    names = list(dict.fromkeys(keys.values()))
    if mv.name in names:
        return refuse(mv, _circular(mv.name, mv.name))
    waiting = _waiting
    waiting[mv.name] = names
    try:
        while True:
            loading = [n for n in names for v in registry.versions_of(n)
                       if v.state in (LOADING, LOADED) and v is not mv]
            if not loading:
                break
            cycle = next((n for n in loading if _reaches(waiting, n, mv.name)), None)
            if cycle is not None:
                _in_cycle[cycle] = _circular(cycle, mv.name)   # it fails with the same text
                return refuse(mv, _circular(mv.name, cycle))
            await asyncio.sleep(WAIT_S)
    finally:
        waiting.pop(mv.name, None)
    if mv.name in _in_cycle:
        return refuse(mv, _in_cycle.pop(mv.name))
    specs = {}
    for step in cfg.ensemble_scheduling.step:
        name = keys[step.model_name]
        found = _version(registry, name, step.model_version)
        if found is None:
            return refuse(mv, _missing(registry, mv.name, name, step.model_version))
        specs[step.model_name] = found.spec
    try:
        # Triton's rule: an ensemble is decoupled exactly when a step is (the
        # served config says so too).
        cfg.model_transaction_policy.decoupled = check_steps(cfg, specs)
    except TritonError as exc:
        return refuse(mv, exc.message)
    try:
        check_response_cache(cfg)       # a decoupled step makes a cached ensemble fail
        mv.spec = _keyed(repository.spec_from_config(cfg, mv.version), keys)
    except TritonError as exc:
        return loader._fail(mv, exc.message)
    mv.state = LOADED          # READY with its load's other versions (loadsets.py)
    loader.log_loaded(mv)


def refuse(mv: ModelVersion, reason: str) -> None:
    """Fail ``mv`` as Triton's dependency graph does: the version never reaches the model
    lifecycle, so it leaves the registry once its load ends (a name-only index row, no
    cost to readiness); the reason is in the log, as Triton's LoadModelByDependency
    writes it, and in the load API's answer."""
    mv.state, mv.reason, mv.refused = UNAVAILABLE, reason, True
    log.error("%s", status_text(Code.INVALID_ARG, reason))


def forget_refused(registry: Registry, mv: ModelVersion, cfg) -> None:
    """Take refused ``mv`` out of the versions: its index row is name-only, as Triton's;
    loading a model its steps name tries it again (control.py)."""
    if registry.versions.get((mv.name, mv.version)) is mv:
        del registry.versions[(mv.name, mv.version)]
    registry.failed.pop(mv.name, None)
    registry.refused[mv.name] = (mv.reason, frozenset(composing(cfg)))


def _keyed(spec, keys: dict[str, str]):
    """``spec`` with each step naming the key of its model (what the scheduler and the
    registry look up; the served config keeps the names)."""
    steps = tuple(msgspec.structs.replace(s, model_name=keys.get(s.model_name, s.model_name))
                  for s in spec.steps)
    return msgspec.structs.replace(spec, steps=steps)


def _circular(ensemble: str, last: str) -> str:
    """Triton's text; ``last`` is the ensemble in the loop that depends on ``ensemble``."""
    ensemble, last = identifier(ensemble), identifier(last)
    return f"circular dependency between ensembles: {ensemble} -> ... -> {last} -> {ensemble}"


def _reaches(waiting: dict, start: str, target: str) -> bool:
    """Whether ensemble ``start`` (transitively) waits for ``target``."""
    todo, seen = [start], set()
    while todo:
        name = todo.pop()
        if name == target:
            return True
        if name not in seen:
            seen.add(name)
            todo.extend(waiting.get(name, ()))
    return False


def _version(registry: Registry, name: str, version: int):
    ready = [v for v in registry.versions_of(name) if v.state == READY and v.spec is not None
             and (version <= 0 or v.version == version)]
    return max(ready, key=lambda v: v.version) if ready else None


def _missing(registry: Registry, ensemble: str, name: str, version: int) -> str:
    ensemble, shown = identifier(ensemble), identifier(name)
    refused = registry.refused.get(name) or next(
        ((v.reason,) for v in registry.versions_of(name) if v.refused), None)
    if refused:
        return (f"ensemble '{ensemble}' depends on '{shown}' which is not valid. Model "
                f"'{shown}' failed with error: {refused[0]}")
    if name not in registry.known and not registry.versions_of(name):
        return f"ensemble '{ensemble}' depends on '{shown}' which is not valid"
    if version > 0 and any(v.state == READY for v in registry.versions_of(name)):
        return (f"ensemble '{ensemble}' depends on '{shown}' whose required version {version} "
                f"is not loaded.")
    text = f"ensemble '{ensemble}' depends on '{shown}' which has no loaded version."
    if error := load_error(registry, name):
        text += f" Model '{shown}' loading failed with error: {error}"
    return text


def unpolled(registry: Registry, name: str) -> bool:
    """Whether ``name``'s config failed Triton's poll and no version of it is known: no
    node of Triton's dependency graph, so an ensemble naming it is "not available"."""
    return name in registry.unpolled and not registry.versions_of(name)


def load_error(registry: Registry, name: str) -> str:
    """The status of ``name``'s failed load as Triton's model lifecycle gives it (CheckNode
    quotes it): the load's own error, or each failed version's
    "version <v> is at UNAVAILABLE state: <reason>;" (models.load_status)."""
    if name in registry.failed:
        return registry.failed[name]
    return load_status([v for v in registry.versions_of(name)
                        if v.state == UNAVAILABLE and v.reason and not v.refused])


def entry(mv: ModelVersion, registry: Registry) -> messages.ModelEntry:
    """``mv.entry()`` of an ensemble: live only while every composing model is ready.

    One whose composing model has no loaded version (unloaded, or gone from a polled
    repository) reads as unloaded, as Triton's dependency graph unloads it then (and
    loads it again with that model): index row UNAVAILABLE "unloaded", requests and
    metadata answered "has no available versions". A composing model that is loaded
    but not live (its instances restarting) only makes it not ready."""
    e = mv.entry()
    if mv.state != READY or mv.spec is None:
        return e
    if _unlinked(mv, registry):
        e.state, e.reason, e.live = UNAVAILABLE, "unloaded", False
        return e
    for step in mv.spec.steps:
        found = _version(registry, step.model_name, step.model_version)
        if not _live(found, registry):
            e.live = False
            e.reason = f"composing model '{step.model_name}' is not ready"
            break
    return e


def _unlinked(mv: ModelVersion, registry: Registry, depth: int = 0) -> bool:
    """Whether a step of ensemble ``mv`` (or of a nested one) names a model with no
    loaded version it accepts."""
    for step in mv.spec.steps:
        found = _version(registry, step.model_name, step.model_version)
        if found is None or (found.spec.steps and depth < 16
                             and _unlinked(found, registry, depth + 1)):
            return True
    return False


def is_live(mv: ModelVersion, registry: Registry) -> bool:
    """Whether ``mv`` serves: ready, and for an ensemble every composing model too."""
    return mv.state == READY and _live(mv, registry)


def _live(mv: ModelVersion, registry: Registry, depth: int = 0) -> bool:
    if mv.spec is not None and mv.spec.steps:
        if depth > 16:
            return False
        return all((v := _version(registry, s.model_name, s.model_version)) is not None
                   and _live(v, registry, depth + 1) for s in mv.spec.steps)
    return mv.ready


def expand(wanted: set[str], sources: list) -> set[str]:
    """The keys of ``wanted`` (explicit mode's --load-model: names, every namespace's
    copy) plus what their ensembles need, transitively; a name found nowhere stays as it
    is (the caller reports it)."""
    from tritond import namespaces

    configs = {s.name: s.config for s in sources if not s.error and s.config is not None}
    index = namespaces.index(s.name for s in sources)
    todo = [k for n in wanted for k in index.get(n, ())]
    out = set(todo) | {n for n in wanted if n not in index}
    while todo:
        key = todo.pop()
        cfg = configs.get(key)
        if cfg is None or not is_ensemble(cfg):
            continue
        for name in composing(cfg):
            dep = names_mod.step(key, name, index)
            if dep not in out:
                out.add(dep)
                todo.append(dep)
    return out
