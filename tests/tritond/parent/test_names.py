"""tritond/parent/names.py and ensembles.expand with --model-namespacing: which copies a
name stands for, and which copy an ensemble step links."""
from types import SimpleNamespace

from tritond.parent import ensembles
from tritond.parent.models import UNAVAILABLE, UNLOADED, ModelVersion, Registry
from tritond.parent.names import Names, known_index, step
from tritond.repository.modelconfig import parse_pbtxt
from tritond.repository.scan import ModelSource


def names(tmp_path, namespacing=True):
    for repo, models in (("r1", ("x", "ens")), ("r2", ("x", "y"))):
        for m in models:
            (tmp_path / repo / m).mkdir(parents=True)
    opts = SimpleNamespace(model_namespacing=namespacing,
                           model_repository=[str(tmp_path / "r1"), str(tmp_path / "r2")])
    return Names(opts, Registry())


def test_a_name_is_every_repository_copy_with_namespacing(tmp_path):
    n = names(tmp_path)
    r1, r2 = str(tmp_path / "r1"), str(tmp_path / "r2")
    assert n.on_disk("x") == [f"{r1}/x", f"{r2}/x"]
    assert n.on_disk("y") == [f"{r2}/y"] and n.on_disk("nope") == []
    assert n.on_disk("../r1") == []       # never a path
    assert n.directory(f"{r2}/x") == [(r2, f"{r2}/x")]
    plain = names(tmp_path / "plain", namespacing=False)
    assert plain.on_disk("x") == ["x"]
    assert len(plain.directory("x")) == 2      # refused by the caller: not unique


def test_loaded_copies_leave_out_unloaded_ones(tmp_path):
    n = names(tmp_path)
    r1, r2 = str(tmp_path / "r1"), str(tmp_path / "r2")
    n.registry.versions[(f"{r1}/x", 1)] = ModelVersion(f"{r1}/x", 1, "", r1)
    gone = ModelVersion(f"{r2}/x", 1, "", r2, state=UNAVAILABLE, reason=UNLOADED)
    n.registry.versions[(f"{r2}/x", 1)] = gone
    assert n.loaded("x") == [f"{r1}/x"]
    assert known_index(n.registry) == {"x": [f"{r1}/x"]}
    # explicit load of r2's ensemble: its namespace's copy on disk wins over the loaded one
    assert n.composing_on_disk(f"{r2}/ens", "x") == f"{r2}/x"
    assert n.composing_on_disk(f"{r1}/ens", "y") == f"{r2}/y"
    assert step(f"{r1}/ens", "x", {"x": [f"{r2}/x"]}) == f"{r2}/x"
    assert step(f"{r1}/ens", "x", {}) == "x"     # none: the bare name fails the load


def test_expand_takes_every_copy_and_each_ensembles_own_step():
    ens = parse_pbtxt('name: "ens" platform: "ensemble" ensemble_scheduling { step [ '
                      '{ model_name: "x" model_version: -1 } ] }', "c")
    sources = [ModelSource("/r1/ens", "/r1/ens", "/r1", ens),
               ModelSource("/r2/ens", "/r2/ens", "/r2", ens)]
    sources += [ModelSource(k, k, k.rsplit("/", 1)[0], parse_pbtxt('name: "x"', "c"))
                for k in ("/r1/x", "/r2/x", "/r3/x")]
    assert ensembles.expand({"ens"}, sources) == {"/r1/ens", "/r2/ens", "/r1/x", "/r2/x"}
    assert ensembles.expand({"x", "nope"}, sources) == {"/r1/x", "/r2/x", "/r3/x", "nope"}
