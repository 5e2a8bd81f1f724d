"""Builders for scheduler tests: configs, model tables, requests, executions."""
from __future__ import annotations

import msgspec

from tritond import messages
from tritond.scheduler import wire
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


def instance(address: str, index: int = 0, name: str = "m") -> messages.InstanceEntry:
    """The table entry of a CPU instance at ``address``."""
    return messages.InstanceEntry(address, f"{name}_{index}", "CPU", 0)


def table(*models: tuple) -> messages.ModelTable:
    """``table(("m", 1, config_json, ["w0", "w1"]), ...)``; a 5th item overrides the state."""
    entries = []
    for item in models:
        name, version, cfg, instances = item[:4]
        state = item[4] if len(item) > 4 else "READY"
        entries.append(messages.ModelEntry(
            name=name, version=version, state=state, spec=cfg,
            instances=[instance(a, i, name) for i, a in enumerate(instances)]))
    return messages.ModelTable(models=entries, server_ready=True)


def full_request(rid: int, model: str = "m", version: int = 1, batch: int = 0,
                 shape: tuple = (4,), dtype: str = "FP32", priority: int = 0,
                 timeout_us: int = 0, arrival_ns: int = 0, frontend: str = "fe",
                 inputs: tuple = ("INPUT0",), correlation_id: int | str = 0,
                 flags: int = 0, request_id: str = "") -> messages.Request:
    """A request as a frontend sends it: each input of ``[batch, *shape]`` (or ``shape``;
    a BLS call's ``batch=-1`` marks it for the scheduler to batch, it is no dimension)."""
    dims = [batch, *shape] if batch > 0 else list(shape)
    refs = [messages.TensorRef(name=name, dtype=dtype, shape=dims, region="r", offset=0,
                               nbytes=0) for name in inputs]
    return messages.Request(rid=rid, frontend=frontend, model=model, version=version,
                            inputs=refs, batch=batch, priority=priority,
                            timeout_us=timeout_us, correlation_id=correlation_id, flags=flags,
                            arrival_ns=arrival_ns, request_id=request_id)


_view = msgspec.msgpack.Decoder(wire.RequestView).decode


def request(rid: int, **kw) -> wire.RequestView:
    """``full_request(rid, **kw)`` as the scheduler receives it (decoded from the wire)."""
    return _view(msgspec.msgpack.encode(full_request(rid, **kw)))


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
