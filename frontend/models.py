"""The frontend's view of the model table, with per-version validation tables.

The parent sends the whole ``messages.ModelTable`` on every change; we rebuild
everything here (rare) so that ``resolve()`` and the input checks on the hot
path are plain dict lookups (no per-request config walking).
"""
from __future__ import annotations

import logging
import os
import re
from typing import Optional

from tritond import messages, namespaces
from tritond import spec as ts
from tritond.errors import TritonError, invalid_arg, not_found, unavailable
from tritond.inputrules import InputRules
from tritond.shm import dtypes

READY = "READY"
log = logging.getLogger("tritond.frontend")


class TensorSpec:
    """One config input/output (``tritond.spec.TensorSpec``), pre-digested for
    validation and metadata."""

    __slots__ = ("name", "datatype", "dims", "optional", "shape_tensor", "wildcard",
                 "elem_size", "ragged", "label_filename")

    def __init__(self, spec: ts.TensorSpec):
        self.name: str = spec.name
        self.datatype: str = spec.datatype
        self.dims: tuple = spec.dims
        self.optional: bool = spec.optional
        self.shape_tensor: bool = spec.is_shape_tensor
        self.ragged: bool = spec.allow_ragged_batch
        self.label_filename: str = spec.label_filename
        self.wildcard: bool = -1 in self.dims       # False: compare tuples directly
        self.elem_size: Optional[int] = dtypes.element_size(self.datatype)

    def metadata(self, batching: bool) -> dict:
        shape = [-1, *self.dims] if batching else list(self.dims)
        return {"name": self.name, "datatype": self.datatype, "shape": shape}


_NO_SPEC = ts.ModelSpec("")


class ModelVersion:
    """One version of one model: state plus everything the infer path needs."""

    __slots__ = ("name", "key", "version", "version_str", "state", "reason", "spec", "max_batch_size",
                 "load_seconds",
                 "inputs", "rules", "outputs", "decoupled", "platform", "instances", "metadata",
                 "live", "preserve_ordering", "labels", "response_cache", "signatures",
                 "sequence")

    def __init__(self, entry: messages.ModelEntry):
        self.key = entry.name           # the scheduler's key (tritond/namespaces.py)
        self.name = namespaces.name_of(entry.name)
        self.version = entry.version
        self.version_str = str(entry.version)
        self.state = entry.state
        self.reason = entry.reason
        self.instances = list(entry.instances)
        # READY but every instance restarting: not ready (health, index), yet
        # requests are still accepted and wait in the scheduler for the restart.
        self.live = entry.live
        self.load_seconds = entry.load_seconds
        spec = self.spec = entry.spec or _NO_SPEC
        self.max_batch_size = spec.max_batch_size
        self.inputs = {i.name: TensorSpec(i) for i in spec.inputs}
        self.rules = InputRules(spec)  # the input checks' tables (frontend/validate.py)
        self.outputs = {o.name: TensorSpec(o) for o in spec.outputs}
        self.decoupled = spec.decoupled
        dyn = spec.dynamic_batching     # preserve_ordering: enforced by frontend/ordering.py
        seq = spec.sequence_batching    # (oldest strategy's preserve_ordering)
        self.preserve_ordering = (dyn is not None and dyn.preserve_ordering) or (
            seq is not None and seq.preserve_ordering)
        # its requests are batched by the sequence batcher: they ride their turn's
        # frame to the scheduler whole (InferClient.submit's ``batched``)
        self.sequence = seq is not None
        self.platform = spec.platform or spec.backend
        self.response_cache = '"response_cache"' in spec.config_json and _cache_enabled(spec)
        self.labels: dict[str, list[str]] = {}     # classification labels per output
        # Input signatures that passed validation (frontend/validate.py): a new
        # ModelVersion per model table, so a reload starts with none.
        self.signatures: dict[tuple, tuple] = self.rules.passed
        batching = self.max_batch_size > 0
        self.metadata = {
            "name": self.name, "versions": [self.version_str], "platform": self.platform,
            "inputs": [s.metadata(batching) for s in self.inputs.values()],
            "outputs": [s.metadata(batching) for s in self.outputs.values()],
        }

    @property
    def config_json(self) -> str:
        """Triton's JSON rendering of the config (``/v2/models/<m>/config``)."""
        return self.spec.config_json


class Models:
    """Name/version lookup with Triton's lookup errors."""

    def __init__(self, namespacing: bool = False) -> None:
        # --model-namespacing: Triton answers an unknown name INVALID_ARG (its lookup
        # across namespaces fails before any model is asked), otherwise NOT_FOUND.
        self._unknown_error = invalid_arg if namespacing else not_found
        self._namespacing = namespacing
        self._by_name: dict[str, list[str]] = {}       # name -> keys with a version
        self._dirs: dict[str, str] = {}                # name -> model directory
        self.server_ready = False
        self._versions: dict[str, dict[int, ModelVersion]] = {}
        self._latest: dict[str, ModelVersion] = {}     # highest READY version per name
        self._names: list[str] = []                    # every name, incl. never loaded
        # Label files per (model dir, config JSON): read once per load, not per table.
        self._labels: dict[tuple[str, str], dict[str, list[str]]] = {}

    def ready(self) -> list[ModelVersion]:
        """Every READY version (/metrics)."""
        return [mv for by_version in self._versions.values() for mv in by_version.values()
                if mv.state == READY]

    def load_seconds(self) -> dict[tuple[str, str], float]:
        """(name, version) -> load duration of every READY version (/metrics)."""
        return {(mv.key, mv.version_str): mv.load_seconds
                for by_version in self._versions.values() for mv in by_version.values()
                if mv.state == READY}

    def update(self, table: messages.ModelTable) -> None:
        """Replace the whole view (the parent always sends the full table)."""
        versions: dict[str, dict[int, ModelVersion]] = {}
        names: dict[str, None] = {}
        labels: dict[tuple[str, str], dict[str, list[str]]] = {}
        dirs: dict[str, str] = {}
        for entry in table.models:
            names[entry.name] = None
            if entry.model_dir:
                dirs[entry.name] = entry.model_dir
            if entry.version < 0:       # listed in the repository, never loaded
                continue
            mv = versions.setdefault(entry.name, {})[entry.version] = ModelVersion(entry)
            if entry.model_dir and entry.spec is not None:
                key = (entry.model_dir, entry.spec.config_json)
                if key not in labels:
                    labels[key] = self._labels.get(key) or _read_labels(mv, entry.model_dir)
                mv.labels = labels[key]
        self._labels, self._dirs = labels, dirs
        latest = {}
        for name, by_version in versions.items():
            ready = [v for v in by_version.values() if v.state == READY]
            if ready:
                latest[name] = max(ready, key=lambda v: v.version)
        self._versions, self._latest, self._names = versions, latest, sorted(names)
        # Triton's global map drops an unloaded model (a failed one stays in it)
        self._by_name = namespaces.index(k for k, by_version in versions.items() if any(
            v.reason != "unloaded" for v in by_version.values())) if self._namespacing else {}
        self.server_ready = table.server_ready

    def key(self, name: str) -> str:
        """The key of a client's model name (--model-namespacing; tritond/namespaces.py):
        Triton's INVALID_ARG when no namespace serves it (a key is no client's name) or
        when several do (the ambiguity error)."""
        if not self._namespacing:
            return name
        found = namespaces.resolve(name, self._by_name) if "/" not in name else None
        if found is None:
            raise self._unknown_error(f"Request for unknown model: '{name}' is not found")
        return found

    def resolve(self, name: str, version: str = "", by_key: bool = False) -> ModelVersion:
        """The READY version a request runs on; NOT_FOUND / UNAVAILABLE / INVALID_ARG otherwise.
        ``by_key``: ``name`` is already a key (an ensemble step's)."""
        key = name if by_key else self.key(name)
        if not version:
            mv = self._latest.get(key)
            if mv is not None:
                return mv
            shown = namespaces.name_of(key)    # never the repository path a key carries
            if key not in self._versions:
                raise self._unknown_error(f"Request for unknown model: '{shown}' is not found")
            raise not_found(f"Request for unknown model: '{shown}' has no available versions")
        mv = self.lookup(key, version, by_key=True)
        if mv.state != READY:
            raise unavailable(
                f"Request for unknown model: '{namespaces.name_of(key)}' version {version} is not at ready state")
        return mv

    def lookup(self, name: str, version: str, by_key: bool = False) -> ModelVersion:
        """A named version in any state (NOT_FOUND if absent)."""
        key = name if by_key else self.key(name)
        by_version = self._versions.get(key)
        if by_version is None:
            raise self._unknown_error(
                f"Request for unknown model: '{namespaces.name_of(key)}' is not found")
        v = parse_version(version)
        mv = by_version.get(v)
        if mv is None:
            raise not_found(f"Request for unknown model: '{namespaces.name_of(key)}' "
                            f"version {v} is not found")
        return mv

    def namespaces(self, repositories: list[str]) -> dict[str, tuple[str, str]]:
        """Metrics ``model`` label (a key, or a name only one namespace serves) ->
        (model name, the repository its directory is in)."""
        out = {}
        for key, model_dir in self._dirs.items():
            name = namespaces.name_of(key)
            repo = next((r for r in repositories if os.path.join(r, name) == model_dir), None)
            out[key] = (name, repo if repo is not None else os.path.dirname(model_dir))
        for name, keys in namespaces.index(self._dirs).items():
            if len(keys) == 1:
                out.setdefault(name, out[keys[0]])
        return out

    def is_ready(self, name: str, version: str = "") -> bool:
        """False for a known model that is not ready; NOT_FOUND for an unknown one."""
        name = self.key(name)
        if name not in self._versions:
            raise self._unknown_error(f"Request for unknown model: '{name}' is not found")
        if not version:
            mv = self._latest.get(name)
            return mv is not None and mv.live
        by_version = self._versions[name]
        mv = by_version.get(parse_version(version))
        return mv is not None and mv.state == READY and mv.live

    def names(self) -> dict:
        """Names with at least one loaded (or failed) version."""
        return self._by_name if self._namespacing else self._versions

    def ready_versions(self, name: str) -> list[ModelVersion]:
        return sorted((v for v in self._versions.get(self.key(name), {}).values() if v.state == READY),
                      key=lambda v: v.version)

    def all_versions(self) -> list[ModelVersion]:
        return [v for n in sorted(self._versions) for _, v in sorted(self._versions[n].items())]

    def index(self, ready_only: bool = False) -> list[dict]:
        """Repository index rows: name-only rows for models never loaded."""
        rows = []
        for name in self._names:
            by_version = self._versions.get(name)
            if not by_version:
                if not ready_only:
                    rows.append({"name": namespaces.name_of(name)})
                continue
            for v in sorted(by_version):
                mv = by_version[v]
                state = mv.state if mv.live else "UNAVAILABLE"
                if ready_only and state != READY:
                    continue
                row = {"name": mv.name}
                if mv.version > 0:      # 0: the model failed before any version (Triton: none)
                    row["version"] = mv.version_str
                row["state"] = state
                if mv.reason:
                    row["reason"] = mv.reason
                rows.append(row)
        return rows

    def all_ready(self) -> bool:
        """Strict readiness: every version READY, except those unloaded on purpose."""
        return all(v.state == READY or v.reason == "unloaded"
                   for by_version in self._versions.values() for v in by_version.values())


def _cache_enabled(spec: ts.ModelSpec) -> bool:
    """``response_cache { enable: true }`` (read from the config JSON: rare, per table)."""
    import json

    try:
        return bool(json.loads(spec.config_json).get("response_cache", {}).get("enable"))
    except (ValueError, AttributeError):
        return False


def _read_labels(mv: ModelVersion, model_dir: str) -> dict[str, list[str]]:
    """The label files named by ``mv``'s outputs (the parent already checked them at
    load; a file removed since then only costs the labels, never the model)."""
    from tritond.repository import read_labels

    outputs = [(o.name, o.label_filename) for o in mv.outputs.values()]
    if not any(f for _, f in outputs):
        return {}
    try:
        return read_labels(model_dir, mv.name, outputs)
    except TritonError as exc:
        log.warning("model '%s': no classification labels: %s", mv.name, exc.message)
        return {}


_STOL = re.compile(r"\s*([+-]?[0-9]+)")     # what std::stol reads: leading digits


# Worker output arenas: /tritond-<server id>-<pid>-w<N>[-x<k> for one-off overflow segments].
def parse_version(version: str) -> int:
    """A version string as Triton parses it (std::stol, then negative is INVALID_ARG)."""
    m = _STOL.match(version) if isinstance(version, str) else None
    v = int(m.group(1)) if m else None
    if v is None or not -2**63 <= v < 2**63:          # stol's invalid_argument / out_of_range
        raise invalid_arg(f"failed to get model version from specified version string "
                          f"'{version}' (details: stol), version should be an integral value > 0")
    if v < 0:
        raise invalid_arg(f"invalid model version specified '{version}' , version should be an "
                          f"integral value > 0")
    return v
