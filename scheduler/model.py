"""Runtime state of one model version and its instances.

An instance executes one batch at a time (as in Triton), but may hold one more
ready batches in its socket (``ahead``): the worker then starts one the moment the
first one ends instead of idling for the Executed -> Execute round trip
through the scheduler, and both batches' answers leave in one frame. Only a
*full* batch (or any request of a model that does not batch) is pipelined, so
dynamic batching still forms batches as large as Triton's. Idle instances wait
in a FIFO so the one idle longest is used next (round-robin over instances).
"""
from __future__ import annotations

from collections import deque

from .config import SchedConfig

# A batching model queues one full batch ahead (batches must still grow); a model
# that runs one request per execution queues more, so a worker drains several
# Executes per wake-up and answers them in one frame per peer.
PIPELINE_AHEAD_BATCHING = 1
PIPELINE_AHEAD_SINGLE = 3
from .queue import Entry, PolicyQueue
from .stats import ModelStats


class Batch:
    """A dispatched batch: what to account for when its Executed arrives."""

    __slots__ = ("batch_id", "entries", "size", "dispatch_ns")

    def __init__(self, batch_id: int, entries: list[Entry], size: int, dispatch_ns: int) -> None:
        self.batch_id = batch_id
        self.entries = entries
        self.size = size
        self.dispatch_ns = dispatch_ns


class Instance:
    """One worker instance (its address) of a model version."""

    __slots__ = ("address", "model", "busy", "ahead", "releases", "gone")

    def __init__(self, address: str, model: "Model") -> None:
        self.address = address
        self.model = model
        self.busy: Batch | None = None      # executing
        self.ahead: deque[Batch] = deque()  # dispatched behind it (pipelined), in order
        self.releases: list[tuple[str, int]] = []   # piggybacked on the next Execute
        self.gone = False


class Model:
    """One model version: config, queue, instances, statistics."""

    __slots__ = ("name", "version", "config_json", "cfg", "queue", "instances", "free",
                 "second", "room", "stats", "ready", "wait_until", "pending")

    def __init__(self, name: str, version: int, config_json: str, cfg: SchedConfig) -> None:
        self.name = name
        self.version = version
        self.config_json = config_json
        self.cfg = cfg
        self.queue = PolicyQueue(cfg)
        self.instances: dict[str, Instance] = {}
        self.free: deque[Instance] = deque()      # nothing in flight
        self.second: deque[Instance] = deque()    # busy, with room for a pipelined batch
        # Batches an instance may hold beyond the one executing (see core.PIPELINE_*).
        self.room = PIPELINE_AHEAD_BATCHING if cfg.batching else PIPELINE_AHEAD_SINGLE
        self.stats = ModelStats(name, version)
        self.ready = True            # accepts new requests (False while UNLOADING)
        self.wait_until = 0          # delay window end when the batcher chose to wait
        self.pending = None          # the batcher's resumable walk (batcher.Pending)

    def label(self) -> str:
        return f"'{self.name}' version {self.version}"

    def set_instances(self, addresses: list[str]) -> list[Instance]:
        """Adopt the live instance set; return the removed instances."""
        wanted = dict.fromkeys(addresses)
        removed = [inst for addr, inst in self.instances.items() if addr not in wanted]
        for inst in removed:
            inst.gone = True
            del self.instances[inst.address]
        if removed:
            self.free = deque(i for i in self.free if not i.gone)
            self.second = deque(i for i in self.second if not i.gone)
        for addr in wanted:
            if addr not in self.instances:
                inst = self.instances[addr] = Instance(addr, self)
                self.free.append(inst)
        return removed

    def next_deadline(self) -> int | None:
        """When step() must look at this model again, if nothing else happens."""
        timeout = self.queue.next_timeout()
        wait = self.wait_until if self.free or self.second else 0
        if wait and (timeout is None or wait < timeout):
            return wait
        return timeout

