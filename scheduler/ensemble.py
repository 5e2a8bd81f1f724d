"""An ensemble's step graph and the state of one ensemble request (pure).

The graph is built once per config from ``ModelSpec.steps`` (already checked
at load: tritond/repository/ensemble_graph.py). A :class:`Run` tracks one
request: which ensemble tensors exist (as ``TensorRef`` s in shared memory,
with the worker owning each), how many inputs each step still waits for, how
many consumers each tensor still has, and the step requests in flight.
:class:`scheduler.ensembles.Ensembles` drives it.

Tensors are keyed by (name, iteration), as in Triton: the ensemble's inputs are
iteration 0, a step's outputs keep the iteration of its inputs, and each
response of a decoupled step starts a new iteration that drives the steps after
it on its own (the load check guarantees no step mixes iterations of two
decoupled steps). A non-decoupled ensemble only ever has iteration 0.
"""
from __future__ import annotations

from collections import deque
from typing import Optional

import msgspec

from tritond.errors import Code, TritonError
from tritond.messages import SERVER_SHM, OutputSpec
from tritond.spec import EnsembleStep

from .policy import Policy
from .router import Batch, InstanceRouter

_replace = msgspec.structs.replace


class Step:
    """One step: composing model, (model input, tensor) and (model output, tensor) pairs."""

    __slots__ = ("index", "model", "version", "inputs", "outputs", "tensors_in", "made", "specs")

    def __init__(self, index: int, spec: EnsembleStep) -> None:
        self.index = index
        self.model = spec.model_name
        self.version = spec.model_version
        self.inputs = sorted(spec.input_map.items())
        self.outputs = dict(sorted(spec.output_map.items()))   # model output -> tensor
        self.tensors_in = frozenset(spec.input_map.values())
        self.made = {t: o for o, t in self.outputs.items()}       # tensor -> model output
        # Its requested outputs when no ensemble output goes to client shared memory:
        # built once, shared by every step request (encoded, never changed).
        self.specs = [OutputSpec(o) for o in self.outputs]


class Graph:
    """Steps, and for each tensor the steps that read it."""

    __slots__ = ("steps", "consumers", "uses", "outputs", "inputs", "last", "answer")

    def __init__(self, spec) -> None:
        self.steps = [Step(i, s) for i, s in enumerate(spec.steps)]
        self.consumers: dict[str, list[Step]] = {}
        for step in self.steps:
            for tensor in step.tensors_in:
                self.consumers.setdefault(tensor, []).append(step)
        self.uses = {t: len(c) for t, c in self.consumers.items()}
        self.outputs = [o.name for o in spec.outputs]
        self.inputs = [i.name for i in spec.inputs]
        self.last = self._last()
        # The last step's requested outputs and renames when a request asks for every
        # ensemble output (the usual case: scheduler/direct.py builds them otherwise).
        self.answer = None if self.last is None else (
            [OutputSpec(self.last.made[t]) for t in self.outputs],
            {self.last.made[t]: t for t in self.outputs})

    def _last(self) -> Optional[Step]:
        """The step that makes every ensemble output and feeds no step, if there is one:
        its worker may answer the ensemble's caller directly (scheduler/direct.py)."""
        wanted = set(self.outputs)
        for step in self.steps:
            made = set(step.outputs.values())
            if wanted <= made and not any(t in self.consumers for t in made):
                return step
        return None


class StepLimiter:
    """``ensemble_scheduling.max_inflight_requests``: step requests in flight per step.

    Shared by every request of one ensemble version, as in Triton (one limiter per
    step). Where Triton blocks the thread that schedules a step, the pure core
    keeps the step in a FIFO ``backlog`` and submits it when a request of that step
    has its final response, so a slow step holds a bounded number of the faster
    steps' outputs. 0: no limit.
    """

    __slots__ = ("limit", "inflight", "backlog")

    def __init__(self, limit: int, steps: int) -> None:
        self.limit = limit
        self.inflight = [0] * steps
        self.backlog: list[deque] = [deque() for _ in range(steps)]

    def admit(self, index: int) -> bool:
        limit = self.limit
        if not limit:
            return True                 # no limit: nothing to count
        if self.inflight[index] >= limit:
            return False
        self.inflight[index] += 1
        return True

    def done(self, index: int) -> None:
        if self.inflight[index]:
            self.inflight[index] -= 1

    def purge(self, run) -> None:
        """Drop the backlogged steps of ``run`` (it failed or was cancelled)."""
        for i, queue in enumerate(self.backlog):
            if any(item[0] is run for item in queue):
                self.backlog[i] = deque(item for item in queue if item[0] is not run)
        run.waiting = 0


class EnsemblePolicy(Policy):
    """The policy of an ensemble: no queue and no instances of its own.

    ``SchedulerCore.add`` sees ``ensemble`` and hands the request to
    ``Ensembles.start``, which submits each step to the composing model's own
    policy (so composing models batch across ensemble requests).
    """

    __slots__ = ("graph", "limiter", "decoupled")
    ensemble = True

    def __init__(self, cfg) -> None:
        super().__init__(cfg, 0)
        self.graph = Graph(cfg.spec)
        self.limiter = StepLimiter(cfg.spec.max_inflight_requests, len(self.graph.steps))
        self.decoupled = cfg.spec.decoupled

    def add(self, req, now_ns: int):
        raise TritonError(Code.INTERNAL, "ensemble requests are started by the core")

    def next_batch(self, now_ns: int, router: InstanceRouter) -> Optional[Batch]:
        return None


class Run:
    """One ensemble request in flight."""

    __slots__ = ("model", "req", "graph", "tensors", "missing", "uses", "pending", "error",
                 "wanted", "dests", "limiter", "waiting", "fresh", "compute", "due",
                 "early", "done", "mapped", "shm", "direct", "submitted", "trace", "cancelled",
                 "absent", "seq", "stepseq")

    def __init__(self, model, req, graph: Graph, wanted: list[str], dests: dict) -> None:
        self.model = model                  # the ensemble's scheduler Model
        self.req = req                      # the ensemble request (wire.RequestView)
        self.graph = graph
        self.tensors: dict[tuple, tuple] = {}   # (tensor, it) -> (TensorRef, owner or "")
        self.missing: dict[tuple, int] = {}     # (step index, it) -> inputs still missing
        self.uses: dict[tuple, int] = {}        # (tensor, it) -> consumers still to finish
        self.pending: dict[int, tuple] = {}     # step request rid -> (Step, it, decoupled)
        self.error = None                   # the first ErrorInfo: the request fails
        self.wanted = wanted                # requested ensemble outputs
        self.dests = dests                  # ensemble output -> client shm OutputSpec.dest
        self.limiter: StepLimiter = model.policy.limiter
        self.waiting = 0                    # steps in the limiter's backlog
        self.fresh = 0                      # the last iteration number given out
        self.compute = [0, 0, 0]            # the steps' compute input/infer/output ns
        self.due: set[int] = set()          # answered steps whose Executed is still to come
        self.early: set[int] = set()        # steps whose Executed came before their final
        self.done = False                   # answered; stats wait for ``due``
        self.mapped: set[str] = set()       # workers that ran a step (kept if ``shm``: Forget)
        self.shm = False                    # it names client shared memory
        self.direct = 0                     # step rid whose worker answers the requester
        self.submitted = 0                  # step requests submitted
        self.trace = None                   # RunTrace (enstrace.py): set by Ensembles.start
        self.cancelled = False              # its requester cancelled it
        self.absent: set[tuple] = set()     # (tensor, it) a step's answer left out
        # Sequence parameters other than the request's (tritond/sequenceparams.py), kept
        # only once a step's response overrode them: (tensor, it) -> (correlation id,
        # flags), and step rid -> those its request was submitted with.
        self.seq: dict[tuple, tuple] | None = None
        self.stepseq: dict[int, tuple] | None = None

    def store(self, tensor: str, it: int, ref, owner: str) -> None:
        self.tensors[(tensor, it)] = (ref, owner)
        self.uses[(tensor, it)] = self.graph.uses.get(tensor, 0)

    def store_outputs(self, step: Step, it: int, resp, freed: list, seq=None) -> list[str]:
        """A step's Response at ``it``: keep the outputs someone reads (renamed to their
        tensors), put the rest in ``freed``; returns the tensors it made. A mapped output
        the answer left out is made absent, as Triton's placeholder: a step reading it runs
        without it (fine for an optional input, its input check fails otherwise) and the
        ensemble's answer omits it. ``seq``: the (correlation id, flags) the tensors carry
        when not the request's."""
        owners = resp.owners
        produced = []
        graph = self.graph
        for i, ref in enumerate(resp.outputs):
            owner = (owners[i] if owners else resp.instance) if ref.kind == SERVER_SHM else ""
            tensor = step.outputs.get(ref.name)
            if tensor is None or (tensor not in graph.consumers and tensor not in self.wanted):
                freed.append((ref, owner))     # not needed by anyone
                continue
            produced.append(tensor)
            self.store(tensor, it, _replace(ref, name=tensor), owner)
        if len(produced) < len(step.outputs):
            for tensor in step.outputs.values():
                if tensor not in produced and (tensor in graph.consumers or tensor in self.wanted):
                    self.absent.add((tensor, it))
                    produced.append(tensor)
        if seq is not None:
            if self.seq is None:
                self.seq = {}
            for tensor in produced:
                self.seq[(tensor, it)] = seq
        return produced

    def sequence(self, names, it: int) -> tuple:
        """The (correlation id, flags) tensors ``names`` at ``it`` carry: the request's,
        unless a step's response overrode them (the last name's override wins)."""
        req = self.req
        found = (req.correlation_id, req.flags)
        if self.seq:
            for name in names:
                found = self.seq.get((name, it), found)
        return found

    def provide(self, tensor: str, it: int) -> list[Step]:
        """``tensor`` exists now at ``it`` (or is known absent): the steps that became ready."""
        ready = []
        missing = self.missing
        for step in self.graph.consumers.get(tensor, ()):
            key = (step.index, it)
            left = missing.get(key, len(step.tensors_in)) - 1
            if left == 0:
                missing.pop(key, None)
                ready.append(step)
            else:
                missing[key] = left
        return ready

    def consumed(self, step: Step, it: int) -> list[tuple]:
        """``step`` finished at ``it``: (ref, owner) of the tensors nobody needs any more."""
        done = []
        for tensor in step.tensors_in:
            key = (tensor, it)
            left = self.uses.get(key)
            if left is None:
                continue                    # an absent optional input
            self.uses[key] = left = left - 1
            if left <= 0 and tensor not in self.wanted:
                del self.uses[key]
                item = self.tensors.pop(key, None)
                if item is not None and item[1]:
                    done.append(item)
        return done

    def outputs_ready(self, it: int) -> bool:
        """Every requested output exists at ``it`` and no step still reads it."""
        return all(((name, it) in self.tensors or (name, it) in self.absent)
                   and not self.uses.get((name, it)) for name in self.wanted)

    def take_outputs(self, it: int) -> tuple[list, list]:
        refs, owners = [], []
        for name in self.wanted:
            item = self.tensors.pop((name, it), None)
            if item is None:                # left out by its step: the answer omits it
                self.absent.discard((name, it))
                continue
            ref, owner = item
            self.uses.pop((name, it), None)
            refs.append(ref)
            owners.append(owner)
        return refs, owners
