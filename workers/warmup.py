"""A model's warmup (config ``model_warmup``): its samples run on each instance before READY.

Triton's core (backend_model_instance.cc, GenerateWarmupData / WarmUp) makes each sample's
requests when an instance is created and runs them through the backend directly (no
scheduler), ``count`` times (at least once), before the instance serves; a sample with
``batch_size`` 0 is skipped. A sample of batch size N is N requests of one row each (a
batching model's inputs get a leading 1), executed together. Input data is zeros, random
bytes (zeros for BYTES: each element empty) or the raw bytes of a file in the model's
``warmup/`` folder (BYTES: length-prefixed elements, as on the wire). The requests are
checked as the core checks any request (``tritond.inputrules``, same texts); an input
the config does not name is passed on unchecked (Triton adds it as an override input: a
sequence model's control inputs), with the batch dimension of a batching model too. Any error fails the instance's load, as in Triton.

Here it runs inside the worker between the backend's load and ``Loaded``, on the
worker's own numpy arrays: nothing crosses a process, no output goes to the arena. What
a decoupled model (or a response sender) sends is collected by :class:`WarmupSink`,
checked for errors and discarded.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import struct
import threading
import time

import numpy as np

from tritond import loglevels, messages
from tritond.errors import Code, TritonError, invalid_arg, request_tag
from tritond.inputrules import InputRules
from tritond.shm.dtypes import DTYPES, config_to_protocol
from tritond.spec import ModelSpec

from .backend import WorkRequest

WARMUP_DIR = "warmup"       # Triton's kWarmupDataFolder, in the model's directory
FRONTEND = "warmup"         # Request.frontend of a warmup request (its responses go nowhere)
_VERBOSE1 = loglevels.verbose(1)
_LEN = struct.Struct("<I")


def warm_up(executor, spec: ModelSpec, model_dir: str, model: str, version: int,
            instance: str, log: logging.Logger) -> list[messages.ExecStats]:
    """Make and run ``spec``'s warmup samples on this instance: the statistics of each run
    (Triton counts them in the model's); a TritonError fails its load with Triton's reason
    text (the loader puts its code's name first, tritond.errors.status_text)."""
    todo = samples(spec, model_dir, log)
    return WarmUp(executor, model, version, instance, log).run(todo) if todo else []


@dataclasses.dataclass
class Sample:
    """One ``model_warmup`` entry, its data made: ``batch`` requests with these inputs."""

    name: str
    count: int
    batch: int
    inputs: dict[str, np.ndarray]    # one request's inputs (a batching model's with a row dim)


def samples(spec: ModelSpec, model_dir: str, log: logging.Logger) -> list[Sample]:
    """The warmup samples of ``spec`` with their data, checked (TritonError: the load fails)."""
    config = json.loads(spec.config_json) if spec.config_json else {}
    made = []
    for setting in config.get("model_warmup", []):
        name = setting.get("name", "")
        batch = int(setting.get("batch_size", 0))
        if batch == 0:
            log.log(_VERBOSE1, "Skipping batch 0 warmup sample '%s'", name)
            continue
        log.log(_VERBOSE1, "Generating warmup sample data for '%s'", name)
        inputs = setting.get("inputs", {})
        for key, meta in inputs.items():      # Triton's first pass: sizes known
            if any(int(d) < 0 for d in meta.get("dims", [])):
                raise invalid_arg("warmup setting expects all variable-size dimensions are "
                                  f"specified for input '{key}'")
        raw = {key: _data(key, meta, model_dir) for key, meta in inputs.items()}
        arrays = _checked(spec, inputs, raw)
        made.append(Sample(name, max(int(setting.get("count", 0)), 1), batch, arrays))
    return made


def _data(key: str, meta: dict, model_dir: str) -> bytes:
    """The bytes of one input of one request (BYTES: serialised elements)."""
    config_type = meta.get("data_type", "TYPE_INVALID")
    datatype = config_to_protocol(config_type) if config_type != "TYPE_INVALID" else None
    dims = [int(d) for d in meta.get("dims", [])]
    count = math.prod(dims)
    size = DTYPES[datatype].size if datatype in DTYPES else 0
    nbytes = 4 * count if datatype == "BYTES" else (size or 0) * count
    if "zero_data" in meta or ("random_data" in meta and datatype == "BYTES"):
        return bytes(nbytes)     # BYTES: count zero lengths (Triton's zero buffer)
    if "random_data" in meta:
        return os.urandom(nbytes)
    if "input_data_file" in meta:
        file = meta["input_data_file"]
        path = os.path.join(model_dir, WARMUP_DIR, file)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:    # Triton's ReadTextFile: INTERNAL, with the OS's reason
            raise TritonError(Code.INTERNAL, f"failed to open text file for read {path}: "
                                             f"{os.strerror(exc.errno or 0)}") from None
        if datatype == "BYTES":
            return data
        if nbytes > len(data):   # Triton's text, its missing space after the file name too
            raise invalid_arg(f"{request_tag(None)}warmup setting expects {nbytes} bytes, but "
                              f"the data provided from {file}only has {len(data)} bytes")
        return data[:nbytes]
    raise invalid_arg(f"{request_tag(None)}warmup setting expects input '{key}' to have "
                      "input_data_type set")


def _checked(spec: ModelSpec, inputs: dict, raw: dict) -> dict[str, np.ndarray]:
    """One request's arrays, checked by the rules of any request (Triton normalises a
    warmup request like a client's): datatypes, shapes, required inputs, BYTES counts."""
    rules = InputRules(spec)          # fresh: a remembered signature would skip ``sized``
    batched = spec.max_batch_size > 0
    own = [k for k in inputs if k in rules.inputs]      # others: override inputs, unchecked
    shapes, types = {}, {}
    for key, meta in inputs.items():
        types[key] = config_to_protocol(meta.get("data_type", "TYPE_INVALID"))
        dims = tuple(int(d) for d in meta.get("dims", []))
        # Triton's override inputs get the batch dimension too (AddOverrideInput)
        shapes[key] = (1, *dims) if batched else dims
    signature = tuple((k, types[k], *shapes[k]) for k in own)

    def sized(i: int, elem_size, count: int) -> None:
        if elem_size is None:
            _check_bytes(spec.name, own[i], raw[own[i]], count)
    rules.check(signature, None, sized)
    return {k: _array(types[k], shapes[k], raw[k]) for k in inputs}


def _check_bytes(model: str, name: str, data: bytes, count: int) -> None:
    """A BYTES input holds ``count`` elements: Triton's ValidateBytesInputs, its order and
    texts (an element running past the end counts; the count check then refuses it)."""
    tag = request_tag(None)
    where = f"for inference input '{name}' for model '{model}'"
    pos = checked = 0
    end = len(data)
    while pos < end:
        if end - pos < 4:
            raise invalid_arg(f"{tag}incomplete string length indicator {where}, expecting 4 "
                              f"bytes but only {end - pos} bytes available. Please make sure "
                              "the string length indicator is in one buffer.")
        (n,) = _LEN.unpack_from(data, pos)
        checked += 1
        if checked > count:
            raise invalid_arg(f"{tag}unexpected number of string elements {checked} {where}, "
                              f"expecting {count}")
        pos += 4 + n
    if checked != count:
        raise invalid_arg(f"{tag}expected {count} string elements {where}, got {checked}")
    if pos > end:     # the core leaves it to the backend; refused here, before it runs
        raise invalid_arg(f"incomplete string {where}, expecting string of length {n} but "
                          f"only {end - pos + n} bytes available")


def _array(datatype: str, shape: tuple, data: bytes) -> np.ndarray:
    if datatype == "BYTES":
        items, pos = [], 0
        while pos < len(data):
            (n,) = _LEN.unpack_from(data, pos)
            items.append(data[pos + 4:pos + 4 + n])
            pos += 4 + n
        arr = np.empty(len(items), dtype=object)
        arr[:] = items
        return arr.reshape(shape)
    return np.frombuffer(data, dtype=DTYPES[datatype].numpy).reshape(shape)


class WarmupSink:
    """The warmup's stand-in for the worker's StreamHub (``backend.streams``): what a
    response sender sends lands here; errors are kept, the rest dropped."""

    class Stream:
        __slots__ = ("key", "closed", "parked")

        def __init__(self, key) -> None:
            self.key = key
            self.closed = False
            self.parked = False

    def __init__(self) -> None:
        self.streams: dict = {}
        self.errors: list[str] = []
        self._cond = threading.Condition()

    def open(self, req: messages.Request, outputs) -> "WarmupSink.Stream":
        stream = self.Stream((req.frontend, req.rid))
        with self._cond:
            self.streams[stream.key] = stream
        return stream

    def submit(self, stream: "WarmupSink.Stream", response, final: bool) -> None:
        with self._cond:
            if response is not None and response.has_error():
                self.errors.append(response.error().message())
            if final:
                stream.closed = True
                self.streams.pop(stream.key, None)
                self._cond.notify_all()

    def wait(self) -> None:
        """Until every stream sent its final flag (Triton waits for each final response)."""
        with self._cond:
            self._cond.wait_for(lambda: not self.streams)


class WarmUp:
    """Runs the samples on one loaded instance (``executor``: its Executor)."""

    def __init__(self, executor, model: str, version: int, instance: str,
                 log: logging.Logger) -> None:
        self.executor = executor
        self.model = model             # display name
        self.version = version
        self.instance = instance       # Triton's instance name, e.g. "simple_0_0"
        self.log = log

    def run(self, todo: list[Sample]) -> list[messages.ExecStats]:
        """Every sample, ``count`` times: the statistics of each run; the first failing
        one raises (INVALID_ARG)."""
        backend = self.executor.backend
        sink = WarmupSink()
        backend.streams = sink         # the worker's hub replaces it after the warmup
        runs = []
        try:
            for sample in todo:
                for iteration in range(1, sample.count + 1):
                    self.log.log(_VERBOSE1, "model '%s' instance %s is running warmup "
                                 "sample '%s' for iteration %d", self.model, self.instance,
                                 sample.name, iteration)
                    errors = self._once(sample, sink, runs)
                    if errors:
                        self.log.log(_VERBOSE1, "model '%s' instance %s failed to run "
                                     "warmup sample '%s'", self.model, self.instance,
                                     sample.name)
                        raise invalid_arg(f"failed to run warmup sample '{sample.name}': "
                                          + "".join(f"{e}; " for e in errors))
        finally:
            backend.streams = None
        return runs

    def _once(self, sample: Sample, sink: WarmupSink, runs: list) -> list[str]:
        """One run of ``sample``: the errors of its responses (its statistics go to
        ``runs``: making the inputs, the backend's run, waiting for sent responses)."""
        io = self.executor.io
        limit = io.max_batch_size
        if sample.batch != 1 and sample.batch > limit:     # every backend's own check
            return [f"batch size {sample.batch} for '{self.instance}', max allowed is "
                    f"{limit}"] * sample.batch
        start = time.monotonic_ns()
        work = {}
        for rid in range(sample.batch):
            req = messages.Request(rid, FRONTEND, self.model, self.version, [],
                                   batch=1 if io.batched else 0)
            # each request its own writable copy: a model may write into its inputs
            inputs = {n: np.array(a).reshape(io.backend_shape(n, a.shape))
                      for n, a in sample.inputs.items()}
            work[rid] = WorkRequest(req, inputs, io.requested([]))
        sink.errors = []
        t_in = time.monotonic_ns()
        results = self.executor.execute(work)
        t_infer = time.monotonic_ns()
        sink.wait()
        end = time.monotonic_ns()
        runs.append(messages.ExecStats(sample.batch, t_in - start, t_infer - t_in,
                                       end - t_infer, start, end))
        errors = [r.error.message for r in results.values()
                  if getattr(r, "error", None) is not None]
        return errors + sink.errors
