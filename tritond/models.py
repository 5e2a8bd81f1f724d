"""The parent's model table: versions, their instances and states."""
from __future__ import annotations

import collections
import dataclasses
import json
import time

from . import messages
from .children import Child

READY, LOADING, UNAVAILABLE, UNLOADING = "READY", "LOADING", "UNAVAILABLE", "UNLOADING"

RESTART_LIMIT = 5          # crashes ...
RESTART_WINDOW_S = 60.0    # ... within this window make the model UNAVAILABLE


@dataclasses.dataclass
class Instance:
    """One model instance = one worker process (restarted in place when it dies)."""

    name: str                  # Triton's instance name, e.g. "simple_0_1"
    kind: str                  # CPU | GPU | MODEL
    device_id: int
    child: Child | None = None
    loaded: bool = False
    crashes: collections.deque = dataclasses.field(default_factory=collections.deque)

    @property
    def address(self) -> str:
        return self.child.boot.address if self.child else ""

    def record_crash(self, now: float) -> bool:
        """Remember a crash; True while restarts are still allowed."""
        self.crashes.append(now)
        while self.crashes and now - self.crashes[0] > RESTART_WINDOW_S:
            self.crashes.popleft()
        return len(self.crashes) < RESTART_LIMIT


@dataclasses.dataclass
class ModelVersion:
    name: str
    version: int
    model_dir: str
    repository: str
    state: str = LOADING
    reason: str = ""
    config: str = ""            # final ModelConfig JSON once loaded
    instances: list[Instance] = dataclasses.field(default_factory=list)
    load_started: float = dataclasses.field(default_factory=time.monotonic)
    load_seconds: float = 0.0

    def live_addresses(self) -> list[str]:
        return [i.address for i in self.instances if i.loaded and i.child and i.child.process.exitcode is None]

    def entry(self) -> messages.ModelEntry:
        state = self.state
        reason = self.reason
        if state == READY and not self.live_addresses():
            # Readiness follows instance health: no live instance, not ready.
            state, reason = UNAVAILABLE, reason or "no live instance (restarting)"
        return messages.ModelEntry(self.name, self.version, state, reason, self.config,
                                   self.live_addresses(), self.model_dir)


def instance_plan(name: str, config_json: str) -> list[tuple[str, str, int]]:
    """(instance name, kind, device) for every instance the final config asks for."""
    cfg = json.loads(config_json)
    plan = []
    for g, group in enumerate(cfg.get("instance_group") or [{}]):
        gname = group.get("name") or f"{name}_{g}"
        kind = str(group.get("kind", "KIND_CPU")).replace("KIND_", "")
        if kind == "AUTO":
            kind = "CPU"
        count = int(group.get("count", 1) or 1)
        gpus = group.get("gpus") or [0]
        devices = gpus if kind == "GPU" else [0]
        for dev in devices:
            for i in range(count):
                plan.append((f"{gname}_{len(plan)}" if len(devices) > 1 else f"{gname}_{i}", kind, int(dev)))
    return plan
