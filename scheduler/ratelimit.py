"""Triton's rate limiter (``--rate-limit=execution_count``): resources shared by every model.

An instance group may name resources (``rate_limiter { resources [ { name count global } ]
priority }``); an instance of it may start executing only while all of them are free, and
holds them until it is idle again. A resource is per device unless ``global``; its
capacity is the largest count any registered instance asks for, or what
``--rate-limit-resource=<name>:<count>[:<device>]`` says. Instances without resources
are never held back. The InstanceRouter asks :meth:`RateLimiter.ready` before offering
an idle instance, acquires on its first batch and releases when it goes idle; an
instance with resources is not pipelined (it would keep them across batches).

Priority: as Triton's scaled priority (executions so far x ``max(priority, 1)``, lowest
first), among the idle instances of one model; across models, the scheduler serves the
models with queued requests in turn.

At load (``load_error``, called by the parent before a worker is spawned) a model is
refused as Triton's RateLimiter::RegisterModelInstance refuses it: with
``--rate-limit-resource`` given, a resource an instance asks for more of than those
flags allow (none named: 0), or a resource both global and per device across the
loaded models.

Pure: no IO.
"""
from __future__ import annotations

import json
from typing import Iterable

GLOBAL = -1          # the device of a global resource


def parse_overrides(entries: list[str]) -> dict[tuple[str, int | None], int]:
    """``<name>:<count>[:<device>]`` entries -> {(name, device or None=all): count}."""
    out = {}
    for entry in entries:
        parts = entry.split(":")
        if len(parts) not in (2, 3) or not parts[0]:
            raise ValueError(f"--rate-limit-resource option format is "
                             f"'<resource_name>:<count>:<device>' or '<resource_name>:<count>'. "
                             f"Got {entry}")
        try:
            count = int(parts[1])
            device = int(parts[2]) if len(parts) == 3 else None
        except ValueError:
            raise ValueError(f"--rate-limit-resource: invalid count or device in '{entry}'") \
                from None
        out[(parts[0], device)] = count
    return out


def group_resources(config_json: str) -> dict[str, tuple[list, int]]:
    """Instance group name -> ([(resource, count, global)], priority) from Triton's JSON."""
    try:
        groups = json.loads(config_json).get("instance_group", []) if config_json else []
    except ValueError:
        return {}
    out = {}
    for g in groups:
        limiter = g.get("rate_limiter") or {}
        res = [(r.get("name", ""), int(r.get("count", 0)), bool(r.get("global", False)))
               for r in limiter.get("resources", [])]
        if res:
            out[g.get("name", "")] = (res, int(limiter.get("priority", 0)))
    return out


def instance_needs(config_json: str, instances) -> list[tuple[tuple[str, int], int]]:
    """((resource, device or GLOBAL), count) for each of ``instances`` ((name, device)) of a
    model, as its config's groups ask."""
    groups = group_resources(config_json)
    out = []
    for name, device in instances:
        spec = groups.get(name.rsplit("_", 1)[0])
        for res, count, is_global in spec[0] if spec else ():
            out.append(((res, GLOBAL if is_global else device), count))
    return out


def explicit_count(key: tuple[str, int], overrides: dict) -> int:
    """What ``--rate-limit-resource`` allows of ``key``: a global resource the largest entry
    of its name on any device, a per-device one the largest of its device's and the
    all-devices entry; 0 when none names it (core rate_limiter.cc)."""
    name, device = key
    if device == GLOBAL:
        return max((c for (n, _), c in overrides.items() if n == name), default=0)
    return max(overrides.get((name, device), 0), overrides.get((name, None), 0))


def load_error(needs: list, others: list, overrides: dict) -> str | None:
    """Triton's reason to refuse a model whose instances need ``needs`` (instance_needs)
    while the loaded models need ``others``; None: it may load."""
    if overrides:
        for key, count in needs:
            have = explicit_count(key, overrides)
            if have < count:
                return (f'Resource count for "{key[0]}" is limited to {have} which will '
                        "prevent scheduling of one or more model instances, the minimum "
                        f"required count is {count}")
    every = [key for key, _ in needs] + [key for key, _ in others]
    global_names = {name for name, device in every if device == GLOBAL}
    for name, device in every:
        if device != GLOBAL and name in global_names:
            return (f'Resource "{name}" is present as both global and device-specific '
                    "resource in the model configuration.")
    return None


class RateLimiter:
    """Resource capacities and holdings across every model's instances."""

    def __init__(self, overrides: dict[tuple[str, int | None], int] | None = None) -> None:
        self.overrides = overrides or {}
        self.capacity: dict[tuple[str, int], int] = {}
        self.used: dict[tuple[str, int], int] = {}
        self.needs: dict[str, list[tuple[tuple[str, int], int]]] = {}   # address -> needs
        self.holding: set[str] = set()                                   # addresses
        self.priority: dict[str, int] = {}                               # address -> weight
        self.executions: dict[str, int] = {}                             # address -> count
        self._groups: dict[str, dict] = {}                               # config JSON -> groups

    # ------------------------------------------------------------ instances

    def register(self, inst) -> None:
        """Learn what ``inst`` (a router.Instance) needs, from its model's config."""
        config_json = inst.model.config_json
        groups = self._groups.get(config_json)
        if groups is None:
            groups = self._groups[config_json] = group_resources(config_json)
        spec = groups.get(inst.name.rsplit("_", 1)[0])
        if spec is None:
            return
        needs = []
        for name, count, is_global in spec[0]:
            key = (name, GLOBAL if is_global else inst.device_id)
            needs.append((key, count))
            self.capacity[key] = self._capacity(key, max(self.capacity.get(key, 0), count))
        self.needs[inst.address] = needs
        self.priority[inst.address] = max(spec[1], 1)
        self.executions.setdefault(inst.address, 0)

    def _capacity(self, key: tuple[str, int], asked: int) -> int:
        # with flags given, what they allow (a model needing more was refused at load)
        return explicit_count(key, self.overrides) if self.overrides else asked

    def forget(self, inst) -> None:
        self.release(inst)
        for table in (self.needs, self.priority, self.executions):
            table.pop(inst.address, None)

    def limited(self, inst) -> bool:
        return inst.address in self.needs

    # ------------------------------------------------------------ executions

    def ready(self, inst) -> bool:
        """Whether ``inst`` may start executing now (a resource bigger than its capacity
        is granted when nobody holds it, so that such an instance is never starved)."""
        for key, count in self.needs.get(inst.address, ()):
            used = self.used.get(key, 0)
            if used and used + count > self.capacity.get(key, 0):
                return False
        return True

    def first_ready(self, instances: Iterable):
        """The ready instance with the lowest scaled priority (the longest idle on ties)."""
        best, best_score = None, None
        for inst in instances:
            if self.ready(inst):
                score = self.executions.get(inst.address, 0) * self.priority.get(inst.address, 1)
                if best is None or score < best_score:
                    best, best_score = inst, score
        return best

    def acquire(self, inst) -> None:
        needs = self.needs.get(inst.address)
        if needs and inst.address not in self.holding:
            self.holding.add(inst.address)
            self.executions[inst.address] += 1
            for key, count in needs:
                self.used[key] = self.used.get(key, 0) + count

    def release(self, inst) -> None:
        if inst.address in self.holding:
            self.holding.discard(inst.address)
            for key, count in self.needs.get(inst.address, ()):
                self.used[key] -= count
