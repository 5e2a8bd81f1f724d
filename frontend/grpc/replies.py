"""FrontendCore's JSON-shaped dicts -> gRPC response messages (and back for settings).

The core speaks Triton's HTTP JSON shapes (metadata, repository, settings,
model config); these functions only re-dress them as the gRPC messages.
"""
from __future__ import annotations

import re

from google.protobuf import json_format

from tritond.errors import invalid_arg, unsupported
from tritond.frontend.settings import LOG_FILE_FIXED
from tritond.protos import grpc_service_pb2 as pb
from tritond.protos import model_config_pb2 as mc

_Meta = pb.ModelMetadataResponse.TensorMetadata


def server_metadata(d: dict) -> pb.ServerMetadataResponse:
    return pb.ServerMetadataResponse(name=d.get("name", ""), version=d.get("version", ""),
                                     extensions=d.get("extensions", ()))


def _tensors(items) -> list:
    return [_Meta(name=t["name"], datatype=t["datatype"], shape=t["shape"]) for t in items]


def model_metadata(d: dict) -> pb.ModelMetadataResponse:
    return pb.ModelMetadataResponse(
        name=d["name"], versions=d.get("versions", ()), platform=d.get("platform", ""),
        inputs=_tensors(d.get("inputs", ())), outputs=_tensors(d.get("outputs", ())))


def model_config(text: str) -> pb.ModelConfigResponse:
    """Triton's JSON rendering of a config back into the ModelConfig proto."""
    config = json_format.Parse(text, mc.ModelConfig(), ignore_unknown_fields=True)
    return pb.ModelConfigResponse(config=config)


def model_statistics(d: dict) -> pb.ModelStatisticsResponse:
    """Triton's statistics JSON; its keys are the proto's field names."""
    return json_format.ParseDict(d, pb.ModelStatisticsResponse(), ignore_unknown_fields=True)


_INDEX_KEYS = ("name", "version", "state", "reason")


def repository_index(models: list) -> pb.RepositoryIndexResponse:
    Index = pb.RepositoryIndexResponse.ModelIndex
    return pb.RepositoryIndexResponse(
        models=[Index(**{k: m[k] for k in _INDEX_KEYS if k in m}) for m in models])


def repository_params(params) -> dict:
    """A ``map<string, ModelRepositoryParameter>`` as Python values (bytes stay bytes)."""
    out = {}
    for key, p in params.items():
        which = p.WhichOneof("parameter_choice")
        out[key] = None if which is None else getattr(p, which)
    return out


def load_params(params) -> dict:
    """Load parameters with Triton's gRPC rules: 'config' a string_param, 'file:...'
    bytes_params, nothing else."""
    out = {}
    for key, p in params.items():
        which = p.WhichOneof("parameter_choice")
        if key == "config" or key.startswith("file:"):
            want = "string_param" if key == "config" else "bytes_param"
            if which != want:
                raise invalid_arg(f"invalid value type for load parameter '{key}', "
                                  f"expected {want}.")
            out[key] = getattr(p, which)
        else:
            raise invalid_arg(f"unrecognized load parameter '{key}'.")
    return out


def unload_params(params) -> dict:
    """Unload parameters; ``unload_dependents`` must be a bool_param as in Triton."""
    p = params.get("unload_dependents")
    if p is not None and p.WhichOneof("parameter_choice") != "bool_param":
        raise invalid_arg("invalid value type for 'unload_dependents' parameter, "
                          "expected bool_param.")
    return repository_params(params)


def system_shm_status(regions: list) -> pb.SystemSharedMemoryStatusResponse:
    resp = pb.SystemSharedMemoryStatusResponse()
    for r in regions:
        s = resp.regions[r["name"]]
        s.name, s.key = r["name"], r["key"]
        s.offset, s.byte_size = r.get("offset", 0), r["byte_size"]
    return resp


def cuda_shm_status(regions: list) -> pb.CudaSharedMemoryStatusResponse:
    resp = pb.CudaSharedMemoryStatusResponse()
    for r in regions:
        s = resp.regions[r["name"]]
        s.name, s.device_id, s.byte_size = r["name"], r["device_id"], r["byte_size"]
    return resp


def trace_update(settings) -> dict | None:
    """TraceSettingRequest.settings -> the core's update dict (None: just read).

    ``trace_level`` stays a list; the other settings are single strings. A
    value with no entries clears the setting (None), like JSON ``null``.
    """
    if not settings:
        return None
    update = {}
    for key, sv in settings.items():
        values = list(sv.value)
        if not values:
            update[key] = None
        elif key == "trace_level":
            update[key] = values
        elif len(values) > 1 and key in ("trace_rate", "trace_count", "log_frequency"):
            raise invalid_arg(f"expect only 1 value for '{key}'")      # as Triton's
        else:
            update[key] = values[0]
    count = update.get("trace_count")
    if count is not None and re.fullmatch(r"\s*-\d+", count) and -(1 << 31) <= int(count) < -1:
        raise invalid_arg(f"Unable to parse 'trace_count'. Expecting value >= -1, got: {count}")
    return update


def trace_settings(d: dict) -> pb.TraceSettingResponse:
    resp = pb.TraceSettingResponse()
    for key, val in d.items():
        if val is None:
            continue
        resp.settings[key].value.extend(val if isinstance(val, list) else [str(val)])
    return resp


# Triton's gRPC LogSettings: the kind each setting's value must be (grpc_server.cc)
_LOG_KINDS = {"log_info": ("bool_param", "boolean"), "log_warning": ("bool_param", "boolean"),
              "log_error": ("bool_param", "boolean"),
              "log_verbose_level": ("uint32_param", "int32"),
              "log_format": ("string_param", "string")}


def log_update(settings) -> dict | None:
    """LogSettingsRequest.settings -> the core's update dict (None: just read), checked
    as Triton's gRPC server checks them; unknown settings are passed over."""
    if not settings:
        return None
    out = {}
    for key, sv in settings.items():
        if key == "log_file":
            raise unsupported(LOG_FILE_FIXED)
        kind = _LOG_KINDS.get(key)
        if kind is None:
            continue
        if sv.WhichOneof("parameter_choice") != kind[0]:
            raise invalid_arg(f"expect {kind[1]} for '{key}'")
        out[key] = getattr(sv, kind[0])
        if key == "log_format" and out[key] not in ("default", "ISO8601"):
            raise invalid_arg(f"invalid argument for log_format, got: {out[key]}")
    return out


def log_settings(d: dict) -> pb.LogSettingsResponse:
    """bool -> bool_param, int -> uint32_param, str -> string_param."""
    resp = pb.LogSettingsResponse()
    for key, val in d.items():
        sv = resp.settings[key]
        if isinstance(val, bool):
            sv.bool_param = val
        elif isinstance(val, int):
            sv.uint32_param = val
        else:
            sv.string_param = "" if val is None else str(val)
    return resp
