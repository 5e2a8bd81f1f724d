"""The parent's model table: versions, their instances, states and restart policy."""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import time
from typing import Optional

from tritond import messages, namespaces
from tritond.spec import InstanceGroup, ModelSpec
from .children import Child

READY, LOADING, UNAVAILABLE, UNLOADING = "READY", "LOADING", "UNAVAILABLE", "UNLOADING"
UNLOADED = "unloaded"      # the reason of a version unloaded on purpose
# Internal only, shown as LOADING: the version's own load ended well, but other versions of
# the same load are still loading. Triton keeps such a version LOADING (not servable) until
# its load's OnLoadFinal makes them all READY at once, or releases them (loadsets.py).
LOADED = "LOADED"

RESTART_LIMIT = 5          # crashes of one model version's instances ...
RESTART_WINDOW_S = 60.0    # ... within this window make the version UNAVAILABLE for a while
BACKOFF_FIRST_S = 0.1      # delay before the first restart, doubled per recent crash
BACKOFF_MAX_S = 5.0


@dataclasses.dataclass
class Instance:
    """One model instance = one worker process (restarted in place when it dies)."""

    name: str                  # Triton's instance name, e.g. "simple_0_1"
    kind: str                  # CPU | GPU | MODEL
    device_id: int
    child: Child | None = None
    loaded: bool = False
    exit: str = ""             # how the last worker ended, until a new one is loaded
    exit_address: str = ""     # that worker's address
    user_ready: bool = False   # its model defines is_ready() (Loaded.user_ready)
    # instance_group passive: loaded and kept alive, never in the scheduler's table
    # (Triton starts no backend thread for it; rate_limiter.cc never sees it)
    passive: bool = False

    @property
    def address(self) -> str:
        return self.child.boot.address if self.child else ""

    @property
    def live(self) -> bool:
        return self.loaded and self.child is not None and self.child.process.exitcode is None

    def died(self, child: Child) -> str:
        """Record the death of ``child`` (this instance's worker); returns the description."""
        self.loaded = False
        self.exit = f"instance '{self.name}' (pid {child.pid}) {child.exit_description()}"
        self.exit_address = child.boot.address
        return self.exit


_GENERATIONS = itertools.count(1)
_FAILURES = itertools.count(1)


@dataclasses.dataclass
class ModelVersion:
    name: str
    version: int
    model_dir: str
    repository: str
    state: str = LOADING
    reason: str = ""
    spec: Optional[ModelSpec] = None    # of the final config, once loaded
    instances: list[Instance] = dataclasses.field(default_factory=list)
    load_started: float = dataclasses.field(default_factory=time.monotonic)
    load_seconds: float = 0.0
    crashes: collections.deque = dataclasses.field(default_factory=collections.deque)
    # What a reload compares (reloads.py): the normalized config less instance_group and
    # version_policy, and the model directory's timestamps, both as of the last load.
    basis: bytes = b""
    stamps: dict = dataclasses.field(default_factory=dict)
    python_env: str = ""      # its workers' execution environment (pythonenv.py), if any
    # One number per load of a version (a version kept by a reload keeps its own): the
    # scheduler starts a re-created version's statistics anew, as Triton's new Model.
    generation: int = dataclasses.field(default_factory=lambda: next(_GENERATIONS))
    # Its instances' warmup runs (Loaded.warmup), until the publisher hands them to the
    # scheduler's statistics once the version serves (publisher.py).
    warmup: list = dataclasses.field(default_factory=list)
    # An ensemble Triton's dependency graph refuses (ensembles.refuse): its model
    # lifecycle never sees it, so the version leaves the registry once its load ends.
    refused: bool = False
    # When its load failed, among all failures (failed()): Triton's load status lists the
    # failed versions in the order their loads ended.
    failed_order: int = 0

    @property
    def identifier(self) -> str:
        """How logs name this model (``name`` is the key): namespaces.identifier."""
        return namespaces.identifier(self.name)

    def live_entries(self) -> list[messages.InstanceEntry]:
        return [messages.InstanceEntry(i.address, i.name, i.kind, i.device_id, i.user_ready)
                for i in self.instances if i.live and not i.passive]

    @property
    def ready(self) -> bool:
        """Model readiness: READY with at least one live instance (an ensemble has none)."""
        return self.state == READY and (self.ensemble or any(i.live for i in self.instances))

    @property
    def ensemble(self) -> bool:
        return self.spec is not None and bool(self.spec.steps)

    def record_crash(self, now: float, counted: bool = True) -> float | None:
        """Remember a crash; the delay before restarting, or None once over the limit.

        ``counted=False``: a death a client can cause (SIGBUS: its region shrank
        under the worker) restarts the instance without counting.
        """
        if counted:
            self.crashes.append(now)
        while self.crashes and now - self.crashes[0] > RESTART_WINDOW_S:
            self.crashes.popleft()
        if len(self.crashes) >= RESTART_LIMIT:
            return None
        return min(BACKOFF_FIRST_S * 2 ** max(len(self.crashes) - 1, 0), BACKOFF_MAX_S)

    def crash_reason(self, last: str, retry_s: float) -> str:
        return (f"{len(self.crashes)} instance crashes in {RESTART_WINDOW_S:.0f}s "
                f"(last: {last}); reloading every {retry_s:g}s")

    def entry(self) -> messages.ModelEntry:
        live = self.live_entries()
        reason = self.reason
        restarting = self.state == READY and not self.ensemble and \
            not any(i.live for i in self.instances)     # passive ones count: not in ``live``
        if restarting:
            # Not ready, yet still served: requests queue until an instance is back.
            last = next((i.exit for i in self.instances if i.exit), "")
            reason = f"no live instance ({last}); restarting" if last else "no live instance"
        exited = {i.exit_address: i.exit for i in self.instances if i.exit and not i.live}
        state = LOADING if self.state == LOADED else self.state
        return messages.ModelEntry(self.name, self.version, state, reason, self.spec,
                                   live, self.model_dir, not restarting, exited,
                                   round(self.load_seconds, 6), self.generation)


@dataclasses.dataclass
class Phase:
    """Where the server is in its life (shared by the supervisor and its parts)."""

    started: bool = False      # the first load is over
    stopping: bool = False


@dataclasses.dataclass
class Registry:
    """What the parent knows of the models: the source of every published table."""

    versions: dict[tuple[str, int], ModelVersion] = dataclasses.field(default_factory=dict)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)   # failed before any version
    known: set[str] = dataclasses.field(default_factory=set)   # every model in the repository
    # Models whose config could not be read or checked at start-up, Triton's poll failures:
    # name-only index rows, no readiness cost; --exit-on-error still stops the start.
    unpolled: set[str] = dataclasses.field(default_factory=set)
    # Ensembles the dependency graph refused (a composing model missing, a map its
    # composing model cannot meet, ...) -> (reason, the model names their steps use):
    # name-only index rows as in Triton; loading one of those models tries them again.
    refused: dict[str, tuple[str, frozenset]] = dataclasses.field(default_factory=dict)
    # Versions the load API is loading beside ``versions`` (they join it at the
    # switch): shown LOADING where no READY version of the same number serves.
    loading: dict[tuple[str, int], ModelVersion] = dataclasses.field(default_factory=dict)
    # Addresses of workers being replaced or unloaded that may still hold requests
    # (ModelTable.retiring; parent/drain.py).
    retiring: set[str] = dataclasses.field(default_factory=set)

    @contextlib.contextmanager
    def loading_now(self, versions: list[ModelVersion], publish):
        """While the block loads ``versions``: list them (and publish the table)."""
        for mv in versions:
            self.loading[(mv.name, mv.version)] = mv
        publish()
        try:
            yield
        finally:
            for mv in versions:
                if self.loading.get((mv.name, mv.version)) is mv:
                    del self.loading[(mv.name, mv.version)]

    def versions_of(self, name: str) -> list[ModelVersion]:
        """The versions of ``name`` that are not unloaded."""
        return [mv for (n, _), mv in self.versions.items()
                if n == name and mv.reason != UNLOADED]


def planned_instances(spec: ModelSpec) -> list[Instance]:
    """An Instance (not started) for every instance the config asks for, in plan order."""
    groups = spec.instance_groups
    return [Instance(name, kind, dev, passive=bool(groups) and groups[index].passive)
            for name, kind, dev, index in group_plan(spec)]


def instance_plan(spec: ModelSpec) -> list[tuple[str, str, int]]:
    """(instance name, kind, device) for every instance the config asks for."""
    return [(name, kind, dev) for name, kind, dev, _ in group_plan(spec)]


def group_plan(spec: ModelSpec) -> list[tuple[str, str, int, int]]:
    """instance_plan with the index of each instance's group in ``instance_group``."""
    plan = []
    groups = spec.instance_groups or (InstanceGroup(f"{spec.name}_0"),)
    for index, group in enumerate(groups):
        devices = (group.gpus or (0,)) if group.kind == "GPU" else (0,)
        for dev in devices:
            for i in range(group.count):
                name = f"{group.name}_{len(plan)}" if len(devices) > 1 else f"{group.name}_{i}"
                plan.append((name, group.kind, int(dev), index))
    return plan


def format_table(models: list[ModelVersion], failed: dict[str, str]) -> str:
    """Triton's start-up model table (Model | Version | Status)."""
    rows = [(m.identifier, str(m.version), m.state + (f": {m.reason}" if m.reason else ""))
            for m in sorted(models, key=lambda m: (m.name, m.version))]
    rows += [(namespaces.identifier(n), "-", f"UNAVAILABLE: {r}")
             for n, r in sorted(failed.items())]
    if not rows:
        return ""
    heads = ("Model", "Version", "Status")
    w = [max(len(h), *(len(part) for r in rows for part in _lines(r[i])))
         for i, h in enumerate(heads)]
    line = "+" + "+".join("-" * (x + 2) for x in w) + "+"
    out = [line, "| " + " | ".join(h.ljust(x) for h, x in zip(heads, w)) + " |", line]
    for row in rows:
        out += ["| " + " | ".join(c.ljust(x) for c, x in zip(cells, w)) + " |"
                for cells in _physical_rows(row)]
    out.append(line)
    return "\n".join(out)


def _physical_rows(row: tuple[str, ...]) -> list[tuple[str, ...]]:
    """A cell's lines go one under the other, as Triton's table printer writes them:
    the table is logged unescaped, and a line of it must still start with ``|``."""
    cells = [_lines(c) for c in row]
    height = max(len(c) for c in cells)
    return [tuple(c[i] if i < len(c) else "" for c in cells) for i in range(height)]


def _lines(cell: str) -> list[str]:
    """A cell's lines as std::getline reads them (a last newline ends a line, no more)."""
    parts = cell.split("\n")
    return parts[:-1] if len(parts) > 1 and not parts[-1] else parts


def failed(mv: ModelVersion) -> None:
    """Note that ``mv``'s load just failed (load_status orders by it)."""
    mv.failed_order = next(_FAILURES)


def load_status(versions: list[ModelVersion]) -> str:
    """Triton's status of a load whose ``versions`` failed (core's
    ModelLifeCycle::OnLoadComplete): "version <v> is at UNAVAILABLE state: <reason>;"
    for each, joined as they failed, with nothing between them."""
    return "".join(f"version {mv.version} is at UNAVAILABLE state: {mv.reason};"
                   for mv in sorted(versions, key=lambda mv: (mv.failed_order, mv.version)))
