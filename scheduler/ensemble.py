"""An ensemble's step graph and the state of one ensemble request (pure).

The graph is built once per config from ``ModelSpec.steps`` (already checked
at load: tritond/repository/ensemble_graph.py). A :class:`Run` tracks one
request: which ensemble tensors exist (as ``TensorRef`` s in shared memory,
with the worker owning each), how many inputs each step still waits for, how
many consumers each tensor still has, and the step requests in flight.
:class:`scheduler.ensembles.Ensembles` drives it.
"""
from __future__ import annotations

from typing import Optional

from tritond.errors import Code, TritonError
from tritond.spec import EnsembleStep

from .policy import Policy
from .router import Batch, InstanceRouter


class Step:
    """One step: composing model, (model input, tensor) and (model output, tensor) pairs."""

    __slots__ = ("index", "model", "version", "inputs", "outputs", "tensors_in")

    def __init__(self, index: int, spec: EnsembleStep) -> None:
        self.index = index
        self.model = spec.model_name
        self.version = spec.model_version
        self.inputs = sorted(spec.input_map.items())
        self.outputs = dict(sorted(spec.output_map.items()))   # model output -> tensor
        self.tensors_in = frozenset(spec.input_map.values())


class Graph:
    """Steps, and for each tensor the steps that read it."""

    __slots__ = ("steps", "consumers", "uses", "outputs", "inputs")

    def __init__(self, spec) -> None:
        self.steps = [Step(i, s) for i, s in enumerate(spec.steps)]
        self.consumers: dict[str, list[Step]] = {}
        for step in self.steps:
            for tensor in step.tensors_in:
                self.consumers.setdefault(tensor, []).append(step)
        self.uses = {t: len(c) for t, c in self.consumers.items()}
        self.outputs = [o.name for o in spec.outputs]
        self.inputs = [i.name for i in spec.inputs]


class EnsemblePolicy(Policy):
    """The policy of an ensemble: no queue and no instances of its own.

    ``SchedulerCore.add`` sees ``ensemble`` and hands the request to
    ``Ensembles.start``, which submits each step to the composing model's own
    policy (so composing models batch across ensemble requests).
    """

    __slots__ = ("graph",)
    ensemble = True

    def __init__(self, cfg) -> None:
        super().__init__(cfg, 0)
        self.graph = Graph(cfg.spec)

    def add(self, req, now_ns: int):
        raise TritonError(Code.INTERNAL, "ensemble requests are started by the core")

    def next_batch(self, now_ns: int, router: InstanceRouter) -> Optional[Batch]:
        return None


class Run:
    """One ensemble request in flight."""

    __slots__ = ("model", "req", "graph", "tensors", "missing", "uses", "pending", "error",
                 "wanted", "dests", "cancelled")

    def __init__(self, model, req, graph: Graph, wanted: list[str], dests: dict) -> None:
        self.model = model                  # the ensemble's scheduler Model
        self.req = req                      # the ensemble request (wire.RequestView)
        self.graph = graph
        self.tensors: dict[str, tuple] = {}  # tensor -> (TensorRef, owner address or "")
        self.missing = [len(s.tensors_in) for s in graph.steps]
        self.uses = dict(graph.uses)        # tensor -> consumers still to finish
        self.pending: dict[int, Step] = {}  # step request rid -> step
        self.error = None                   # the first ErrorInfo: the request fails
        self.wanted = wanted                # requested ensemble outputs
        self.dests = dests                  # ensemble output -> client shm OutputSpec.dest
        self.cancelled = False

    def provide(self, tensor: str) -> list[Step]:
        """``tensor`` exists now (or is known absent): the steps that became ready."""
        ready = []
        for step in self.graph.consumers.get(tensor, ()):
            self.missing[step.index] -= 1
            if self.missing[step.index] == 0:
                ready.append(step)
        return ready

    def consumed(self, step: Step) -> list[tuple]:
        """``step`` finished: (ref, owner) of the tensors nobody needs any more."""
        done = []
        for tensor in step.tensors_in:
            left = self.uses[tensor] = self.uses[tensor] - 1
            if left == 0 and tensor not in self.wanted:
                item = self.tensors.pop(tensor, None)
                if item is not None and item[1]:
                    done.append(item)
        return done
