"""Every server option, declared once.

Each option has a ``tritond`` flag (tritonserver's name where Triton has one)
and a ``TRITOND_<NAME>`` environment variable; the CLI builds its parser from
this table and children receive the resolved values as a dict in ``Setup``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable


class OptionError(ValueError):
    """A bad option value; the CLI turns it into one line and exit code 2."""


_TRUE = {"true", "1", "on", "yes"}
_FALSE = {"false", "0", "off", "no"}


def parse_bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise OptionError(f"expected a boolean (true/false), got '{text}'")


def parse_int(text: str | int) -> int:
    if isinstance(text, int):
        return text
    try:
        return int(text.strip(), 0)
    except ValueError:
        raise OptionError(f"expected an integer, got '{text}'") from None


def parse_port(text: str | int) -> int:
    port = parse_int(text)
    if not 0 <= port <= 65535:
        raise OptionError(f"expected a port number in [0, 65535], got {port}")
    return port


def parse_nonneg(text: str | int) -> int:
    value = parse_int(text)
    if value < 0:
        raise OptionError(f"expected a non-negative integer, got {value}")
    return value


def choice(*values: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        low = text.strip().lower()
        if low not in values:
            raise OptionError(f"expected one of {', '.join(values)}, got '{text}'")
        return low
    return parse


def address(text: str) -> str:
    # tritonserver writes IPv6 as ipv6:[::1]
    if text.startswith("ipv6:"):
        text = text[5:]
    return text.strip("[]")


@dataclasses.dataclass(frozen=True)
class Option:
    name: str                      # key in the options dict
    default: Any
    parse: Callable[[Any], Any]
    help: str
    flags: tuple[str, ...] = ()    # defaults to --<name with dashes>
    repeat: bool = False           # may be given several times (list value)
    flag_only: bool = False        # a bare flag means true (e.g. --disable-auto-complete-config)

    @property
    def flag(self) -> str:
        return self.flags[0] if self.flags else "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "TRITOND_" + self.name.upper()


MiB = 1 << 20

OPTIONS: tuple[Option, ...] = (
    Option("model_repository", [], str, "Model repository path (repeatable).",
           flags=("--model-repository", "--model-store"), repeat=True),
    Option("model_control_mode", "none", choice("none", "explicit", "poll"),
           "Model control mode: none loads every model at start; explicit loads only --load-model."),
    Option("load_model", [], str, "Model to load at start in explicit mode ('*' = all); repeatable.",
           repeat=True),
    Option("model_config_name", "", str, "Use <model>/configs/<name>.pbtxt when it exists."),
    Option("strict_model_config", False, parse_bool,
           "Require a complete config.pbtxt (no auto-complete). Same as --disable-auto-complete-config."),
    Option("disable_auto_complete_config", False, parse_bool,
           "Do not auto-complete model configurations from the model files.", flag_only=True),
    Option("backend_config", [], str,
           "<backend>,<setting>=<value> or <setting>=<value>, e.g. onnxruntime,default-max-batch-size=8.",
           repeat=True),
    Option("strict_readiness", True, parse_bool,
           "Server is ready only when every model asked to load is ready."),
    Option("exit_on_error", False, parse_bool,
           "Exit when any model fails to load at start (default: serve the others)."),
    Option("exit_timeout_secs", 30, parse_nonneg,
           "Seconds to wait for in-flight requests at shutdown."),
    Option("id", "triton", str, "Server identifier reported in server metadata."),
    Option("allow_http", True, parse_bool, "Serve HTTP/REST."),
    Option("http_port", 8000, parse_port, "HTTP port."),
    Option("http_address", "0.0.0.0", address, "HTTP bind address."),
    Option("http_max_input_size", 64 * MiB, parse_nonneg, "Largest accepted HTTP request body, bytes."),
    Option("http_header_timeout", 30, parse_nonneg,
           "Seconds a client may take to send a request's headers, or stay silent while "
           "sending its body, before the connection is closed (0: no limit)."),
    Option("model_retry_interval", 30, parse_nonneg,
           "Seconds between reload attempts of a model whose instances crashed too often."),
    Option("allow_grpc", True, parse_bool, "Serve gRPC."),
    Option("grpc_port", 8001, parse_port, "gRPC port."),
    Option("grpc_address", "0.0.0.0", address, "gRPC bind address."),
    Option("grpc_infer_response_compression_level", "none",
           choice("none", "low", "medium", "high"), "gRPC response compression."),
    Option("allow_metrics", True, parse_bool, "Serve Prometheus metrics."),
    Option("metrics_port", 8002, parse_port, "Metrics port."),
    Option("metrics_address", "0.0.0.0", address, "Metrics bind address."),
    Option("allow_client_shm", True, parse_bool,
           "Allow clients to register system/CUDA shared memory (Triton 2.51 behaviour: on)."),
    Option("input_arena_byte_size", 64 * MiB, parse_nonneg,
           "Per-frontend shared-memory arena for request inputs (bytes, allocated lazily)."),
    Option("output_arena_byte_size", 16 * MiB, parse_nonneg,
           "Per-worker shared-memory arena for outputs (bytes, allocated lazily)."),
    Option("instance_pipelining", True, parse_bool,
           "Let a busy model instance hold one more ready batch (a full batch, or one request "
           "of a model that does not batch), so it never idles between executions."),
    Option("log_verbose", 0, parse_nonneg, "Verbose logging level."),
    Option("log_info", True, parse_bool, "Log info messages."),
    Option("log_warning", True, parse_bool, "Log warnings."),
    Option("log_error", True, parse_bool, "Log errors."),
    Option("log_format", "default", choice("default", "iso8601"), "Log line format."),
)

BY_NAME = {opt.name: opt for opt in OPTIONS}


def defaults() -> dict[str, Any]:
    return {opt.name: (list(opt.default) if opt.repeat else opt.default) for opt in OPTIONS}


def resolve(cli: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    """Merge defaults < environment < command line; raise OptionError on bad values."""
    options = defaults()
    for opt in OPTIONS:
        if opt.env in environ:
            raw = environ[opt.env]
            values = [v for v in raw.split(",") if v] if opt.repeat else raw
            options[opt.name] = _parse(opt, values, f"${opt.env}")
        if cli.get(opt.name) is not None:
            options[opt.name] = _parse(opt, cli[opt.name], opt.flag)
    if options["strict_model_config"]:
        options["disable_auto_complete_config"] = True
    return options


def _parse(opt: Option, value: Any, where: str) -> Any:
    try:
        if opt.repeat:
            return [opt.parse(v) for v in value]
        return opt.parse(value)
    except OptionError as exc:
        raise OptionError(f"{where}: {exc}") from None


def backend_settings(options: dict[str, Any], backend: str) -> dict[str, str]:
    """--backend-config entries for ``backend`` (global ones first, specific ones win)."""
    out: dict[str, str] = {}
    specific: dict[str, str] = {}
    for entry in options.get("backend_config", []):
        head, _, rest = entry.partition(",")
        if "=" in head:  # global "<setting>=<value>"
            key, _, value = entry.partition("=")
            out[key] = value
        elif head == backend and "=" in rest:
            key, _, value = rest.partition("=")
            specific[key] = value
    out.update(specific)
    return out
