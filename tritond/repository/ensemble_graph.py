"""Ensemble checks, with Triton's texts: the step graph of the ensemble's own config
(``check_graph``, Triton's ValidateEnsembleSchedulingConfig: run when the config is read)
and its steps against their composing models' final configs (``check_steps``, Triton's
ValidateEnsembleConfig: run once they are loaded)."""
from __future__ import annotations

from tritond.errors import dims_str, invalid_arg
from tritond.protos.model_config_pb2 import ModelConfig


class _Node:
    """An ensemble tensor in the step graph: the tensors its step reads (``prev``) and the
    tensors of the steps that read it (``next``)."""

    def __init__(self, written: bool) -> None:
        self.written = written
        self.ready = False
        self.prev: list[str] = []
        self.next: list[str] = []


def check_graph(cfg: ModelConfig) -> None:
    """Raise INVALID_ARG unless every ensemble input is read, every output is written from
    the inputs, and every tensor a step writes is read by another step or is an output."""
    tensors = _graph(cfg)
    ready = []
    for i in cfg.input:
        if i.name not in tensors:
            raise invalid_arg(f"ensemble input '{i.name}' for ensemble {cfg.name}' is not used")
        tensors[i.name].ready = True
        ready.append(i.name)
    while ready:
        for name in tensors[ready.pop(0)].next:
            node = tensors[name]
            if not node.ready and all(tensors[p].ready for p in node.prev):
                node.ready = True
                ready.append(name)
    outputs = set()
    for o in cfg.output:
        if o.name not in tensors:
            raise invalid_arg(f"ensemble output '{o.name}' for ensemble {cfg.name}' is not used")
        if not tensors[o.name].ready:
            raise invalid_arg(_not_written(cfg.name, o.name, tensors))
        outputs.add(o.name)
    for name, node in tensors.items():
        if name not in outputs and (not node.ready or not node.next):
            raise invalid_arg(f"ensemble tensor '{name}' is unused in ensemble '{cfg.name}'")
    written_inputs = [i.name for i in cfg.input if tensors[i.name].written]
    if written_inputs:       # tritond's own: Triton would let the step's value be ignored
        raise invalid_arg(f"in ensemble '{cfg.name}', tensor '{written_inputs[0]}' is an "
                          f"ensemble input and also written by a step")


def _graph(cfg: ModelConfig) -> dict[str, _Node]:
    """Triton's BuildEnsembleGraph: tensor name -> node, with its messages."""
    tensors: dict[str, _Node] = {}
    for index, step in enumerate(cfg.ensemble_scheduling.step):
        where = f"in step {index} of ensemble '{cfg.name}'"
        for field, present in (("model_name", step.model_name), ("input_map", step.input_map),
                               ("output_map", step.output_map)):
            if not present:
                raise invalid_arg(f"must specify '{field}' {where}")
        written = []
        for tensor in step.output_map.values():
            node = tensors.setdefault(tensor, _Node(False))
            if node.written:
                raise invalid_arg(f"ensemble tensor '{tensor}' can appear in an output map "
                                  f"only once for ensemble '{cfg.name}' step {index}")
            node.written = True
            written.append(tensor)
        for tensor in step.input_map.values():
            node = tensors.setdefault(tensor, _Node(False))
            for out in written:
                tensors[out].prev.append(tensor)
                node.next.append(out)
    return tensors


def _not_written(ensemble: str, output: str, tensors: dict[str, _Node]) -> str:
    """Triton's text, naming the furthest unconnected tensor up the output's chain."""
    text = f"output '{output}' for ensemble '{ensemble}' is not written"
    last, prev, seen = output, tensors[output].prev, set()
    while prev:
        nxt = next((p for p in prev if not tensors[p].ready and p not in seen), None)
        if nxt is None:
            break
        seen.add(nxt)
        last, prev = nxt, tensors[nxt].prev
    if last != output:
        text += f": at least one of its depending tensors, '{last}', is not connected"
    return text


def check_steps(cfg: ModelConfig, specs: dict) -> bool:
    """Raise INVALID_ARG unless every step agrees with its composing model's final config;
    returns whether the ensemble is decoupled (a decoupled model among its steps).

    ``specs`` maps each step's model name to that model's ``ModelSpec`` (the version the
    step runs). As Triton, steps are checked in config order: the batch size, the names
    of the input and output maps, every model input mapped, and each ensemble tensor's
    datatype and shape against where it was first seen (-1 matches any size). Then, as
    Triton does, no step (and not the ensemble's outputs) may mix tensors that come from
    different decoupled steps (each response of a decoupled step drives the steps after
    it on its own: scheduler/ensembles.py).
    """
    from tritond.repository.spec import datatype

    ens_batch = cfg.max_batch_size > 0
    known: dict[str, tuple] = {}    # ensemble tensor -> (datatype, dims, full dims, model)
    for t in [*cfg.input, *cfg.output]:
        dims = list(t.reshape.shape) if t.HasField("reshape") else list(t.dims)
        known[t.name] = (datatype(t.data_type), dims, _full(dims, ens_batch), cfg.name)
    for step in cfg.ensemble_scheduling.step:
        _step(cfg, step, specs[step.model_name], known)
    return _decoupled(cfg, specs)


def _step(cfg: ModelConfig, step, spec, known: dict) -> None:
    e, m = cfg.name, step.model_name
    if spec.max_batch_size and spec.max_batch_size < cfg.max_batch_size:
        raise invalid_arg(f"ensemble {e} allows maximum batch size {cfg.max_batch_size}, but "
                          f"it contains model {m} which only allows maximum batch size to be "
                          f"{spec.max_batch_size}")
    batching = spec.max_batch_size > 0
    inputs = {t.name for t in spec.inputs}
    for key, tensor in step.input_map.items():
        if key not in inputs:
            raise invalid_arg(f"in ensemble {e}, ensemble tensor {tensor} is mapping to "
                              f"non-existing input {key} in model {m}")
    for t in spec.inputs:
        if t.name in step.input_map:
            _agree(e, step.input_map[t.name], known, t, batching, m)
        elif not t.optional:
            raise invalid_arg(f"in ensemble {e}, input {t.name} in model {m} is not mapped to "
                              f"any ensemble tensors")
    outputs = {t.name: t for t in spec.outputs}
    for key, tensor in step.output_map.items():
        if key not in outputs:
            raise invalid_arg(f"in ensemble {e}, ensemble tensor {tensor} is mapped from "
                              f"non-existing output {key} in model {m}")
    for key, tensor in step.output_map.items():
        # Steps exchange tensors in config dims: a reshape is the model's own business.
        _agree(e, tensor, known, outputs[key], batching, m)


def _agree(ensemble: str, tensor: str, known: dict, t, batching: bool, model: str) -> None:
    """Record the tensor where first seen, else Triton's ValidateTensorConsistency."""
    dims = list(t.dims)
    mine = (t.datatype, dims, _full(dims, batching), model)
    if tensor not in known:
        known[tensor] = mine
        return
    dtype, seen_dims, seen_full, seen_model = known[tensor]
    where = f"in ensemble {ensemble}, ensemble tensor {tensor}: "
    if dtype != t.datatype:
        raise invalid_arg(f"{where}inconsistent data type: {_type(dtype)} is inferred from "
                          f"model {seen_model} while {_type(t.datatype)} is inferred from "
                          f"model {model}")
    if not _same(seen_dims, dims) and not _same(seen_full, mine[2]):
        raise invalid_arg(f"{where}inconsistent shape: {dims_str(seen_full)} is inferred from "
                          f"model {seen_model} while {dims_str(mine[2])} is inferred from model "
                          f"{model}")


def _decoupled(cfg: ModelConfig, specs: dict) -> bool:
    """Label each tensor with the decoupled step it comes from (0: none); a step's inputs,
    and the ensemble's outputs, must share one label (Triton's text names the ensemble for
    its outputs)."""
    origin: dict[str, int] = {}
    steps = cfg.ensemble_scheduling.step
    for index in _order(cfg):
        step = steps[index]
        label = _origin(origin, step.input_map.values(), cfg.name, step.model_name)
        if specs[step.model_name].decoupled:
            label = 1 + index
        for tensor in step.output_map.values():
            origin[tensor] = label
    _origin(origin, [o.name for o in cfg.output], cfg.name, cfg.name)
    return any(origin.values())


def _origin(origin: dict, tensors, ensemble: str, model: str) -> int:
    labels = {origin.get(t, 0) for t in tensors}
    if len(labels) > 1:
        raise invalid_arg(f"in ensemble {ensemble}, step of model '{model}' receives inputs "
                          f"originated from different decoupled models")
    return labels.pop() if labels else 0


def _full(dims: list, batching: bool) -> list:
    return [-1] + dims if batching else dims


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(x == y or -1 in (x, y) for x, y in zip(a, b))




def _type(dtype: str) -> str:
    return "TYPE_STRING" if dtype == "BYTES" else f"TYPE_{dtype}"


def _order(cfg: ModelConfig) -> list[int]:
    """Step indices in an order where producers come before consumers (the graph is
    acyclic once ``check_graph`` passed)."""
    steps = cfg.ensemble_scheduling.step
    producers = {t: i for i, s in enumerate(steps) for t in s.output_map.values()}
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
