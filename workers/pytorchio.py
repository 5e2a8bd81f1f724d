"""How a TorchScript model's forward() arguments and results map to config tensors.

Triton's PyTorch backend rules, kept free of torch so they are tested on any host:

* inputs: when every config input name is a ``forward`` argument name, inputs
  bind by name; otherwise when every name follows ``<name>__<index>``
  (``INPUT__0``) the index is the argument position; otherwise the config order
  is the argument order;
* outputs: ``<name>__<index>`` picks that element of the returned tuple (a lone
  tensor is element 0) when every output follows it; otherwise config order;
* the config must declare as many inputs as ``forward`` takes, counting a sequence
  model's control inputs and state inputs;
* sequence control inputs and implicit states bind by their ``__<index>`` suffix only,
  and with a state every config input and output must follow that convention too.
"""
from __future__ import annotations

import re

from tritond.errors import Code, TritonError

_INDEXED = re.compile(r"^.+__(\d+)$")

# Config datatype -> torch dtype name (torch.<name>).
TORCH_DTYPES = {
    "BOOL": "bool", "UINT8": "uint8", "INT8": "int8", "INT16": "int16", "INT32": "int32",
    "INT64": "int64", "FP16": "float16", "FP32": "float32", "FP64": "float64",
}



def config_type(torch_dtype) -> str:
    """Triton's config name of a torch dtype (``torch.float32`` -> ``TYPE_FP32``)."""
    name = str(torch_dtype).removeprefix("torch.")
    found = next((k for k, v in TORCH_DTYPES.items() if v == name), None)
    return f"TYPE_{found}" if found else name


def check_output(model: str, name: str, index: int, values: list, want) -> None:
    """Triton's libtorch checks of one result against its config output (at inference:
    only then does the model say what it returns)."""
    if index >= len(values):
        raise TritonError(Code.INVALID_ARG, f"The output {name} in the model configuration "
                          f"refers to an output index which doesn't exist. This model has "
                          f"{len(values)} outputs")
    got = values[index]
    if not hasattr(got, "dtype") or not hasattr(got, "detach"):
        raise TritonError(Code.INTERNAL, f"model '{model}' returned {type(got).__name__} "
                          f"for output '{name}' (result {index}); expected a tensor")
    if want is not None and got.dtype != want:
        raise TritonError(Code.INVALID_ARG, f"configuration expects datatype "
                          f"{config_type(want)} for output '{name}', model provides "
                          f"{config_type(got.dtype)}")


def _indices(names: list[str]) -> list[int] | None:
    found = [_INDEXED.match(n) for n in names]
    if not all(found):
        return None
    return [int(m.group(1)) for m in found]


def input_positions(model: str, names: list[str], arguments: list[str],
                    extra: int = 0) -> dict[str, int]:
    """Config input name -> forward() argument position (``arguments``: without self);
    ``extra`` more arguments are a sequence model's control and state inputs."""
    if len(names) + extra != len(arguments):
        raise TritonError(Code.INVALID_ARG,
                          f"unable to load model '{model}', configuration expects "
                          f"{len(names) + extra} inputs, model provides {len(arguments)}")
    if all(n in arguments for n in names):
        return {n: arguments.index(n) for n in names}
    indices = _indices(names)
    if indices is None:
        return {n: i for i, n in enumerate(names)}
    return _checked(model, "input", names, indices, len(arguments))


def control_positions(model: str, names: list[str]) -> dict[str, int]:
    """Sequence control input name -> its ``__<index>`` (Triton's only rule for them)."""
    out = {}
    for name in names:
        found = _INDEXED.match(name)
        if found is None:
            raise TritonError(Code.INTERNAL, f"input '{name}' does not follow "
                              "<name>__<index> naming convention.")
        out[name] = int(found.group(1))
    return out


def state_positions(model: str, inputs: list[str], arguments: list[str], outputs: list[str],
                    states: list[tuple[str, str]]) -> tuple[dict[str, int], dict[str, int]]:
    """({state input: argument position}, {state output: result index}) of a model with
    implicit state, whose every input, output and state must follow ``<name>__<index>``
    (Triton's rule: its backend finds states by that index alone)."""
    if all(n in arguments for n in inputs) or _indices(inputs) is None \
            or _indices(outputs) is None:
        raise TritonError(Code.INVALID_ARG, f"PyTorch model '{model}' is using sequence "
                          "batching with state but not all inputs and outputs follow the "
                          "<name>__<index> naming convention. ")
    ins, outs = {}, {}
    for state_in, state_out in states:
        for name, into in ((state_in, ins), (state_out, outs)):
            found = _INDEXED.match(name)
            if found is None:
                raise TritonError(Code.INVALID_ARG, f"PyTorch model '{model}' is using "
                                  f"sequence batching with state but state '{name}' does not "
                                  "follow the <name>__<index> naming convention. ")
            into[name] = int(found.group(1))
    return ins, outs


def checked_inputs(model: str, positions: dict[str, int], count: int) -> dict[str, int]:
    """``positions`` of every input (config, control, state): each within ``count``
    arguments, no two at one position."""
    return _checked(model, "input", list(positions), list(positions.values()), count)


def output_positions(model: str, names: list[str]) -> dict[str, int]:
    """Config output name -> index into forward()'s result."""
    if not names:    # PyTorch has no auto-complete: nothing would ever be answered
        raise TritonError(Code.INVALID_ARG, "model configuration must contain at least one "
                          "output, none were specified")
    indices = _indices(names)
    if indices is None:
        return {n: i for i, n in enumerate(names)}
    return _checked(model, "output", names, indices, len(names))


def _checked(model: str, what: str, names: list[str], indices: list[int],
             limit: int) -> dict[str, int]:
    seen: dict[int, str] = {}
    for name, index in zip(names, indices):
        if index >= limit:
            raise TritonError(Code.INVALID_ARG,
                              f"unable to load model '{model}': {what} '{name}' has index "
                              f"{index} but the model has {limit} {what}s")
        if index in seen:
            raise TritonError(Code.INVALID_ARG,
                              f"unable to load model '{model}': {what}s '{seen[index]}' and "
                              f"'{name}' both have index {index}")
        seen[index] = name
    return dict(zip(names, indices))


def results(model: str, value) -> list:
    """forward()'s result as a list (a tensor is one result; tuples and lists flatten once)."""
    if isinstance(value, (tuple, list)):
        return list(value)
    return [value]


def flag(parameters: dict[str, str], key: str, default: bool) -> bool:
    """A boolean PyTorch parameter (``"true"``/``"false"``, as Triton reads them)."""
    value = parameters.get(key)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("true", "1", "on", "yes"):
        return True
    if lowered in ("false", "0", "off", "no"):
        return False
    raise TritonError(Code.INVALID_ARG, f"parameter '{key}' must be 'true' or 'false', got '{value}'")
