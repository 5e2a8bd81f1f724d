"""Builders for scheduler tests: configs, model tables, requests, executions."""
from __future__ import annotations

from tritond import messages
from tritond.scheduler.core import Dispatch, Reply, SchedulerCore

from tests.specs import spec_from_dict

MS = 1_000_000
US = 1_000


def config(max_batch_size: int = 0, dynamic: dict | None = None, **extra):
    """The spec of a model config given in Triton's JSON form (what the scheduler reads)."""
    cfg = {"name": "m", "max_batch_size": max_batch_size, "input": [], "output": []}
    if dynamic is not None:
        cfg["dynamic_batching"] = dynamic
    cfg.update(extra)
    return spec_from_dict(cfg)


def table(*models: tuple) -> messages.ModelTable:
    """``table(("m", 1, config_json, ["w0", "w1"]), ...)``; a 5th item overrides the state."""
    entries = []
    for item in models:
        name, version, cfg, instances = item[:4]
        state = item[4] if len(item) > 4 else "READY"
        entries.append(messages.ModelEntry(name=name, version=version, state=state,
                                           spec=cfg, instances=list(instances)))
    return messages.ModelTable(models=entries, server_ready=True)


def request(rid: int, model: str = "m", version: int = 1, batch: int = 0,
            shape: tuple = (4,), dtype: str = "FP32", priority: int = 0,
            timeout_us: int = 0, arrival_ns: int = 0, frontend: str = "fe") -> messages.Request:
    """One request with a single input INPUT0 of ``[batch, *shape]`` (or ``shape`` unbatched)."""
    dims = [batch, *shape] if batch else list(shape)
    ref = messages.TensorRef(name="INPUT0", dtype=dtype, shape=dims, region="r", offset=0,
                             nbytes=0)
    return messages.Request(rid=rid, frontend=frontend, model=model, version=version,
                            inputs=[ref], batch=batch, priority=priority,
                            timeout_us=timeout_us, arrival_ns=arrival_ns)


def executed(d: Dispatch, compute=(10, 100, 1000), start=0, end=0,
             failed=()) -> messages.Executed:
    size = sum(max(r.batch, 1) for r in d.execute.requests)
    stats = messages.ExecStats(size, compute[0], compute[1], compute[2], start, end)
    return messages.Executed(instance=d.address, batch_id=d.execute.batch_id, stats=stats,
                             failed=list(failed))


def dispatches(out: list) -> list[Dispatch]:
    return [o for o in out if isinstance(o, Dispatch)]


def replies(out: list) -> list[Reply]:
    return [o for o in out if isinstance(o, Reply)]


def rids(d: Dispatch) -> list[int]:
    return [r.rid for r in d.execute.requests]


def core_with(cfg: str, instances=("w0",), name: str = "m", version: int = 1) -> SchedulerCore:
    core = SchedulerCore()
    assert core.set_models(table((name, version, cfg, instances))) == []
    return core
