"""What a reload keeps: Triton's in-place model update.

Triton (core's ``ModelLifeCycle::AsyncLoad``) reloads a served version only when its
files changed (``tritond/repository/timestamps.py``) or its config changed in more than
``instance_group`` and ``version_policy`` (``ConfigChangeRequiresReload``). Otherwise the
version keeps serving, and a changed ``instance_group`` is applied in place
(``Model::UpdateInstanceGroup``): instances whose group signature (the group less its
name and count, on its device) is still wanted keep running untouched, the missing ones
start, the extra ones drain and stop. Loading an unchanged model does nothing.

tritond reloads a sequence model whose instance groups changed in full (a sequence's slot
is bound to an instance in the scheduler; Triton keeps a removed instance until its
sequences end), so its sequences in flight end; and, as Triton, ensembles.
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time

from tritond.protos.model_config_pb2 import ModelConfig
from tritond.repository import timestamps
from tritond.spec import ModelSpec
from .models import READY, Instance, ModelVersion, group_plan, planned_instances

log = logging.getLogger("tritond.supervisor")


def basis(cfg: ModelConfig) -> bytes:
    """The part of a normalized config whose change reloads a version."""
    rest = ModelConfig()
    rest.CopyFrom(cfg)
    rest.ClearField("instance_group")
    rest.ClearField("version_policy")
    return rest.SerializeToString(deterministic=True)


def unmodified(old: list[ModelVersion], src) -> bool:
    """Whether every version of a served model is READY and nothing in its directory is
    newer than at its last load (Triton then leaves the model as it is, with the config
    an override gave it). Ensembles always reload: their steps may link to another
    namespace's model now (namespaces.py), and they have no workers to restart."""
    return bool(old) and all(mv.state == READY and mv.model_dir == src.model_dir and mv.stamps
                             and not mv.ensemble for mv in old) and not timestamps.modified(
        old[0].stamps, timestamps.read(src.model_dir))


def kept(old: list[ModelVersion], src, overridden: bool = False
         ) -> tuple[ModelConfig | None, dict, dict]:
    """The new normalized config, the directory's timestamps and {version: served
    version} of the versions in ``old`` that keep serving under ``src``.

    A config override stamps the config as written now (as Triton does): the next
    load without it leaves the model alone until a file changes."""
    cfg, stamps = normalized(src.config), timestamps.read(src.model_dir)
    if overridden:
        stamps = {**stamps, timestamps.CONFIG_ENTRIES[0]: time.time_ns()}
    return cfg, stamps, {mv.version: mv for mv in old if cfg is not None and
                         mv.model_dir == src.model_dir and mv.version in src.versions and
                         keeps(mv, cfg, stamps) and not (
                             mv.spec.sequence_batching is not None and instance_update(mv, cfg))}


def normalized(cfg: ModelConfig) -> ModelConfig | None:
    """A normalized copy of a config just read (None when it does not normalize: the
    load then fails as usual)."""
    from tritond import gpus, repository

    copy = ModelConfig()
    copy.CopyFrom(cfg)
    try:
        repository.normalize(copy, gpus=gpus.count())
    except Exception:  # noqa: BLE001 - the load reports it
        return None
    return copy


def keeps(mv: ModelVersion, cfg: ModelConfig, stamps: dict) -> bool:
    """Whether the served ``mv`` keeps serving under the new normalized ``cfg``."""
    return (mv.state == READY and not mv.ensemble and mv.spec is not None and bool(mv.basis)
            and mv.basis == basis(cfg)
            and not timestamps.version_modified(mv.stamps, stamps, mv.version))


@dataclasses.dataclass
class InstanceUpdate:
    """A kept version's new instance groups: the spec to publish and which instances
    stay, start and stop (``order`` is the new ``mv.instances``, in plan order)."""

    spec: ModelSpec
    order: list[Instance]
    added: list[Instance]
    removed: list[Instance]


def instance_update(mv: ModelVersion, cfg: ModelConfig) -> InstanceUpdate | None:
    """None when ``cfg`` asks for the instance groups ``mv`` serves with."""
    from tritond import repository
    from tritond.repository.modelconfig import from_json

    final = from_json(mv.spec.config_json)     # as the first worker completed it
    if list(final.instance_group) == list(cfg.instance_group):
        return None
    old_sigs = _signatures(final, mv.spec)
    del final.instance_group[:]
    final.instance_group.extend(cfg.instance_group)
    spec = repository.spec_from_config(final, mv.version)
    spare = collections.defaultdict(list)       # signature -> instances, in plan order
    for inst, sig in zip(mv.instances, old_sigs):
        spare[sig].append(inst)
    taken = set()
    wanted = []
    for planned, sig in zip(planned_instances(spec), _signatures(final, spec)):
        inst = spare[sig].pop(0) if spare[sig] else None
        wanted.append(inst or planned)
        if inst is not None:
            taken.add(inst.name)
    order, added = [], []
    kept = {id(inst) for inst in mv.instances}
    for inst in wanted:
        if id(inst) in kept:
            order.append(inst)
            continue
        unique, n = inst.name, 1
        while unique in taken:      # a kept instance has this name: never two alike
            unique, n = f"{inst.name}_{n}", n + 1
        taken.add(unique)
        inst.name = unique
        order.append(inst)
        added.append(inst)
    removed = [inst for left in spare.values() for inst in left]
    return InstanceUpdate(spec, order, added, removed)


def _signatures(cfg: ModelConfig, spec: ModelSpec) -> list[tuple[bytes, str, int]]:
    """Per planned instance: its group less name, count and gpus, kind and device."""
    groups = []
    for group in cfg.instance_group:
        g = type(group)()
        g.CopyFrom(group)
        g.ClearField("name")
        g.ClearField("count")
        g.ClearField("gpus")
        groups.append(g.SerializeToString(deterministic=True))
    return [(groups[index] if index < len(groups) else b"", kind, dev)
            for _, kind, dev, index in group_plan(spec)]


async def apply(mv: ModelVersion, update: InstanceUpdate, loader, drainer, publish) -> str:
    """Start the added instances, publish the new spec and instances, then drain and
    stop the removed ones; "" or, when an added instance fails to load, the reason
    (the version keeps its old instances and spec)."""
    needs = loader.rate_needs.get((mv.name, mv.version))
    try:
        loader.check_rate_limits(mv, update.spec)     # more instances may ask too much
    except ValueError as exc:
        return str(exc)
    results = await asyncio.gather(*(loader.start_instance(mv, inst, update.spec)
                                     for inst in update.added))
    errors = [text for ok, text in results if not ok] + _dead(mv, update.added)
    if errors:
        if needs is not None:
            loader.rate_needs[(mv.name, mv.version)] = needs
        for inst in update.added:
            loader.stop_instance(inst, "instance update failed")
        return errors[0]
    mv.spec, mv.instances = update.spec, update.order
    addresses = [inst.address for inst in update.removed   # a passive one holds nothing
                 if inst.live and inst.address and not inst.passive]
    waits = drainer.retire(addresses)
    for inst in update.removed:
        inst.loaded = False        # out of the table now; restarts leave it alone
    publish()
    try:
        await drainer.wait([f"instance:{a}" for a in addresses], waits,
                           f"updating the instances of '{mv.identifier}'")
    finally:
        drainer.retired([a for a, fut in zip(addresses, waits) if not fut.done()])
    for inst in update.removed:
        loader.stop_instance(inst, "instance removed")
    log.info("updated '%s' version %d: %d instance(s) started, %d stopped, %d serving",
             mv.identifier, mv.version, len(update.added), len(update.removed),
             len(update.order))
    return ""


def _dead(mv: ModelVersion, added: list[Instance]) -> list[str]:
    """Added instances that loaded and died while the others loaded: not in
    ``mv.instances`` yet, so restarts.py did not see them (logged here)."""
    dead = []
    for inst in added:
        child = inst.child
        if inst.loaded and child is not None and child.process.exitcode is not None:
            dead.append(inst.died(child))
            log.error("model '%s' version %d: %s", mv.identifier, mv.version, dead[-1])
    return dead


async def apply_all(kept: dict[int, ModelVersion], updates: dict[int, InstanceUpdate],
                    loader, drainer, publish) -> str:
    """``apply`` each update; Triton's load status of those that failed (core's
    ModelLifeCycle::OnLoadComplete for an update: "version <v> is at READY state:
    <reason>;"). A failed version keeps serving with its old instances and, as Triton's
    ModelInfo, keeps the reason (the index shows it beside READY) until its next update."""
    status = ""
    for mv in kept.values():
        mv.reason = ""      # Triton's UpdateModelConfig clears it before trying
    for version, update in updates.items():
        if reason := await apply(kept[version], update, loader, drainer, publish):
            kept[version].reason = reason
            status += f"version {version} is at READY state: {reason};"
    return status
