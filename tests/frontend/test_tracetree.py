"""frontend/tracetree.py through the Tracer: child traces get ids from the same counter and
are written (Triton's JSON, parent_id) with their parent, as one trace of the setting."""
import json

from tritond import options
from tritond.frontend.trace import Tracer
from tritond.messages import TraceChild


def test_children_are_numbered_after_their_parent_and_written_with_it(tmp_path):
    t = Tracer(options.Options(trace_config=[f"triton,file={tmp_path}/t.json",
                                             "level=TIMESTAMPS", "rate=1"]))
    tr = t.start("ens")
    tr.version = 1
    tr.stamp("REQUEST_START", 10)
    tr.worker([11], [TraceChild(1, 0, "step", 2, "rid", [("REQUEST_START", 12),
                                                         ("REQUEST_END", 13)]),
                     TraceChild(2, 1, "leaf", 1, "", [("REQUEST_START", 14)])])
    t.finish(tr)
    assert t.start("ens").id == 4               # ids 2 and 3 went to the children
    t.close()
    objects = json.loads((tmp_path / "t.json").read_text())
    heads = [o for o in objects if "model_name" in o]
    assert heads == [{"id": 1, "model_name": "ens", "model_version": 1},
                     {"id": 2, "model_name": "step", "model_version": 2, "request_id": "rid",
                      "parent_id": 1},
                     {"id": 3, "model_name": "leaf", "model_version": 1, "parent_id": 2}]
    stamps = [(o["id"], o["timestamps"][0]["name"]) for o in objects if "timestamps" in o]
    assert stamps == [(1, "REQUEST_START"), (1, "QUEUE_START"), (2, "REQUEST_START"),
                      (2, "REQUEST_END"), (3, "REQUEST_START")]
