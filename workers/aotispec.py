"""How an AOTInductor package's call specification names its tensors (torch-free).

A ``model.pt2`` runner takes a flat list of tensors and returns one; the
package's call specification (two pytree JSON strings, ``[version, {type,
context, children_spec}]``) says how forward()'s ``(args, kwargs)`` and its
result flatten into those lists. Triton's PyTorch backend (src/pt2) names each
flat position two ways, and a config may use either, tensor by tensor:

* ordinal: ``INPUT__<i>`` / ``OUTPUT__<i>``, the position in the flat list;
* forward-based: ``ARGS[0]``, ``ARGS[2][keyA]``, ``KWARGS[kwarg1]``,
  ``RESULT[AAA]``, ``RESULT[BBB][0]``; a result that is one tensor is ``RESULT``.

Dictionary keys keep their insertion order (pytree's), so ``RESULT[ZZZ]`` may
be ``OUTPUT__1``. Only tuples, lists, dicts and tensors may appear, as in Triton.
"""
from __future__ import annotations

import json

from tritond.errors import Code, TritonError

_TUPLES = ("builtins.tuple", "builtins.list")
_DICT = "builtins.dict"


class SpecError(ValueError):
    """A call specification this backend cannot name (another pytree type, bad JSON)."""


def _node(value) -> tuple[str | None, list, list]:
    """(type, keys, children) of one spec node; a node without a type is a tensor."""
    if not isinstance(value, dict):
        raise SpecError(f"a node is {type(value).__name__}, not an object")
    kind = value.get("type")
    children = value.get("children_spec") or []
    context = value.get("context")
    if isinstance(context, str):      # pytree writes a dict's keys as a JSON string
        context = json.loads(context)
    keys = context or []
    if kind is None:
        return None, [], []
    if kind == _DICT:
        if len(keys) != len(children) or not all(isinstance(k, str) for k in keys):
            raise SpecError(f"dict keys {keys!r} do not name its {len(children)} entries")
    elif kind not in _TUPLES:
        raise SpecError(f"type '{kind}' is not a tuple, list, dict or tensor")
    return kind, keys, children


def _names(value) -> list[str]:
    """The accessor suffix (``[0][key]``) of every tensor under ``value``, flat order."""
    kind, keys, children = _node(value)
    if kind is None:
        return [""]
    labels = keys if kind == _DICT else [str(i) for i in range(len(children))]
    return [f"[{label}]{rest}" for label, child in zip(labels, children)
            for rest in _names(child)]


def _root(text: str):
    try:
        parsed = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"not JSON ({exc})") from None
    if not isinstance(parsed, list) or len(parsed) != 2:
        raise SpecError("expected a [version, spec] array")
    return parsed[1]


def input_names(text: str) -> list[str]:
    """Forward-based names of the flat inputs: ``ARGS...`` then ``KWARGS...``."""
    kind, _, children = _node(_root(text))
    if kind != "builtins.tuple" or len(children) != 2 \
            or _node(children[0])[0] != "builtins.tuple" or _node(children[1])[0] != _DICT:
        raise SpecError("inputs are not a tuple[tuple, dict] of (args, kwargs)")
    return ([f"ARGS{n}" for n in _names(children[0])]
            + [f"KWARGS{n}" for n in _names(children[1])])


def output_names(text: str) -> list[str]:
    """Forward-based names of the flat results (``RESULT`` alone for one tensor)."""
    return [f"RESULT{n}" for n in _names(_root(text))]


def call_spec_names(model: str, spec: list[str]) -> tuple[list[str], list[str]]:
    """(input names, output names) of a package's ``get_call_spec()``; a spec that
    cannot be named fails the load with Triton's message (and why, here)."""
    out = []
    for what, text, read in (("input", spec[0], input_names), ("output", spec[1], output_names)):
        try:
            out.append(read(text))
        except ValueError as exc:     # SpecError, or a dict's keys that are not JSON
            raise TritonError(Code.INTERNAL, f"Failed to parse {what} call specification "
                              f"for model \"{model}\": {exc}.") from None
    return out[0], out[1]


def bind(instance: str, kind: str, config: list[str], model: list[str]) -> dict[str, int]:
    """Config tensor name -> flat position, by forward-based or ordinal name
    (``kind``: "input" or "output"; Triton's messages)."""
    ordinal = "INPUT__" if kind == "input" else "OUTPUT__"
    where = {name: i for i, name in enumerate(model)}
    where.update({f"{ordinal}{i}": i for i in range(len(model))})
    out: dict[str, int] = {}
    for name in config:
        if name not in where:
            raise TritonError(Code.INTERNAL, f"{kind.capitalize()} \"{name}\" for model "
                              f"instance \"{instance}\" is not found in model {kind} map.")
        same = next((n for n, i in out.items() if i == where[name]), None)
        if kind == "input" and same is not None:   # Triton would leave a position unfed
            raise TritonError(Code.INVALID_ARG, f"{kind}s \"{same}\" and \"{name}\" of model "
                              f"instance \"{instance}\" name the same model {kind} "
                              f"{where[name]} ({model[where[name]]})")
        out[name] = where[name]
    return out
