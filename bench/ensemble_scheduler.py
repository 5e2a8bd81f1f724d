"""Micro-benchmark of the scheduler's cost per ensemble request, in process.

Run: ``.venv/bin/python bench/ensemble_scheduler.py [--repository DIR --model NAME]``
(default: bench/pipelines/models' ``pipeline``, preprocess -> identity, against
its first step's model alone). Everything the scheduler process does for a
request but the socket calls: decode the frontend's frame, ``handle`` each
worker's frame (step Response + Executed, decoded from msgpack as the inbox
does), step, settle, encode each Execute. The workers are simulated: each
answers every output of its step request from a fresh slot, and a marked final
step (``Request.answer``) sends its receipt as workers/answers.py does. One
request per loop turn (a lone request: the costliest case, no coalescing). Printed: µs per request in
all and per frame in order (the request / step 1's answer and Executed / ...).
"""
from __future__ import annotations

import argparse
import pathlib
import time

from tritond import messages, repository
from tritond.repository.modelconfig import parse_pbtxt

from tritond.scheduler import wire
from tritond.scheduler.core import Dispatch, Reply, SchedulerCore

ME = "\0tritond-0123abcd-scheduler"
FE = "\0tritond-0123abcd-frontend-0"
_worker_inbox = messages.decoder(messages.TO_WORKER).decode
_inbox = messages.decoder(wire.TO_SCHEDULER).decode


def _table(repo: pathlib.Path) -> tuple[messages.ModelTable, dict]:
    entries, specs = [], {}
    for i, cfg_path in enumerate(sorted(repo.glob("*/config.pbtxt"))):
        cfg = parse_pbtxt(cfg_path.read_text(), str(cfg_path))
        repository.normalize(cfg)
        spec = repository.spec_from_config(cfg, 1)
        specs[spec.name] = spec
        instances = [] if spec.platform == "ensemble" else [
            messages.InstanceEntry(f"\0tritond-0123abcd-w{i}", f"{spec.name}_0", "CPU", 0)]
        entries.append(messages.ModelEntry(name=spec.name, version=1, state="READY",
                                           spec=spec, instances=instances))
    return messages.ModelTable(models=entries, server_ready=True), specs


def _request_frame(spec, rid: int) -> bytes:
    refs = [messages.TensorRef(t.name, t.datatype, [max(d, 1) for d in t.dims],
                               "/tritond-0123abcd-frontend-0", 4096, 64) for t in spec.inputs]
    return messages.encode([messages.Request(rid=rid, frontend=FE, model=spec.name, version=1,
                                             inputs=refs, arrival_ns=rid)])


def _worker_frame(address: str, ex: messages.Execute, offset: int) -> bytes:
    """What a worker sends the scheduler after ``ex``: step answers and Executed."""
    msgs: list = []
    stats = messages.ExecStats(len(ex.requests), 1, 1, 1, 0, 0)
    for req in ex.requests:               # one request per batch here (no batching)
        if req.frontend == FE:
            continue                      # a plain request: answered to its frontend
        if req.answer is not None:        # answered to the ensemble's caller: a receipt
            msgs.append(messages.Executed(address, ex.batch_id, stats))
            msgs.append(messages.Response(req.rid, instance=address, empty=True))
            return messages.encode(msgs)
        outs = [messages.TensorRef(o.name, "FP32", [16], f"/tritond-0123abcd-{address[-2:]}",
                                   offset + 64 * k, 64) for k, o in enumerate(req.outputs)]
        msgs.append(messages.Response(req.rid, outputs=outs, instance=address))
    msgs.append(messages.Executed(address, ex.batch_id, stats))
    return messages.encode(msgs)


def handle(core: SchedulerCore, frame: bytes, now: int) -> list[tuple[str, bytes]]:
    """SchedulerProc.handle less the sockets: (destination, frame) it would write."""
    out: list = []
    for msg in _inbox(frame):
        kind = type(msg)
        if kind is wire.RequestView:
            out.extend(core.add(msg, now))
        elif kind is messages.Executed:
            out.extend(core.executed(msg, now))
        elif kind is messages.Response:
            out.extend(core.response(msg, now))
    out.extend(core.step(now))
    out = core.settle(out, now)
    core.next_deadline_ns()
    return [(o.address, messages.encode([o.execute])) if type(o) is Dispatch else
            (o.frontend, messages.encode([o.response])) if type(o) is Reply else
            (o.address, messages.encode([o.message])) for o in out]


def run(model: str, table, specs: dict, total: int) -> list[float]:
    """ns per request of the scheduler (the simulated workers' encoding excluded): in
    all, then per frame it handles in order (the request, each worker's answer)."""
    core = SchedulerCore(address=ME)
    core.set_models(table)
    spent = [0]
    clock = time.thread_time_ns     # CPU time: the host is shared
    for rid in range(1, total + 1):
        frame = _request_frame(specs[model], rid)
        todo = [frame]
        offset = 0
        k = 0
        while todo:
            t0 = clock()
            written = handle(core, todo.pop(), rid)
            took = clock() - t0
            k += 1
            if k == len(spent):
                spent.append(0)
            spent[0] += took
            spent[k] += took
            for address, data in written:
                if address == FE:
                    continue
                msg = _worker_inbox(data)[0]
                if type(msg) is messages.Execute:
                    offset += 256
                    todo.append(_worker_frame(address, msg, offset))
    return [s / total for s in spent]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = pathlib.Path(__file__).resolve().parents[1]
    ap.add_argument("--repository", default=str(root / "bench/pipelines/models"))
    ap.add_argument("--model", default="pipeline")
    ap.add_argument("--single", default="preprocess")
    ap.add_argument("--requests", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    table, specs = _table(pathlib.Path(args.repository))
    for _ in range(args.rounds):
        ens = run(args.model, table, specs, args.requests)
        one = run(args.single, table, specs, args.requests)
        print(f"{args.model}: {ens[0] / 1000:.1f} µs/req ({_frames(ens)})   {args.single} "
              f"alone: {one[0] / 1000:.1f} µs/req ({_frames(one)})   ensemble extra: "
              f"{(ens[0] - one[0]) / 1000:.1f} µs/req")


def _frames(spent: list[float]) -> str:
    return " / ".join(f"{s / 1000:.1f}" for s in spent[1:])


if __name__ == "__main__":
    main()
