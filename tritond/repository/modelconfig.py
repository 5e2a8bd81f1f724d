"""ModelConfig parsing and rendering (config.pbtxt, Triton's JSON form).

The control plane parses ``config.pbtxt`` into a
:class:`tritond.protos.model_config_pb2.ModelConfig`; between processes a
config travels as a typed ``tritond.spec.ModelSpec`` (built by
``tritond.repository.spec``) that carries Triton's JSON rendering
(:func:`to_json`) for the clients that ask for it.
"""
from __future__ import annotations

import json
import re
from typing import Any

from google.protobuf import json_format, text_format
from google.protobuf.descriptor import FieldDescriptor

from tritond import tritonjson
from tritond.errors import invalid_arg
from tritond.protos.model_config_pb2 import ModelConfig

__all__ = [
    "ModelConfig", "parse_pbtxt", "to_pbtxt", "to_json_dict", "to_json",
    "from_json", "from_dict", "protocol_dtype", "config_dtype",
]

# Paths (as key lists; "*" = every list item or map value) whose 64-bit
# integers Triton turns back into JSON numbers. Everything
# else 64-bit stays a JSON string, as protobuf writes it; that includes
# sequence_batching.state[].initial_state[].dims, which Triton's converter
# misses.
_INT64_AS_NUMBER = (
    ("input", "*", "dims"),
    ("input", "*", "reshape", "shape"),
    ("output", "*", "dims"),
    ("output", "*", "reshape", "shape"),
    ("version_policy", "specific", "versions"),
    ("dynamic_batching", "max_queue_delay_microseconds"),
    ("dynamic_batching", "priority_levels"),
    ("dynamic_batching", "default_priority_level"),
    ("dynamic_batching", "default_queue_policy", "default_timeout_microseconds"),
    ("dynamic_batching", "priority_queue_policy", "*", "default_timeout_microseconds"),
    ("sequence_batching", "max_sequence_idle_microseconds"),
    ("sequence_batching", "oldest", "max_queue_delay_microseconds"),
    ("sequence_batching", "direct", "max_queue_delay_microseconds"),
    ("sequence_batching", "state", "*", "dims"),
    ("ensemble_scheduling", "step", "*", "model_version"),
    ("model_warmup", "*", "inputs", "*", "dims"),
)

_PARSE_POSITION = re.compile(r"^\d+:\d+ : ")


def parse_pbtxt(text: str, path: str) -> ModelConfig:
    """Parse config.pbtxt text; errors are INVALID_ARG naming path and line."""
    cfg = ModelConfig()
    try:
        text_format.Parse(text, cfg)
    except text_format.ParseError as exc:
        detail = _PARSE_POSITION.sub("", str(exc))
        where = f" at line {exc.GetLine()}" if exc.GetLine() else ""
        if exc.GetColumn():
            where += f", column {exc.GetColumn()}"
        raise invalid_arg(
            f"failed to parse model configuration '{path}'{where}: {detail}") from None
    return cfg


def to_pbtxt(cfg: ModelConfig) -> str:
    """Render a config as protobuf text format (config.pbtxt)."""
    return text_format.MessageToString(cfg)


def to_json_dict(cfg: ModelConfig) -> dict[str, Any]:
    """Triton's JSON rendering of a config, as a dict."""
    data = json_format.MessageToDict(
        cfg,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    for path in _INT64_AS_NUMBER:
        _numbers_at(data, path)
    # protobuf lists set fields first; Triton's (C++) JSON keeps declaration order, at
    # every level (Triton's L0_config_json greps nested objects as text).
    return _declared_order(data, cfg.DESCRIPTOR)


def _declared_order(data: dict[str, Any], desc) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in desc.fields:
        if field.name not in data:
            continue
        value = data[field.name]
        if field.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                inner = field.message_type.fields_by_name["value"].message_type
                if inner is not None:
                    value = {k: _declared_order(v, inner) for k, v in value.items()}
            elif isinstance(value, list):
                value = [_declared_order(v, field.message_type) for v in value]
            elif isinstance(value, dict):
                value = _declared_order(value, field.message_type)
        elif field.type in _FLOATS:
            value = [_whole(v) for v in value] if isinstance(value, list) else _whole(value)
        out[field.name] = value
    return out


# Triton's (C++) protobuf JSON printer writes a whole float without a fraction (0, not
# 0.0; "%g": from 1e6 on it writes an exponent, left as Python writes it here).
_FLOATS = (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE)


def _whole(value):
    if type(value) is float and value.is_integer() and abs(value) < 1e6:
        return int(value)
    return value


def to_json(cfg: ModelConfig) -> str:
    """Triton's JSON rendering of a config; an empty config renders as ''."""
    if cfg.ByteSize() == 0:
        return ""
    return tritonjson.dumps(to_json_dict(cfg))


def from_json(text: str) -> ModelConfig:
    """Parse a JSON config (load API ``config`` parameter, Python auto-complete)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise invalid_arg(f"failed to parse model configuration JSON: {exc}") from None
    return from_dict(data)


def from_dict(data: dict[str, Any]) -> ModelConfig:
    """Build a config from its JSON dict; unknown fields are INVALID_ARG.

    Enum names are matched case-insensitively, as Triton's parser does.
    """
    if not isinstance(data, dict):
        raise invalid_arg(
            f"model configuration JSON must be an object, got {type(data).__name__}")
    cfg = ModelConfig()
    try:
        json_format.ParseDict(_upper_enums(data, cfg.DESCRIPTOR), cfg,
                              ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        raise invalid_arg(f"failed to parse model configuration JSON: {exc}") from None
    return cfg


def _numbers_at(node: Any, path: tuple[str, ...]) -> None:
    """Turn the 64-bit string(s) found at path under node into ints, in place."""
    if not path or node is None:
        return
    head, rest = path[0], path[1:]
    if head == "*":
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            _numbers_at(child, rest)
        return
    if not isinstance(node, dict) or head not in node:
        return
    if rest:
        _numbers_at(node[head], rest)
    elif isinstance(node[head], list):
        node[head] = [int(v) for v in node[head]]
    else:
        node[head] = int(node[head])


def _upper_enums(node: Any, desc) -> Any:
    """Copy of a JSON dict with enum names upper-cased (case-insensitive enums)."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        field = desc.fields_by_name.get(key) or _by_json_name(desc, key)
        out[key] = value if field is None else _upper_field(value, field)
    return out


def _by_json_name(desc, key: str):
    for field in desc.fields:
        if field.json_name == key:
            return field
    return None


def _upper_field(value: Any, field: FieldDescriptor) -> Any:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        if isinstance(value, dict):
            return {k: _upper_field(v, value_field) for k, v in value.items()}
        return value
    if isinstance(value, list):
        return [_upper_one(v, field) for v in value]
    return _upper_one(value, field)


def _upper_one(value: Any, field: FieldDescriptor) -> Any:
    if field.enum_type is not None and isinstance(value, str):
        return value.upper()
    if field.message_type is not None:
        return _upper_enums(value, field.message_type)
    return value


# ---- datatype spellings ----

def protocol_dtype(config_type: str) -> str:
    """Config type name to protocol datatype: "TYPE_FP32" -> "FP32"."""
    if config_type == "TYPE_STRING":
        return "BYTES"
    if not config_type.startswith("TYPE_") or config_type == "TYPE_INVALID":
        raise invalid_arg(f"unexpected model configuration data type '{config_type}'")
    return config_type[len("TYPE_"):]


def config_dtype(datatype: str) -> str:
    """Protocol datatype to config type name: "BYTES" -> "TYPE_STRING"."""
    if datatype == "BYTES":
        return "TYPE_STRING"
    name = "TYPE_" + datatype
    if datatype == "INVALID" or name not in ModelConfig.DESCRIPTOR.file.enum_types_by_name[
            "DataType"].values_by_name:
        raise invalid_arg(f"unexpected datatype '{datatype}'")
    return name
