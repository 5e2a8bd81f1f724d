"""Ensemble step graph checks: every tensor connected, no cycles."""
from __future__ import annotations

from collections import defaultdict

from tritond.errors import invalid_arg
from tritond.protos.model_config_pb2 import ModelConfig


def check_graph(cfg: ModelConfig) -> None:
    """Raise INVALID_ARG unless the ensemble's steps form a connected DAG."""
    producers = _producers(cfg)
    available = {i.name for i in cfg.input} | set(producers)
    for index, step in enumerate(cfg.ensemble_scheduling.step):
        if not step.model_name:
            raise invalid_arg(f"step {index} of ensemble '{cfg.name}' must specify "
                              f"'model_name'")
        for tensor in step.input_map.values():
            if tensor not in available:
                raise invalid_arg(
                    f"in ensemble '{cfg.name}', step {index} ('{step.model_name}') "
                    f"reads tensor '{tensor}', which is neither an ensemble input nor "
                    f"the output of any step")
    for output in cfg.output:
        if output.name not in producers:
            raise invalid_arg(f"in ensemble '{cfg.name}', ensemble output "
                              f"'{output.name}' is not produced by any step")
    _check_acyclic(cfg, producers)


def _producers(cfg: ModelConfig) -> dict[str, int]:
    """Ensemble tensor name -> index of the step that writes it."""
    producers: dict[str, int] = {}
    inputs = {i.name for i in cfg.input}
    for index, step in enumerate(cfg.ensemble_scheduling.step):
        for tensor in step.output_map.values():
            if tensor in producers or tensor in inputs:
                raise invalid_arg(
                    f"in ensemble '{cfg.name}', tensor '{tensor}' is written by more "
                    f"than one step or is also an ensemble input")
            producers[tensor] = index
    return producers


def _check_acyclic(cfg: ModelConfig, producers: dict[str, int]) -> None:
    """Kahn's algorithm over step -> step edges."""
    steps = cfg.ensemble_scheduling.step
    successors: dict[int, set[int]] = defaultdict(set)
    indegree = [0] * len(steps)
    for index, step in enumerate(steps):
        for tensor in set(step.input_map.values()):
            source = producers.get(tensor)
            if source is not None and index not in successors[source]:
                successors[source].add(index)
                indegree[index] += 1
    ready = [i for i, degree in enumerate(indegree) if degree == 0]
    visited = 0
    while ready:
        node = ready.pop()
        visited += 1
        for nxt in successors[node]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    if visited != len(steps):
        cyclic = [steps[i].model_name for i, d in enumerate(indegree) if d > 0]
        raise invalid_arg(f"ensemble '{cfg.name}' contains a cycle among the steps "
                          f"for models {', '.join(cyclic)}")


def check_steps(cfg: ModelConfig, specs: dict) -> bool:
    """Raise INVALID_ARG unless every step agrees with its composing model's final config;
    returns whether the ensemble is decoupled (a decoupled model among its steps).

    ``specs`` maps each step's model name to that model's ``ModelSpec`` (the
    version the step runs). Checks names, datatypes and shapes of every tensor
    between steps (-1 matches any size), naming the step, and, as Triton does, that
    no step mixes tensors that come from different decoupled steps (each response
    of a decoupled step drives the steps after it on its own: scheduler/ensembles.py).
    """
    from tritond.repository.spec import datatype

    # ensemble tensor -> (datatype, full shape, who defined it)
    known: dict[str, tuple] = {}
    origin: dict[str, int] = {}     # tensor -> 0 (ensemble inputs) or 1 + decoupled step
    ens_batch = cfg.max_batch_size > 0
    for i in cfg.input:
        known[i.name] = (datatype(i.data_type), _full(list(i.dims), ens_batch),
                         f"ensemble input '{i.name}'")
    steps = cfg.ensemble_scheduling.step
    for index in _order(cfg):
        step = steps[index]
        spec = specs[step.model_name]
        where = f"in ensemble '{cfg.name}', step {index} ('{step.model_name}')"
        label = _origin(origin, step.input_map.values(), f"{where} receives inputs "
                        f"originated from different decoupled models")
        if spec.decoupled:
            label = 1 + index
        if spec.max_batch_size and ens_batch and cfg.max_batch_size > spec.max_batch_size:
            raise invalid_arg(f"{where}: the ensemble's max_batch_size {cfg.max_batch_size} "
                              f"exceeds the model's {spec.max_batch_size}")
        model_in = {t.name: t for t in spec.inputs}
        model_out = {t.name: t for t in spec.outputs}
        for name, tensor in step.input_map.items():
            t = model_in.get(name)
            if t is None:
                raise invalid_arg(f"{where}: the model has no input '{name}' (input_map)")
            _agree(where, tensor, known.get(tensor), t, spec.max_batch_size > 0, "input")
        for name, tensor in step.output_map.items():
            t = model_out.get(name)
            if t is None:
                raise invalid_arg(f"{where}: the model has no output '{name}' (output_map)")
            # Steps exchange tensors in config dims: a reshape is the model's own business.
            known[tensor] = (t.datatype, _full(list(t.dims), spec.max_batch_size > 0),
                             f"output '{name}' of step {index} ('{step.model_name}')")
            origin[tensor] = label
        missing = [t.name for t in spec.inputs if not t.optional and t.name not in step.input_map]
        if missing:
            raise invalid_arg(f"{where}: model input '{missing[0]}' is not mapped (input_map)")
    for o in cfg.output:
        _agree(f"in ensemble '{cfg.name}'", o.name, known.get(o.name),
               _Out(datatype(o.data_type), tuple(o.dims)), ens_batch, "ensemble output")
    # tritond's own rule (Triton loads such an ensemble and then pairs the outputs' first
    # responses only): outputs of one response must come from the same decoupled step.
    _origin(origin, [o.name for o in cfg.output], f"in ensemble '{cfg.name}', the ensemble "
            f"outputs come from different decoupled models")
    return any(origin.values())


def _origin(origin: dict, tensors, error: str) -> int:
    """The decoupled step the ``tensors`` come from (0: none): one, or INVALID_ARG."""
    labels = {origin.get(t, 0) for t in tensors}
    if len(labels) > 1:
        raise invalid_arg(error)
    return labels.pop() if labels else 0


class _Out:
    def __init__(self, dtype: str, dims: tuple) -> None:
        self.name, self.datatype, self.dims = "", dtype, dims


def _full(dims: list, batching: bool) -> list:
    return [-1] + dims if batching else dims


def _agree(where: str, tensor: str, source, t, batching: bool, role: str) -> None:
    if source is None:
        return
    dtype, shape, origin = source
    if t.datatype != dtype:
        raise invalid_arg(f"{where}: tensor '{tensor}' is {dtype} ({origin}) but {role} "
                          f"'{t.name or tensor}' expects {t.datatype}")
    want = _full(list(t.dims), batching)
    if len(want) != len(shape) or any(a != b and -1 not in (a, b) for a, b in zip(want, shape)):
        raise invalid_arg(f"{where}: tensor '{tensor}' has shape {shape} ({origin}) but "
                          f"{role} '{t.name or tensor}' expects {want}")


def _order(cfg: ModelConfig) -> list[int]:
    """Step indices in an order where producers come before consumers (acyclic)."""
    producers = _producers(cfg)
    steps = cfg.ensemble_scheduling.step
    done: list[int] = []
    seen: set[int] = set()

    def visit(index: int) -> None:
        if index in seen:
            return
        seen.add(index)
        for tensor in steps[index].input_map.values():
            if tensor in producers:
                visit(producers[tensor])
        done.append(index)
    for index in range(len(steps)):
        visit(index)
    return done
