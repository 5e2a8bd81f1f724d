"""Ensemble step graph checks: every tensor connected, no cycles (protocol.md 3.13)."""
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
