"""tritond/tracechildren.py: child trace records and their renumbering when nested."""
from tritond.messages import Response, TraceChild
from tritond.tracechildren import Children, stamp_names


def test_stamp_names_of_a_worker_an_unqueued_request_and_an_ensemble():
    assert stamp_names([1, 2, 3, 4, 5])[0] == "QUEUE_START"
    assert stamp_names([2, 3, 4, 5])[0] == "COMPUTE_START"
    assert stamp_names([7]) == ("QUEUE_START",)


def test_a_child_and_its_nested_children_get_fresh_refs_under_it():
    kids = Children()
    first = kids.next()
    kids.add(first, "add_sub", 1, "id", 10, Response(1, trace=[11, 12, 13, 14, 15],
                                                     model_version=2), 20)
    second = kids.next()
    nested = [TraceChild(1, 0, "chain", 1, "x", [("REQUEST_START", 31)]),
              TraceChild(2, 1, "add_sub", 1, "x", [("REQUEST_START", 32)])]
    kids.add(second, "chain", -1, "id", 30, Response(2, trace=[31], children=nested), 40)
    got = [(c.ref, c.parent, c.model, c.version) for c in kids.items]
    assert got == [(1, 0, "add_sub", 2), (2, 0, "chain", 0), (3, 2, "chain", 1),
                   (4, 3, "add_sub", 1)]
    assert kids.items[0].stamps[0] == ("REQUEST_START", 10)
    assert kids.items[0].stamps[-1] == ("REQUEST_END", 20)
    assert [n for n, _ in kids.items[1].stamps] == ["REQUEST_START", "QUEUE_START",
                                                    "REQUEST_END"]
