"""Every cross-process message, in one module.

Messages are msgspec structs encoded as compact msgpack arrays with an integer
tag. A frame on a channel carries a *list* of messages (one frame per
destination per loop turn: see docs/architecture.md invariant 5). Tensors travel as
:class:`TensorRef` (a reference into shared memory), never as bytes.

Each receiving role accepts one closed set (``TO_FRONTEND``, ``TO_SCHEDULER``,
``TO_WORKER``, ``TO_PARENT``); frames are decoded message by message when a
frame fails (``tritond.decoding``), and anything else is logged and answered
with :class:`Unknown` to its sender, never silently ignored.

Bump ``PROTOCOL_VERSION`` on any incompatible change; the handshake checks it.
"""
from __future__ import annotations

from typing import Any, Optional, Union

import msgspec

from .options import Options
from .spec import ModelSpec

# 3: ModelSpec, typed Options and queries; 4: ModelEntry.instances are InstanceEntry
# structs; 5: Execute.slots and Execute.ended (sequence batching); 6: several frontends
# (Setup.cache, FrontendStatsQuery, SettingsUpdate, the client shm registry: ShmTable
# and its queries); 7: Request.trace / Response.trace, LogLevels, Shutdown.linger,
# ModelMetrics.summaries; 8: Response.children (TraceChild: ensemble step and BLS traces);
# 9: a worker answering an ensemble's caller directly sends the scheduler a receipt;
# 10: EnsembleAnswer.within (a nested ensemble's final step answers the outer's caller);
# 11: Executed.rescheduled (iterative sequences); 12: CancelRunning.batch_id ANSWERED;
# 13: TensorRef.lengths_at (BYTES length tables); 14: CancelRunning.running; 15: a
# Python model's own is_ready() (Loaded/InstanceEntry.user_ready, UserReady* messages);
# 16: Response.refused
PROTOCOL_VERSION = 16

# ---------------------------------------------------------------- data plane

# Request.flags bits (Triton's TRITONSERVER_REQUEST_FLAG_SEQUENCE_*)
SEQUENCE_START = 1
SEQUENCE_END = 2

# TensorRef.kind values
SERVER_SHM = 0   # a segment owned by a tritond process (arena or one-off)
CLIENT_SHM = 1   # a client-registered system shm region (region = shm key)
CUDA_SHM = 2     # a client-registered CUDA IPC region (region = base64 cudaIpcMemHandle_t)


class TensorRef(msgspec.Struct, array_like=True, omit_defaults=True):
    """A tensor living in shared memory: ``nbytes`` bytes at ``offset`` of segment ``region``."""

    name: str
    dtype: str                 # protocol datatype: "FP32", "BYTES", "BF16", ...
    shape: list[int]
    region: str                # POSIX shm name (server/client) or CUDA region name
    offset: int
    nbytes: int
    kind: int = SERVER_SHM
    device: int = -1           # CUDA device id for CUDA_SHM
    # Client regions only: the frontend's registration number. Workers cache
    # mappings by (region, gen), so a key unregistered and registered again
    # (maybe a new segment under the old name) never reuses a stale mapping.
    gen: int = 0
    # BYTES staged by the frontend only: the element length table (one LE uint32
    # per element, shm/lengths.py) starts this many bytes after ``offset``, past
    # the payload; 0: none. A hint the worker checks against the payload.
    lengths_at: int = 0


class OutputSpec(msgspec.Struct, array_like=True, omit_defaults=True):
    """A requested output; ``dest`` set means "write it into this client region"."""

    name: str
    dest: Optional[TensorRef] = None


class ErrorInfo(msgspec.Struct, array_like=True):
    """An error as data: ``code`` is a ``tritond.errors.Code`` value."""

    code: int
    message: str


class EnsembleAnswer(msgspec.Struct, array_like=True, omit_defaults=True):
    """On the step request of an ensemble's final step: its worker answers the ensemble's
    caller directly (rid ``rid`` at ``frontend``), as the ensemble ``model`` version
    ``version`` would: outputs renamed by ``renames`` (model output -> ensemble output),
    errors prefixed "in ensemble '<model>', " (then "in ensemble '<name>', " for each
    nested ensemble in ``within``, outermost first: the step belongs to the innermost),
    ``mapped`` (+ itself) on the final Response when ``shm`` (the request names client
    shared memory). scheduler/direct.py, workers/answers.py."""

    frontend: str
    rid: int
    model: str
    version: int
    renames: dict[str, str]
    shm: bool = False
    mapped: list[str] = []
    within: list[str] = []


class Request(msgspec.Struct, tag=1, array_like=True, omit_defaults=True):
    """One inference request, frontend -> scheduler -> worker."""

    rid: int                   # unique within the sending frontend
    frontend: str              # address to send the Response to
    model: str
    version: int
    inputs: list[TensorRef]
    outputs: list[OutputSpec] = []     # empty: all outputs of the model
    batch: int = 0                     # batch size (0: model does not batch)
    request_id: str = ""
    priority: int = 0
    timeout_us: int = 0
    correlation_id: Union[int, str] = 0
    flags: int = 0
    parameters: dict[str, Any] = {}
    arrival_ns: int = 0
    # Only for a traced request (tracing off: empty, never encoded): [trace id], then the
    # scheduler appends QUEUE_START (monotonic ns, one clock for every process).
    trace: list[int] = []
    answer: Optional[EnsembleAnswer] = None    # an ensemble's final step: answer its caller
    # A BLS exec()/async_exec() without decoupled=True: it takes one response, so a
    # decoupled model refuses it (Triton's python_backend does, before sending it).
    unary: bool = False
    # Set by the scheduler on the ensemble steps and BLS calls of a model with
    # response_cache (they never passed a frontend's lookup): its worker looks them up.
    cache: bool = False


class Cancel(msgspec.Struct, tag=2, array_like=True):
    """The client went away or its deadline passed: drop ``rid`` if still queued."""

    frontend: str
    rid: int


class Release(msgspec.Struct, tag=3, array_like=True):
    """The frontend is done with output slots of ``instance``: [region, offset] pairs."""

    instance: str
    slots: list[tuple[str, int]]


class Forget(msgspec.Struct, tag=4, array_like=True):
    """Frontend -> worker: client regions [(region, gen)] were unregistered and are no
    longer used by any request; drop their mappings (sent after the last Response)."""

    regions: list[tuple[str, int]]


class SequenceSlot(msgspec.Struct, array_like=True, omit_defaults=True):
    """Where one request of a sequence model's Execute runs (scheduler/sequence.py): its
    sequence slot on the instance, and READY. A not-ready row (direct strategy) pads an
    idle slot so that batch row i stays slot i: it is run but never answered. The worker
    makes the control tensors (START/END from ``Request.flags``, READY, CORRID from
    ``Request.correlation_id``) and the slot's implicit state from this."""

    slot: int
    ready: bool = True


class Execute(msgspec.Struct, tag=10, array_like=True, omit_defaults=True):
    """Scheduler -> worker: run these requests as one batch."""

    batch_id: int
    requests: list[Request]
    releases: list[tuple[str, int]] = []
    # Sequence models only: one per request, in order (empty otherwise).
    slots: list[SequenceSlot] = []
    # Sequence slots whose sequence ended without END (idle timeout): drop their state.
    ended: list[int] = []


class CancelRunning(msgspec.Struct, tag=11, array_like=True):
    """Scheduler -> worker: requests [(frontend, rid)] of the running batch ``batch_id``
    were cancelled; a model sees it through ``request.is_cancelled()``. From a frontend:
    ``batch_id`` -1 (its client gave up on requests the worker answers after execute
    returned) or ANSWERED (someone else gave their final answer: the worker forgets
    their streams that wait for a next step, workers/python/reschedule.py)."""

    batch_id: int
    requests: list[tuple[str, int]]
    # The scheduler counts ``batch_id`` as running (not pipelined behind it): if the worker
    # has not started it yet, the model still runs the requests and sees is_cancelled()
    # (False: a pipelined batch's, skipped by the worker if it did not start).
    running: bool = False


ANSWERED = -2        # CancelRunning.batch_id: the requests were answered elsewhere


class TraceChild(msgspec.Struct, array_like=True, omit_defaults=True):
    """The trace of a request a traced request spawned (an ensemble step, a BLS call), as
    Triton's child traces: ``ref`` numbers it within the Response that carries it,
    ``parent`` is 0 for that Response's own request, else another child's ``ref``. The
    frontend gives it a trace id when it writes the trace (tritond/tracechildren.py)."""

    ref: int
    parent: int
    model: str
    version: int
    request_id: str = ""
    stamps: list[tuple[str, int]] = []     # (Triton activity name, monotonic ns)


class Response(msgspec.Struct, tag=20, array_like=True, omit_defaults=True):
    """Worker (or scheduler, for rejections) -> requester: a result of ``rid`` (one of N
    for a decoupled model; the last one has ``final``)."""

    rid: int
    error: Optional[ErrorInfo] = None
    outputs: list[TensorRef] = []
    parameters: dict[str, Any] = {}
    instance: str = ""         # whose output slots these are (for Release)
    model_version: int = 0
    # False: more Responses follow for ``rid`` (decoupled models); its input
    # slots stay in use until the final one (tritond/inferclient.py).
    final: bool = True
    # Per output, whose slot it is, when they differ (an ensemble's outputs
    # come from several workers); empty: every output is ``instance``'s.
    owners: list[str] = []
    # True: no InferenceResponse was sent (a decoupled model's bare FINAL flag,
    # or, non-final, the marker naming the worker that answers ``rid`` later).
    empty: bool = False
    # Final Response of an ensemble request naming client shared memory: the workers
    # that ran its steps, which may map those regions (told to Forget them too).
    mapped: list[str] = []
    # A traced request's timestamps (monotonic ns) seen by the scheduler and the worker:
    # QUEUE_START, COMPUTE_START, COMPUTE_INPUT_END, COMPUTE_OUTPUT_START, COMPUTE_END.
    trace: list[int] = []
    # A traced request's child traces (its ensemble steps, its BLS calls), nested ones too.
    children: list[TraceChild] = []
    # The scheduler refused the request before queuing it (an unknown model, a full queue,
    # a sequence batcher's refusal): Triton's TRITONSERVER_ServerInferAsync failing, which
    # its HTTP generate_stream answers as plain JSON, not as a stream's first event.
    refused: bool = False


class ResponseStats(msgspec.Struct, tag=60, array_like=True):
    """Worker -> scheduler: per-response statistics of responses sent through response
    senders since the last one (Triton's ``response_stats``): rows of (response index,
    [compute_infer, compute_output, success, fail, empty_response, cancel] as
    count, ns pairs)."""

    instance: str
    rows: list[tuple[int, list[int]]]


class ExecStats(msgspec.Struct, array_like=True):
    batch_size: int
    compute_input_ns: int
    compute_infer_ns: int
    compute_output_ns: int
    start_ns: int
    end_ns: int


class Executed(msgspec.Struct, tag=21, array_like=True, omit_defaults=True):
    """Worker -> scheduler: batch ``batch_id`` finished; the instance is free again."""

    instance: str
    batch_id: int
    stats: ExecStats
    failed: list[int] = []     # rids that failed (for statistics)
    # (frontend, rid) of the requests the model released with
    # TRITONSERVER_REQUEST_RELEASE_RESCHEDULE (iterative sequences): the scheduler
    # queues them again in their sequence's slot, unanswered (scheduler/iterative.py).
    rescheduled: list[tuple[str, int]] = []
    # Response-cache lookups of Request.cache requests (workers/cachelookup.py): (rid,
    # lookup ns) of each hit (answered from the cache, not run) and (rid, lookup +
    # insertion ns) of each miss that was inserted.
    hits: list[tuple[int, int]] = []
    misses: list[tuple[int, int]] = []


# ------------------------------------------------------------- control plane


class Hello(msgspec.Struct, tag=40, array_like=True):
    """Child -> parent, first message after start: who I am and where I listen."""

    role: str                  # "frontend" | "scheduler" | "worker"
    name: str
    pid: int
    address: str
    protocol: int = PROTOCOL_VERSION


class Setup(msgspec.Struct, tag=41, array_like=True):
    """Parent -> child: the server options (declared once in ``tritond.options``)."""

    options: Options
    server_id: str
    parent: str                # parent's address
    scheduler: str             # scheduler's address
    frontends: list[str]
    cache: str = ""            # frontends, workers: the response cache's segment ("" = none)


class InstanceEntry(msgspec.Struct, array_like=True):
    """One live worker instance of a model version: where it listens and what it runs on."""

    address: str               # the worker's channel address
    name: str                  # Triton's instance name, e.g. "simple_0_1"
    kind: str                  # "CPU" | "GPU" | "MODEL"
    device_id: int
    # A Python model defining is_ready(): a model-ready query asks the instance
    # (workers/python/readiness.py); False: answered from the table alone.
    user_ready: bool = False


class ModelEntry(msgspec.Struct, array_like=True, omit_defaults=True):
    """One model version as the control plane sees it."""

    name: str
    version: int
    state: str                 # UNKNOWN | READY | UNAVAILABLE | LOADING | UNLOADING
    reason: str = ""
    spec: Optional[ModelSpec] = None   # the final config (None for name-only rows)
    instances: list[InstanceEntry] = []  # live worker instances
    model_dir: str = ""
    # False while a READY version has no live instance (all restarting): it is
    # not ready (health, index) but still accepts requests, which wait in the
    # scheduler's queue for the restart (docs/internals.md "Failures").
    live: bool = True
    # address of an instance that died and is not back yet -> "instance 'm_0'
    # (pid 42) killed by signal SIGKILL": the scheduler names it when it fails
    # the requests that instance was executing.
    exited: dict[str, str] = {}
    load_seconds: float = 0.0  # how long the version took to load (nv_model_load_duration_secs)
    # which load of the version this is: a new one (a full reload) restarts its statistics
    generation: int = 0


class ModelTable(msgspec.Struct, tag=42, array_like=True):
    """Parent -> frontend/scheduler: the full model table (sent on every change)."""

    models: list[ModelEntry]
    server_ready: bool
    seq: int = 0               # non-zero: frontends answer TableApplied(seq) once applied
    # Addresses of live workers being replaced or unloaded: the scheduler lets them
    # finish what they hold and answers the parent Drained("instance:<address>") when
    # idle; only then are they shut down (no accepted request is lost).
    retiring: list[str] = []


class Load(msgspec.Struct, tag=43, array_like=True, omit_defaults=True):
    """Parent -> worker: load this model instance."""

    model: str
    version: int
    instance: str              # instance name, e.g. "simple_0_1"
    kind: str                  # "CPU" | "GPU" | "MODEL"
    device_id: int
    spec: ModelSpec            # the config (partial when auto_complete: its config_json
    model_dir: str             # is what the backend completes)
    repository: str
    auto_complete: bool = True
    gpus: int = 0              # usable GPUs (tritond.gpus): the worker's normalisation needs it
    passive: bool = False      # instance_group passive: Triton warms up no passive instance


class Loaded(msgspec.Struct, tag=44, array_like=True):
    """Worker -> parent: ready; ``config`` is the auto-completed ModelConfig JSON."""

    instance: str
    config: str
    model: str = ""      # with version: instance names repeat across versions and models
    version: int = 0
    user_ready: bool = False   # the model defines is_ready() (InstanceEntry.user_ready)
    warmup: list[ExecStats] = []   # one per warmup run (workers/warmup.py): statistics


class WarmupStats(msgspec.Struct, tag=71, array_like=True):
    """Parent -> scheduler, right after the table that serves ``model`` ``version``: its
    instances' warmup runs (Loaded.warmup), counted in its statistics as Triton counts
    them (each run one execution of ``batch_size`` successful requests)."""

    model: str
    version: int
    runs: list[ExecStats]


class LoadFailed(msgspec.Struct, tag=45, array_like=True):
    instance: str
    error: ErrorInfo
    model: str = ""
    version: int = 0


class TableApplied(msgspec.Struct, tag=52, array_like=True):
    """Frontend -> parent: table ``seq`` is in effect (sd_notify READY=1 waits for it)."""

    address: str
    seq: int


class Drain(msgspec.Struct, tag=46, array_like=True):
    """Parent -> frontend: stop accepting new inference; answer Drained when idle."""

    deadline_s: float


class Drained(msgspec.Struct, tag=47, array_like=True):
    name: str


class Shutdown(msgspec.Struct, tag=48, array_like=True, omit_defaults=True):
    """Parent -> child: finalize and exit."""

    reason: str = ""
    # A retired worker (reload, unload): leave output segments a frontend has not released
    # linked; the parent unlinks them a little later (its responses may still be unread).
    linger: bool = False


class Stopped(msgspec.Struct, tag=49, array_like=True):
    name: str


# Control-plane questions: one tagged struct per kind, each answered by the
# typed answer named in its docstring (same ``qid``); ``frontend`` is where the
# answer goes.


class StatsQuery(msgspec.Struct, tag=50, array_like=True, omit_defaults=True):
    """Frontend -> scheduler: statistics of a model ("" = every model); -> StatsAnswer."""

    qid: int
    frontend: str
    name: str = ""
    version: str = ""
    metrics: bool = False      # also answer ModelMetrics rows (for /metrics)


class ModelMetrics(msgspec.Struct, array_like=True, omit_defaults=True):
    """Per model version figures /metrics needs beyond the statistics JSON."""

    name: str
    version: int
    pending: int = 0                       # queued, not yet executing
    failures: dict[str, int] = {}          # Triton's reason (OTHER, REJECTED, ...) -> count
    # summary_latencies=true: family ("request", "queue", ...) -> [count, sum, quantiles...]
    summaries: dict[str, list[float]] = {}
    direct: int = 0                        # ensembles: answered by the final step's worker


class LoadQuery(msgspec.Struct, tag=53, array_like=True, omit_defaults=True):
    """Frontend -> parent: (re)load a model from the repository; -> Answer."""

    qid: int
    frontend: str
    name: str
    config: str = ""           # the load API's JSON ModelConfig override ("" = none)
    files: list[str] = []      # names of 'file:' parameters (not supported: refused)


class UnloadQuery(msgspec.Struct, tag=54, array_like=True, omit_defaults=True):
    """Frontend -> parent: unload a model; -> Answer."""

    qid: int
    frontend: str
    name: str
    unload_dependents: bool = False


class ReadyQuery(msgspec.Struct, tag=56, array_like=True, omit_defaults=True):
    """Worker (a Python model's ``pb_utils.is_model_ready``) -> parent; -> Answer."""

    qid: int
    frontend: str
    name: str
    version: str = ""          # "" = any version


class UserReadyQuery(msgspec.Struct, tag=66, array_like=True, omit_defaults=True):
    """Frontend -> scheduler: is model ``name`` version ``version`` ready by its own
    ``is_ready()`` (every instance asked, scheduler/userready.py); -> Answer."""

    qid: int
    frontend: str
    name: str
    version: int


class UserReadyCheck(msgspec.Struct, tag=67, array_like=True):
    """Scheduler -> a worker's readiness channel: call the model's is_ready(); -> UserReadyReply."""

    qid: int
    scheduler: str


class UserReadyReply(msgspec.Struct, tag=68, array_like=True, omit_defaults=True):
    """Worker -> scheduler: what ``is_ready()`` said for check ``qid`` (an exception or a
    non-bool: ``error``, which makes the model not ready)."""

    instance: str
    qid: int
    ready: bool = False
    error: Optional[ErrorInfo] = None


class Answer(msgspec.Struct, tag=51, array_like=True, omit_defaults=True):
    """The answer to a LoadQuery / UnloadQuery / ReadyQuery: done, or the error."""

    qid: int
    error: Optional[ErrorInfo] = None
    ready: bool = False        # ReadyQuery: whether the model (version) is ready


class StatsAnswer(msgspec.Struct, tag=55, array_like=True, omit_defaults=True):
    """The answer to a StatsQuery: Triton's statistics JSON (``{"model_stats": [...]}``)."""

    qid: int
    stats: dict[str, Any] = {}
    error: Optional[ErrorInfo] = None
    metrics: list[ModelMetrics] = []       # when the query asked for them


class LogLevels(msgspec.Struct, tag=65, array_like=True, omit_defaults=True):
    """The logging API changed what is logged: frontend -> parent -> every other process
    (tritond/loglevels.py). From a frontend it is a query: the parent answers ``Answer(qid)``
    once it has posted the change to every child and the scheduler, given it with the
    parent's ``qid`` and address, has passed it on to its workers and said
    ``Drained("loglevels:<qid>")``."""

    info: bool
    warning: bool
    error: bool
    verbose: int
    qid: int = 0
    frontend: str = ""
    format: str = ""        # the log line's format ("default", "ISO8601"); "" = unchanged


class FrontendStatsQuery(msgspec.Struct, tag=64, array_like=True):
    """Frontend -> another frontend: its own counters (/metrics and statistics sum
    every frontend's); -> FrontendStatsAnswer."""

    qid: int
    frontend: str


class FrontendStatsAnswer(msgspec.Struct, tag=57, array_like=True, omit_defaults=True):
    """One frontend's counters: ``cache`` rows [model, version, hits, hit ns, misses,
    miss ns, hit request ns]; ``first`` rows [model, version, bucket counts..., sum ms];
    ``summaries`` (summary_latencies=true) rows [model, version, "hit"|"miss", count,
    sum us, live observations...]."""

    qid: int
    cache: list[list] = []
    first: list[list] = []
    error: Optional[ErrorInfo] = None
    summaries: list[list] = []


class SettingsUpdate(msgspec.Struct, tag=63, array_like=True, omit_defaults=True):
    """Frontend -> the other frontends: a /v2/logging or trace settings update it applied
    (already validated), so every frontend reports the same; -> Answer."""

    qid: int
    frontend: str
    kind: str                  # "log" | "trace"
    model: str = ""
    update: dict[str, Any] = {}


class ShmRegion(msgspec.Struct, array_like=True):
    """One client shared-memory registration as the parent's registry holds it."""

    name: str
    kind: str                  # "system" | "cuda"
    key: str                   # POSIX key, or the base64 cudaIpcMemHandle_t
    offset: int
    byte_size: int
    device_id: int
    gen: int                   # registration number, never reused (mapping caches key on it)
    # Unregistered while some frontend's requests still use it (Triton's awaiting
    # unregistration): listed and usable everywhere until every frontend said ShmIdle.
    awaiting: bool = False


class ShmRegisterQuery(msgspec.Struct, tag=58, array_like=True):
    """Frontend -> parent: add a registration the frontend checked; -> Answer once every
    frontend applied the new ShmTable (ALREADY_EXISTS when the name is taken)."""

    qid: int
    frontend: str
    region: ShmRegion          # gen is the parent's to fill in


class ShmUnregisterQuery(msgspec.Struct, tag=59, array_like=True):
    """Frontend -> parent: remove a registration ("" = every one of ``kind``); -> Answer."""

    qid: int
    frontend: str
    kind: str
    name: str = ""


class ShmTable(msgspec.Struct, tag=61, array_like=True):
    """Parent -> every frontend: all client shm registrations; answered by ShmApplied."""

    regions: list[ShmRegion]
    seq: int


class ShmApplied(msgspec.Struct, tag=62, array_like=True):
    """Frontend -> parent: ShmTable ``seq`` is in effect here."""

    address: str
    seq: int


class ShmIdle(msgspec.Struct, tag=69, array_like=True):
    """Frontend -> parent: no request of this frontend uses awaiting registration ``gen``
    (sent once per frontend and registration); the last one lets the parent drop it."""

    address: str
    gen: int


class SequenceNote(msgspec.Struct, array_like=True):
    """One live sequence a frontend saw: its last request (CLOCK_MONOTONIC ns, the same in
    every process of the host), its idle timeout (ns, 0 = none), or its END."""

    model: str
    corrid: Union[int, str]
    last_ns: int
    idle_ns: int
    ended: bool = False


class SequenceNotes(msgspec.Struct, tag=70, array_like=True):
    """Frontend -> the other frontends while draining: the sequences it saw go on or end,
    so a sequence continued through another connection is served there too."""

    frontend: str
    notes: list[SequenceNote]


class Unknown(msgspec.Struct, tag=99, array_like=True):
    """Sent back to the sender of a message the receiver could not decode or does
    not accept (when the sender is known; it is logged either way)."""

    detail: str


TO_FRONTEND = Union[Response, Setup, ModelTable, Drain, Shutdown, Answer, StatsAnswer,
                    FrontendStatsQuery, FrontendStatsAnswer, ShmTable, SettingsUpdate, LogLevels,
                    SequenceNotes, Unknown]
# Response: answers to the step requests of ensembles (scheduler/ensembles.py), and the
# receipts of direct answers (scheduler/direct.py).
TO_SCHEDULER = Union[Request, Cancel, Release, Executed, Setup, ModelTable, Shutdown, StatsQuery,
                     Response, ResponseStats, LogLevels, UserReadyQuery, UserReadyReply,
                     WarmupStats, Unknown]
# A Python model's readiness channel (workers/python/readiness.py).
TO_READINESS = Union[UserReadyCheck, Unknown]
TO_WORKER = Union[Execute, CancelRunning, Release, Forget, Setup, Load, Shutdown, LogLevels,
                  Unknown]
TO_PARENT = Union[Hello, Loaded, LoadFailed, Drained, Stopped, LoadQuery, UnloadQuery,
                  ReadyQuery, TableApplied, ShmRegisterQuery, ShmUnregisterQuery, ShmApplied,
                  ShmIdle, LogLevels, Unknown]
ANY = Union[Request, Cancel, Release, Forget, Execute, CancelRunning, Response, Executed, Hello,
            Setup, ModelTable, Load, Loaded, LoadFailed, Drain, Drained, Shutdown, Stopped,
            StatsQuery, LoadQuery, UnloadQuery, ReadyQuery, Answer, StatsAnswer, TableApplied,
            ResponseStats, FrontendStatsQuery, FrontendStatsAnswer, ShmRegisterQuery,
            ShmUnregisterQuery, ShmTable, ShmApplied, ShmIdle, SettingsUpdate, LogLevels,
            UserReadyQuery, UserReadyCheck, UserReadyReply, SequenceNotes, WarmupStats, Unknown]
"""Every message: what an inbox tries when its own set fails, to name the mistake."""

ANSWERS = (Answer, StatsAnswer, FrontendStatsAnswer)

# The field of a message that names its sender's address (where Unknown goes).
SENDER = {Request: "frontend", Cancel: "frontend", StatsQuery: "frontend",
          LoadQuery: "frontend", UnloadQuery: "frontend", Hello: "address",
          TableApplied: "address", FrontendStatsQuery: "frontend",
          ShmRegisterQuery: "frontend", ShmUnregisterQuery: "frontend", ShmApplied: "address",
          SettingsUpdate: "frontend", UserReadyQuery: "frontend", UserReadyCheck: "scheduler",
          UserReadyReply: "instance",
          Executed: "instance", Response: "instance",
          Setup: "parent"}


def sender(msg) -> str:
    """The address ``msg`` names as its sender ("" when it names none)."""
    field = SENDER.get(type(msg))
    return getattr(msg, field) if field else ""

_encoder = msgspec.msgpack.Encoder()


def encode(messages: list) -> bytes:
    """Encode a list of messages as one frame payload."""
    return _encoder.encode(messages)


def decoder(union) -> msgspec.msgpack.Decoder:
    """A decoder for one channel's closed set (``tritond.decoding`` decodes inboxes)."""
    return msgspec.msgpack.Decoder(list[union])
