"""Every server option, declared once.

Each option has a ``tritond`` flag (tritonserver's name where Triton has one)
and a ``TRITOND_<NAME>`` environment variable; the CLI builds its parser from
this table. The resolved values are one typed :data:`Options` struct (msgspec,
built from the same table) that children receive in ``messages.Setup``; every
reader uses its attributes, so each default is written here and nowhere else.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import msgspec

from .optionvalues import (  # noqa: F401  (re-exported: options.parse_bool etc.)
    OptionError, parse_bool, parse_bool01, parse_int, parse_port, parse_nonneg,
    parse_positive_float, summary_quantiles, parse_positive, header_regex, regex,
    metrics_setting, cache_setting, cache_bytes, rate_limit_resource, restriction, choice,
    address, trace_level, trace_config_entry, gpu_bytes, METRICS_SETTINGS)


@dataclasses.dataclass(frozen=True)
class Option:
    name: str                      # key in the options dict
    default: Any
    parse: Callable[[Any], Any]
    help: str
    flags: tuple[str, ...] = ()    # defaults to --<name with dashes>
    repeat: bool = False           # may be given several times (list value)
    flag_only: bool = False        # a bare flag means true (e.g. --disable-auto-complete-config)
    sep: str = ","                 # between the values of a repeated option in its variable

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
           "Model control mode: none loads every model at start; explicit loads only --load-model; "
           "poll loads every model and applies repository changes every --repository-poll-secs."),
    Option("repository_poll_secs", 15, parse_nonneg,
           "Seconds between polls of the model repositories in poll mode (0: no polling)."),
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
    Option("backend_directory", "/opt/tritonserver/backends", str,
           "The global backend directory (tritonserver's default): a model whose config "
           "names backend '<name>', not one built in, runs <dir>/<name>/model.py as a "
           "Python-based backend."),
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
    Option("http_max_input_size", 64 * MiB, parse_positive,
           "Largest accepted HTTP request body, bytes (more than 0, as tritonserver)."),
    Option("http_header_timeout", 30, parse_nonneg,
           "Seconds a client may take to send a request's headers, or stay silent while "
           "sending its body, before the connection is closed (0: no limit)."),
    Option("model_load_thread_count", 4, parse_positive,
           "Model versions loaded at the same time (Triton's default: 4)."),
    Option("model_load_retry_count", 0, parse_nonneg,
           "Times a model version whose load failed is loaded again before it stays "
           "UNAVAILABLE (Triton's semantics; default 0)."),
    Option("model_namespacing", False, parse_bool,
           "Model namespacing: each repository is a namespace; a name found in several "
           "repositories is loaded once per repository and a request by that name is "
           "ambiguous (INVALID_ARG); ensemble steps use their own repository's model "
           "(metrics gain a 'namespace' label; an unknown model name is INVALID_ARG)."),
    Option("model_retry_interval", 30, parse_nonneg,
           "Seconds between reload attempts of a model whose instances crashed too often."),
    Option("allow_grpc", True, parse_bool, "Serve gRPC."),
    Option("grpc_port", 8001, parse_port, "gRPC port."),
    Option("grpc_address", "0.0.0.0", address, "gRPC bind address."),
    Option("grpc_infer_response_compression_level", "none",
           choice("none", "low", "medium", "high"), "gRPC response compression."),
    Option("allow_metrics", True, parse_bool, "Serve Prometheus metrics."),
    Option("metrics_port", 8002, parse_port, "Metrics port."),
    Option("metrics_address", "", address,
           "Metrics bind address (default: --http-address, as tritonserver)."),
    Option("allow_cpu_metrics", True, parse_bool,
           "Report CPU utilization and memory (nv_cpu_*); ignored unless --allow-metrics."),
    Option("allow_gpu_metrics", True, parse_bool,
           "Report GPU metrics (nv_gpu_*, nv_energy_consumption) through NVML (nvidia-ml-py); "
           "ignored unless --allow-metrics."),
    Option("metrics_interval_ms", 2000.0, parse_positive_float,
           "Milliseconds between polls of the per-interval metrics (CPU and GPU utilization, "
           "memory, power)."),
    Option("metrics_config", [], metrics_setting,
           "<setting>=<value>, repeatable (Triton's settings): counter_latencies=false drops "
           "the *_duration_us latency counters; histogram_latencies=true adds the first "
           "response histogram; summary_latencies=true adds the *_summary_us families, "
           "quantiles from summary_quantiles=<q>:<error>,... (give several pairs on the "
           "command line: the variable splits entries at commas).",
           repeat=True),
    Option("cache_config", [], cache_setting,
           "<cache>,<setting>=<value>, repeatable: local,size=<bytes> enables the response "
           "cache of models with response_cache { enable: true } (in the variable, entries "
           "are separated by ';').", repeat=True, sep=";"),
    Option("rate_limit", "off", choice("off", "execution_count"),
           "Rate limiting: execution_count holds an instance back until the rate_limiter "
           "resources of its group are free (off: those settings are ignored)."),
    Option("rate_limit_resource", [], rate_limit_resource,
           "<name>:<count>[:<device>], repeatable: the count of a rate-limiter resource "
           "(default: the largest count any instance asks for).", repeat=True),
    Option("http_restricted_api", [], restriction("http-restricted-api", "api"),
           "<apis>:<key>=<value>, repeatable: the comma-separated API categories (health, "
           "metadata, inference, shared-memory, model-config, model-repository, statistics, "
           "trace, logging) answer only requests with header <key>: <value> (in the "
           "variable, entries are separated by ';').", repeat=True, sep=";"),
    Option("http_header_forward_pattern", "", regex,
           "HTTP headers whose name matches this regular expression become request "
           "parameters (Triton's partial match, case-insensitive unless it starts with "
           "(?-i))."),
    Option("grpc_header_forward_pattern", "", regex,
           "gRPC metadata whose key matches this regular expression become request "
           "parameters (Triton's partial match, case-insensitive unless it starts with "
           "(?-i))."),
    Option("grpc_use_ssl", False, parse_bool, "Serve gRPC over TLS (--grpc-server-cert/-key)."),
    Option("grpc_use_ssl_mutual", False, parse_bool,
           "Serve gRPC over mutual TLS: clients need a certificate signed by --grpc-root-cert "
           "(implies --grpc-use-ssl)."),
    Option("grpc_server_cert", "", str, "PEM file of the gRPC server's certificate (chain)."),
    Option("grpc_server_key", "", str, "PEM file of the gRPC server's private key."),
    Option("grpc_root_cert", "", str, "PEM file of the CA that signs client certificates."),
    Option("grpc_restricted_protocol", [], restriction("grpc-restricted-protocol", "protocol"),
           "<protocols>:<key>=<value>, repeatable: the gRPC methods of those categories "
           "answer only calls with metadata triton-grpc-protocol-<key>: <value> (in the "
           "variable, entries are separated by ';').", repeat=True, sep=";"),
    Option("allow_client_shm", False, parse_bool,
           "Allow clients to register and use system/CUDA shared memory regions for inputs "
           "and outputs (default false, as Triton 2.68+; internal shared memory is unaffected)."),
    Option("input_arena_byte_size", 64 * MiB, parse_nonneg,
           "Per-frontend shared-memory arena for request inputs (bytes, allocated lazily)."),
    Option("output_arena_byte_size", 16 * MiB, parse_nonneg,
           "Per-worker shared-memory arena for outputs (bytes, allocated lazily)."),
    Option("frontend_processes", 1, parse_positive,
           "Frontend processes (tritond's own flag): each serves HTTP and gRPC on the same "
           "ports (SO_REUSEPORT: the kernel spreads connections), client shared-memory "
           "registrations and the response cache are shared by all of them, and frontend 0 "
           "serves /metrics summed over every frontend."),
    Option("instance_pipelining", True, parse_bool,
           "Let a busy model instance hold one more ready batch (a full batch, or one request "
           "of a model that does not batch), so it never idles between executions."),
    Option("log_verbose", 0, parse_nonneg, "Verbose logging level."),
    Option("log_info", True, parse_bool, "Log info messages."),
    Option("log_warning", True, parse_bool, "Log warnings."),
    Option("log_error", True, parse_bool, "Log errors."),
    Option("log_format", "default", choice("default", "iso8601"), "Log line format."),
    Option("log_file", "", str, "Append every process's log lines to this file (default: "
           "info lines on stdout, warnings and errors on stderr); reported by /v2/logging."),
    Option("model_load_timeout_s", 600, parse_nonneg,
           "Seconds a frontend waits for the parent to answer a model load/unload request."),
    Option("http_keepalive_s", 30, parse_nonneg, "Seconds an idle HTTP connection is kept open."),
    Option("reuse_http_port", False, parse_bool,
           "Let several servers bind the HTTP port (SO_REUSEPORT) when every one of them "
           "sets this; the kernel spreads connections over them, so serve the same models."),
    Option("reuse_grpc_port", False, parse_bool,
           "Let several servers bind the gRPC port (SO_REUSEPORT)."),
    # gRPC keepalive: passed to the gRPC server only when set (Triton's flags and units).
    Option("grpc_keepalive_time", None, parse_nonneg, "gRPC keepalive time, ms."),
    Option("grpc_keepalive_timeout", None, parse_nonneg, "gRPC keepalive timeout, ms."),
    Option("grpc_keepalive_permit_without_calls", None, parse_bool01,
           "gRPC: allow keepalive pings without calls (true/false, 1/0)."),
    Option("grpc_http2_max_pings_without_data", None, parse_nonneg,
           "gRPC: pings allowed without data."),
    Option("grpc_http2_min_recv_ping_interval_without_data", None, parse_nonneg,
           "gRPC: minimum interval between received pings without data, ms."),
    Option("grpc_http2_max_ping_strikes", None, parse_nonneg, "gRPC: bad pings before GOAWAY."),
    Option("grpc_max_connection_age", None, parse_nonneg, "gRPC: maximum connection age, ms."),
    Option("grpc_max_connection_age_grace", None, parse_nonneg,
           "gRPC: grace period after the maximum connection age, ms."),
    # Tracing (frontend/trace.py): --trace-config wins over the deprecated --trace-* flags.
    Option("trace_config", [], trace_config_entry,
           "[<mode>,]<setting>=<value>, repeatable (Triton's syntax): level=TIMESTAMPS, "
           "rate=N, count=N, mode=triton|opentelemetry, triton,file=PATH, "
           "triton,log-frequency=N, opentelemetry,url=URL, opentelemetry,resource=K=V, "
           "opentelemetry,bsp_schedule_delay=MS, ... (in the variable, entries are "
           "separated by ';').", repeat=True, sep=";"),
    Option("trace_level", ["OFF"], trace_level,
           "Deprecated (--trace-config level=...): OFF, TIMESTAMPS or TENSORS, repeatable.",
           repeat=True),
    Option("trace_rate", 1000, parse_nonneg,
           "Deprecated (--trace-config rate=N): trace one request in N."),
    Option("trace_count", -1, parse_int,
           "Deprecated (--trace-config count=N): requests to trace (-1: no limit)."),
    Option("trace_log_frequency", 0, parse_nonneg,
           "Deprecated (--trace-config triton,log-frequency=N): write <file>.<i> every N "
           "traces (0: write <file> at exit)."),
    Option("trace_file", "", str, "Deprecated (--trace-config triton,file=PATH): trace file."),
    Option("trace_mode", "triton", choice("triton", "opentelemetry"),
           "tritond's shorthand for --trace-config mode=...: triton or opentelemetry "
           "(tritonserver has no --trace-mode)."),
    # Accepted so that a tritonserver command line keeps working. tritond has no staging
    # pools to size: a device output is copied once, straight into its shared-memory slot
    # or the client's CUDA region (docs/compatibility.md), so neither value is used.
    Option("pinned_memory_pool_byte_size", 256 * MiB, parse_nonneg,
           "Accepted for tritonserver compatibility; tritond stages nothing in pinned memory, "
           "so the value is not used."),
    Option("cuda_memory_pool_byte_size", [], gpu_bytes,
           "<gpu id>:<bytes>, repeatable. Accepted for tritonserver compatibility; device "
           "outputs are copied once to where they go, so no CUDA pool is allocated.",
           repeat=True),
)

BY_NAME = {opt.name: opt for opt in OPTIONS}


def _field(opt: Option) -> tuple:
    if opt.repeat:
        return (opt.name, list[str], msgspec.field(default_factory=lambda d=opt.default: list(d)))
    kind = Optional[int] if opt.default is None else type(opt.default)
    return (opt.name, kind, opt.default)


Options = msgspec.defstruct(
    "Options", [_field(opt) for opt in OPTIONS], kw_only=True, omit_defaults=True,
    forbid_unknown_fields=True, module=__name__)
"""Every option's resolved value, as attributes (``options.http_port``)."""


def defaults() -> Any:
    return Options()


def resolve(cli: dict[str, Any], environ: dict[str, str]) -> Any:
    """Merge defaults < environment < command line; raise OptionError on bad values."""
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        if opt.env in environ:
            raw = environ[opt.env]
            given = [v for v in raw.split(opt.sep) if v] if opt.repeat else raw
            values[opt.name] = _parse(opt, given, f"${opt.env}")
        if cli.get(opt.name) is not None:
            values[opt.name] = _parse(opt, cli[opt.name], opt.flag)
    derive(values)
    return Options(**values)


def derive(values: dict[str, Any]) -> None:
    """Defaults that follow other flags, as tritonserver's post-parse step
    (server src/command_line_parser.cc, "Step 3")."""
    if values.get("strict_model_config"):
        values["disable_auto_complete_config"] = True
    if values.get("disable_auto_complete_config"):
        values["strict_model_config"] = True
    # Empty or unset: /metrics listens where HTTP does, so --http-address 127.0.0.1
    # keeps it off the other interfaces too.
    if not values.get("metrics_address"):
        values["metrics_address"] = values.get("http_address", BY_NAME["http_address"].default)
    if not values.get("allow_metrics", True):    # allow_{cpu,gpu}_metrics &= allow_metrics
        values["allow_cpu_metrics"] = values["allow_gpu_metrics"] = False
    # --grpc-use-ssl-mutual, whatever its value, turns SSL on (tritonserver sets use_ssl
    # with it); a --grpc-use-ssl given too is left to decide.
    if "grpc_use_ssl_mutual" in values and "grpc_use_ssl" not in values:
        values["grpc_use_ssl"] = True


def _parse(opt: Option, value: Any, where: str) -> Any:
    try:
        if opt.repeat:
            return [opt.parse(v) for v in value]
        return opt.parse(value)
    except OptionError as exc:
        raise OptionError(f"{where}: {exc}") from None


def backend_settings(options: Any, backend: str) -> dict[str, str]:
    """--backend-config entries for ``backend`` (global ones first, specific ones win)."""
    out: dict[str, str] = {}
    specific: dict[str, str] = {}
    for entry in options.backend_config:
        head, _, rest = entry.partition(",")
        if "=" in head:  # global "<setting>=<value>"
            key, _, value = entry.partition("=")
            out[key] = value
        elif head == backend and "=" in rest:
            key, _, value = rest.partition("=")
            specific[key] = value
    out.update(specific)
    return out
