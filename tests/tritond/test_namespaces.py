"""tritond/namespaces.py: keys, names and Triton's resolution rules."""
import pytest

from tritond import namespaces
from tritond.errors import Code, TritonError


def test_a_key_is_the_name_without_namespacing_else_repository_slash_name():
    assert namespaces.key("/r1", "m", False) == "m"
    assert namespaces.key("/r1", "m", True) == "/r1/m"
    assert namespaces.key("/r1/", "m", True) == "/r1/m"
    for key in ("m", "/r1/m"):
        assert namespaces.name_of(key) == "m"
    assert namespaces.namespace_of("/r1/m") == "/r1" and namespaces.namespace_of("m") == ""


def test_resolve_follows_find_model_identifier():
    by_name = namespaces.index(["/r2/a", "/r1/a", "/r1/b"])
    assert by_name == {"a": ["/r1/a", "/r2/a"], "b": ["/r1/b"]}
    assert namespaces.resolve("b", by_name) == "/r1/b"
    assert namespaces.resolve("/r1/b", by_name) is None          # a key is no name
    assert namespaces.resolve("nope", by_name) is None
    assert namespaces.resolve("/r9/b", by_name) is None
    with pytest.raises(TritonError) as exc:
        namespaces.resolve("a", by_name)
    assert exc.value.code == Code.INVALID_ARG
    assert exc.value.message == ("There are 2 identifiers of model 'a' in global map, model "
                                 "namespace must be provided to resolve ambiguity.")


def test_an_ensemble_step_prefers_its_own_namespace_else_the_only_copy():
    by_name = namespaces.index(["/r1/x", "/r2/x", "/r2/y"])
    assert namespaces.prefer("/r1", "x", by_name) == "/r1/x"
    assert namespaces.prefer("/r2", "x", by_name) == "/r2/x"
    assert namespaces.prefer("/r1", "y", by_name) == "/r2/y"     # unique elsewhere
    assert namespaces.prefer("/r3", "x", by_name) is None        # ambiguous
    assert namespaces.prefer("/r1", "z", by_name) is None
    assert namespaces.prefer("", "m", namespaces.index(["m"])) == "m"   # no namespacing


def test_identifier_is_tritons_model_identifier_in_logs():
    # core's ModelIdentifier::str(): "<namespace>::<name>", the bare name without namespacing
    assert namespaces.identifier("/repos/a/composing_model") == "/repos/a::composing_model"
    assert namespaces.identifier(namespaces.key("/repos/b/", "m", True)) == "/repos/b::m"
    assert namespaces.identifier("composing_model") == "composing_model"
