"""AOTInductor call-specification names (workers/aotispec.py), torch-free: the JSON is what
torch 2.13's ``loader.get_call_spec()`` returns for Triton README's example model."""
from __future__ import annotations

import json

import pytest

from tritond.errors import Code, TritonError
from tritond.workers import aotispec

LEAF = {"type": None, "context": None, "children_spec": []}


def tup(*children, kind="builtins.tuple"):
    return {"type": kind, "context": "null", "children_spec": list(children)}


def dct(**children):
    return {"type": "builtins.dict", "context": json.dumps(list(children)),
            "children_spec": list(children.values())}


def spec(node) -> str:
    return json.dumps([1, node])


# forward(hdata, vdata, options: dict, *, kwarg1, kw_arg2) of Triton's README
README_IN = spec(tup(tup(LEAF, LEAF, dct(keyA=LEAF, key2=LEAF)), dct(kwarg1=LEAF, kw_arg2=LEAF)))
README_OUT = spec(dct(AAA=LEAF, ZZZ=LEAF, BBB=tup(LEAF, LEAF), CCC=dct(keyA=LEAF, key2=LEAF),
                      DDD=dct(KA=LEAF, KB=LEAF)))


def test_readme_example_names_in_flat_order():
    assert aotispec.input_names(README_IN) == [
        "ARGS[0]", "ARGS[1]", "ARGS[2][keyA]", "ARGS[2][key2]",
        "KWARGS[kwarg1]", "KWARGS[kw_arg2]"]
    # dict keys in insertion order: RESULT[ZZZ] is OUTPUT__1
    assert aotispec.output_names(README_OUT) == [
        "RESULT[AAA]", "RESULT[ZZZ]", "RESULT[BBB][0]", "RESULT[BBB][1]",
        "RESULT[CCC][keyA]", "RESULT[CCC][key2]", "RESULT[DDD][KA]", "RESULT[DDD][KB]"]


def test_a_single_tensor_result_is_RESULT_and_lists_are_tuples():
    assert aotispec.output_names(spec(LEAF)) == ["RESULT"]
    assert aotispec.output_names(spec(tup(LEAF, kind="builtins.list"))) == ["RESULT[0]"]
    assert aotispec.input_names(spec(tup(tup(LEAF), dct()))) == ["ARGS[0]"]


def test_bind_by_either_convention_in_any_order():
    names = aotispec.input_names(README_IN)
    bound = aotispec.bind("m_0", "input", ["KWARGS[kw_arg2]", "INPUT__0", "ARGS[2][keyA]"], names)
    assert bound == {"KWARGS[kw_arg2]": 5, "INPUT__0": 0, "ARGS[2][keyA]": 2}
    outputs = aotispec.output_names(README_OUT)
    assert aotispec.bind("m_0", "output", ["RESULT[ZZZ]", "OUTPUT__1"], outputs) == {
        "RESULT[ZZZ]": 1, "OUTPUT__1": 1}        # two outputs may read one result


@pytest.mark.parametrize("kind,name,message", [
    ("input", "INPUT__6", 'Input "INPUT__6" for model instance "m_0" is not found in model '
                          "input map."),
    ("input", "kwarg1", 'Input "kwarg1" for model instance "m_0" is not found in model input '
                        "map."),
    ("output", "RESULT[BBB]", 'Output "RESULT[BBB]" for model instance "m_0" is not found in '
                              "model output map."),
])
def test_unknown_names_fail_with_triton_messages(kind, name, message):
    names = (aotispec.input_names(README_IN) if kind == "input"
             else aotispec.output_names(README_OUT))
    with pytest.raises(TritonError) as err:
        aotispec.bind("m_0", kind, [name], names)
    assert err.value.message == message


def test_one_input_named_twice_is_refused():
    with pytest.raises(TritonError) as err:
        aotispec.bind("m_0", "input", ["ARGS[1]", "INPUT__1"], aotispec.input_names(README_IN))
    assert err.value.code == Code.INVALID_ARG
    assert '"ARGS[1]" and "INPUT__1"' in err.value.message


@pytest.mark.parametrize("node,why", [
    ({"type": "collections.namedtuple", "context": "null", "children_spec": [LEAF]},
     "type 'collections.namedtuple' is not a tuple, list, dict or tensor"),
    ({"type": "builtins.dict", "context": "[1]", "children_spec": [LEAF]}, "dict keys [1]"),
])
def test_unnameable_specs_fail_the_load(node, why):
    with pytest.raises(TritonError) as err:
        aotispec.call_spec_names("m", [spec(tup(tup(LEAF), dct())), spec(node)])
    assert err.value.message.startswith('Failed to parse output call specification for model "m": ')
    assert why in err.value.message
    with pytest.raises(TritonError, match="Failed to parse input call specification"):
        aotispec.call_spec_names("m", [spec(tup(LEAF)), spec(LEAF)])   # not (args, kwargs)
    with pytest.raises(TritonError, match="not JSON"):
        aotispec.call_spec_names("m", ["{", spec(LEAF)])


def test_matches_torch_pytree_when_torch_is_here():
    pytree = pytest.importorskip("torch.utils._pytree")
    t = object()
    _, treespec = pytree.tree_flatten(((t, t, {"keyA": t, "key2": t}),
                                       {"kwarg1": t, "kw_arg2": t}))
    assert aotispec.input_names(pytree.treespec_dumps(treespec)) == \
        aotispec.input_names(README_IN)
