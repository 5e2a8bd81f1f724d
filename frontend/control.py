"""The control plane of a frontend: health, metadata, statistics, model control, settings.

Everything here answers from the model table the parent publishes or asks
another process (statistics from the scheduler, load/unload from the parent)
with a ``Query`` and awaits its ``Answer``.
"""
from __future__ import annotations

import asyncio

from tritond import messages
from tritond.namespaces import name_of
from tritond.errors import TritonError, invalid_arg, unavailable

from .models import READY, parse_version
from .settings import LogSettings

TRITON_VERSION = "2.51.0"     # the Triton release whose protocol tritond speaks
# Only what really works end to end, in Triton's order (core's server.cc: classification,
# sequence, model_repository, ..., statistics, trace, logging). "trace": the settings
# protocol (/v2/trace/setting) drives the frontend's tracer (trace.py).
EXTENSIONS = ["classification", "sequence", "model_repository", "model_repository(unload_dependents)",
              "schedule_policy", "model_configuration", "binary_tensor_data", "parameters",
              "statistics", "trace", "logging"]
# Triton core's texts (server.cc) for a server that is stopping.
SERVER_EXITING, SERVER_NOT_READY = "Server exiting", "Server not ready"
_POLLING = "explicit model load / unload is not allowed if polling is enabled"


class ControlPlane:
    """Health, metadata, statistics and model control of one frontend (a member of FrontendCore)."""

    def __init__(self, options: dict, models, post, address: str, scheduler: str, parent: str,
                 shm, responses=None, first_response=None, peers: list[str] = ()) -> None:
        self.options = options
        self.models = models
        self.shm = shm                  # for the shared-memory extensions it reports
        self.responses = responses      # the response cache (cache.py): its statistics
        self.first_response = first_response   # firstresponse.py: this frontend's histogram
        self.peers = list(peers)        # the other frontends (--frontend-processes)
        self._post = post
        self.address = address
        self._scheduler = scheduler
        self._parent = parent
        self._queries: dict[int, asyncio.Future] = {}
        self._next_id = 1
        self.draining = False           # set by the process shell on Drain
        self.logs = LogSettings(options)
        self.traces = None              # settings.TraceSettings, set by FrontendCore

    async def _query(self, addr: str, kind: type, /, timeout: float = 30.0, **fields):
        """Post a ``kind`` query (messages.StatsQuery, ...) and return its typed answer."""
        qid = self._next_id
        self._next_id = qid + 1
        fut = asyncio.get_running_loop().create_future()
        self._queries[qid] = fut
        self._post(addr, kind(qid=qid, frontend=self.address, **fields))
        try:
            answer = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise unavailable(f"no answer to {kind.__name__} within {timeout:g} s") from None
        finally:
            self._queries.pop(qid, None)
        if answer.error is not None:
            raise TritonError(answer.error.code, answer.error.message)
        return answer

    query = _query       # for the members that ask the parent (client shm registry)

    async def peer_stats(self) -> tuple[list, list, list]:
        """(every frontend's response cache rows, the other frontends' first-response
        rows, every frontend's cache summary rows). Each frontend counts what it served in plain integers (no shared write
        on the hot path); a scrape or a statistics call asks the others, which costs
        a round trip per frontend only when someone reads them."""
        cache = self.responses.rows() if self.responses is not None else []
        first: list = []
        summaries = self.responses.summary_rows() if self.responses is not None else []
        if self.peers:
            answers = await asyncio.gather(*(
                self._query(p, messages.FrontendStatsQuery, timeout=10.0) for p in self.peers))
            for answer in answers:
                cache += answer.cache
                first += answer.first
                summaries += answer.summaries
        return cache, first, summaries

    def on_answer(self, msg: messages.Answer) -> None:
        fut = self._queries.pop(msg.qid, None)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def server_live(self) -> bool:
        """Triton's IsLive/IsReady once ServerStop ran (a drain): an UNAVAILABLE error."""
        if self.draining:
            raise unavailable(SERVER_EXITING)
        return True

    def server_ready(self) -> bool:
        if self.draining:
            raise unavailable(SERVER_EXITING)
        return self.models.server_ready

    async def server_ready_asked(self) -> bool:
        """The health endpoints' answer: with --strict-readiness Triton also asks every
        READY model's runtime readiness, so a Python model's own ``is_ready()`` saying no
        makes the server not ready (only models that define it cost a round trip)."""
        if not self.server_ready() or not self.options.strict_readiness:
            return self.models.server_ready
        asked = [mv for mv in self.models.all_versions()
                 if mv.state == READY and any(i.user_ready for i in mv.instances)]
        if not asked:
            return True
        answers = await asyncio.gather(*(self._user_ready(mv) for mv in asked))
        return all(answers)

    async def _user_ready(self, mv) -> bool:
        answer = await self._query(self._scheduler, messages.UserReadyQuery,
                                   name=mv.key, version=mv.version)
        return answer.ready

    def server_metadata(self) -> dict:
        ext = list(EXTENSIONS)
        at = ext.index("model_configuration") + 1     # Triton's order
        ext[at:at] = self.shm.extensions()
        return {"name": self.options.id, "version": TRITON_VERSION,
                "extensions": ext}

    async def model_ready(self, name: str, version: str = "") -> bool:
        """Triton's ModelIsReady (releases up to r26.06): an unknown, never loaded or
        unloaded model is simply not ready (gRPC OK with ready=false, HTTP 400); only a
        bad version string or a server shutting down is an error. A Python model that
        defines ``is_ready()`` is also asked, every instance (scheduler/userready.py)."""
        if version:
            parse_version(version)
        if self.draining:
            raise unavailable(SERVER_NOT_READY)
        if name not in self.models.names() or not self.models.is_ready(name, version):
            return False
        mv = self.models.resolve(name, version)
        if not any(i.user_ready for i in mv.instances):
            return True
        return await self._user_ready(mv)

    def model_metadata(self, name: str, version: str = "") -> dict:
        mv = self.models.resolve(name, version)
        if version:
            return mv.metadata
        versions = [v.version_str for v in self.models.ready_versions(name)]
        return {**mv.metadata, "versions": versions}

    def model_config(self, name: str, version: str = "") -> str:
        """Triton's JSON rendering of the config (a string made once by the parent)."""
        return self.models.resolve(name, version).config_json or "{}"

    async def model_statistics(self, name: str = "", version: str = "") -> dict:
        if version:
            # Triton reads it with std::stol ("01", " 1" and "1.0" are 1) before it looks
            # at the name: a bad version string fails even for every model's statistics
            version = str(parse_version(version))
        if name:
            # Triton's two texts: no ready version at all, else the named one not ready
            known = name in self.models.names()
            if not (known and self.models.is_ready(name)):
                raise invalid_arg(f"requested model '{name}' is not available")
            if version and not self.models.is_ready(name, version):
                raise invalid_arg(f"requested model version is not available for model '{name}'")
        answer = await self._query(self._scheduler, messages.StatsQuery,
                                   name=self.models.key(name) if name else "", version=version)
        for entry in answer.stats.get("model_stats", ()):    # keys -> names (namespaces.py)
            entry["name"] = name_of(entry["name"])
        return await self._with_cache(answer.stats)

    async def _with_cache(self, stats: dict, peers: tuple | None = None) -> dict:
        if self.responses is None:
            return stats
        enabled = self.responses.enabled(self.models)
        if not enabled:
            return stats
        rows = (peers or await self.peer_stats())[0]
        return self.responses.merge(stats, enabled, rows)

    def cached_versions(self) -> set:
        """(model, version) whose responses are cached (their nv_cache_* metrics)."""
        return self.responses.enabled(self.models) if self.responses is not None else set()

    async def metrics_snapshot(self) -> tuple[dict, list, list, list]:
        """Statistics of every model plus the scheduler's ModelMetrics rows, the other
        frontends' first-response rows and every frontend's cache summary rows
        (/metrics: one scrape sums every frontend)."""
        answer = await self._query(self._scheduler, messages.StatsQuery, metrics=True)
        peers = await self.peer_stats()
        return (await self._with_cache(answer.stats, peers), answer.metrics, peers[1],
                peers[2])

    def repository_index(self, ready: bool = False) -> list[dict]:
        if self.draining:          # Triton's RepositoryIndex checks the server state first
            raise unavailable(SERVER_NOT_READY)
        return self.models.index(ready)

    async def load_model(self, name: str, parameters: dict) -> None:
        if self.draining:          # before the mode: Triton's LoadModel order
            raise unavailable(SERVER_NOT_READY)
        if self.options.model_control_mode != "explicit":
            raise unavailable(_POLLING)
        config = parameters.get("config")
        if config is not None and not isinstance(config, str):
            raise invalid_arg("the 'config' parameter must be a string holding JSON")
        await self._model_control(messages.LoadQuery, name=name, config=config or "",
                                  files=sorted(k for k in parameters if k.startswith("file:")))

    async def unload_model(self, name: str, parameters: dict) -> None:
        # Only a JSON true (Triton's AsBool; gRPC checks the bool_param on its side):
        # "false" is no request to unload the ensembles using the model.
        if self.draining:
            raise unavailable(SERVER_NOT_READY)
        await self._model_control(messages.UnloadQuery, name=name,
                                  unload_dependents=parameters.get("unload_dependents") is True)

    async def _model_control(self, kind: type, **fields) -> None:
        if self.options.model_control_mode != "explicit":
            raise unavailable(_POLLING)
        # The parent answers once every frontend has applied the new model table.
        await self._query(self._parent, kind, timeout=float(self.options.model_load_timeout_s),
                          **fields)

    # ------------------------------------------------------------------ settings

    async def log_settings(self, update: dict | None = None) -> dict:
        """Answered once every process logs as asked: the other frontends applied it
        (SettingsUpdate) and the parent passed it on to the other processes (LogLevels)."""
        values = self.logs.update(update)
        if update:
            await self._tell_peers("log", "", update)
            if self._parent:
                await self._query(self._parent, messages.LogLevels, info=values["log_info"],
                                  warning=values["log_warning"], error=values["log_error"],
                                  verbose=values["log_verbose_level"],
                                  format=values["log_format"])
        return values

    async def trace_settings(self, model: str = "", update: dict | None = None) -> dict:
        if model and not (model in self.models.names() and self.models.is_ready(model)):
            raise invalid_arg(f"Request for unknown model : {model}")
        values = self.traces.update(model, update)
        if update:
            await self._tell_peers("trace", model, update)
        return values

    async def _tell_peers(self, kind: str, model: str, update: dict) -> None:
        """Settings are per process; the other frontends apply the same update before
        the caller is answered, so a read through any connection agrees."""
        if self.peers:
            await asyncio.gather(*(self._query(p, messages.SettingsUpdate, timeout=10.0,
                                               kind=kind, model=model, update=update)
                                   for p in self.peers))

    def apply_settings(self, msg: messages.SettingsUpdate) -> messages.Answer:
        """A peer's update (validated there; checked again here all the same)."""
        try:
            if msg.kind == "log":
                self.logs.update(msg.update)
            else:
                self.traces.update(msg.model, msg.update)
        except TritonError as exc:
            return messages.Answer(msg.qid, messages.ErrorInfo(int(exc.code), exc.message))
        return messages.Answer(msg.qid)
