"""``--trace-config`` (Triton's syntax) and the older ``--trace-*`` flags, resolved once.

Entries are ``<setting>=<value>`` (global: level, rate, count, mode) or
``<mode>,<setting>=<value>`` (``triton``: file, log-frequency; ``opentelemetry``:
url, resource, bsp_max_queue_size, bsp_schedule_delay, bsp_max_export_batch_size).
A ``--trace-config`` value wins over the deprecated flag it replaces, as in Triton;
levels accumulate. Unlike Triton, an unknown setting is refused at start (a typo
would otherwise leave tracing silently off).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tritond.options import OptionError

GLOBAL = ("level", "rate", "count", "mode")
MODE_SETTINGS = {
    "triton": ("file", "log-frequency"),
    "opentelemetry": ("url", "resource", "bsp_max_queue_size", "bsp_schedule_delay",
                      "bsp_max_export_batch_size"),
}
DEFAULT_URL = "http://localhost:4318/v1/traces"


def parse_level(text: str) -> str:
    """Triton's level words: off/false, timestamps/on/true/min/max, tensors."""
    low = text.strip().lower()
    if low in ("false", "off"):
        return "OFF"
    if low in ("true", "on", "min", "max", "timestamps"):
        return "TIMESTAMPS"
    if low == "tensors":
        return "TENSORS"
    raise OptionError(f"invalid value for trace level option: {text}")


def parse_mode(text: str) -> str:
    low = text.strip().lower()
    if low not in MODE_SETTINGS:
        raise OptionError(f"invalid value for trace mode option: {text}. Available options "
                          f"are \"triton\" and \"opentelemetry\"")
    return low


def split(text: str) -> tuple[str, str, str]:
    """One entry -> (mode or "", setting, value), Triton's format errors."""
    head, comma, rest = text.partition(",")
    mode = ""
    if comma and "=" not in head:
        if not head:
            raise OptionError(f"No trace mode specified. --trace-config option format is "
                              f"<trace mode>,<setting>=<value> or <setting>=<value>. Got {text}")
        mode = parse_mode(head)
    else:
        rest = text
    setting, eq, value = rest.partition("=")
    if not eq or not setting or not value:
        raise OptionError(f"--trace-config option format is '<trace mode>,<setting>=<value>'. "
                          f"Got {text}")
    allowed = MODE_SETTINGS[mode] if mode else GLOBAL
    if setting not in allowed:
        raise OptionError(f"unknown --trace-config setting '{setting}'"
                          + (f" for mode '{mode}'" if mode else "")
                          + f" (expected one of {', '.join(allowed)})")
    return mode, setting, value


def _int(value: str, setting: str, low: int) -> int:
    try:
        n = int(value)
    except ValueError:
        raise OptionError(f"Bad option: \"--trace-config {setting}\": expected an integer, "
                          f"got '{value}'") from None
    if n < low:
        raise OptionError(f"Bad option: \"--trace-config {setting}\": expected an integer "
                          f">= {low}, got {n}")
    return n


def entry(text: str) -> str:
    """The option parser of one ``--trace-config`` entry: checked, kept as written."""
    mode, setting, value = split(text)
    if setting == "level":
        parse_level(value)
    elif setting == "mode":
        parse_mode(value)
    elif setting in ("rate", "log-frequency", "bsp_max_queue_size", "bsp_schedule_delay",
                     "bsp_max_export_batch_size"):
        _int(value, f"{mode},{setting}" if mode else setting, 0)    # Triton names the mode
    elif setting == "count":
        _int(value, setting, -1)
    elif setting == "resource" and "=" not in value:
        raise OptionError(f"--trace-config opentelemetry,resource expects <key>=<value>, "
                          f"got '{value}'")
    return text


@dataclass
class TraceConfig:
    """The resolved start-up trace settings (the global setting of every frontend)."""

    level: list[str] = field(default_factory=lambda: ["OFF"])
    rate: int = 1000
    count: int = -1
    log_frequency: int = 0
    file: str = ""
    mode: str = "triton"
    url: str = DEFAULT_URL
    resource: dict[str, str] = field(
        default_factory=lambda: {"service.name": "triton-inference-server"})
    bsp: dict[str, int] = field(default_factory=dict)


def resolve(options) -> TraceConfig:
    """Legacy flags first, then ``--trace-config`` entries in order."""
    cfg = TraceConfig(level=_levels(options.trace_level), rate=options.trace_rate,
                      count=options.trace_count, log_frequency=options.trace_log_frequency,
                      file=options.trace_file, mode=options.trace_mode)
    levels = []
    for text in options.trace_config:
        mode, setting, value = split(text)
        if setting == "level":
            levels.append(parse_level(value))
        elif setting == "rate":
            cfg.rate = int(value)
        elif setting == "count":
            cfg.count = int(value)
        elif setting == "mode":
            cfg.mode = parse_mode(value)
        elif setting == "file":
            cfg.file = value
        elif setting == "log-frequency":
            cfg.log_frequency = int(value)
        elif setting == "url":
            cfg.url = value
        elif setting == "resource":
            key, _, val = value.partition("=")
            cfg.resource[key] = val
        else:
            cfg.bsp[setting] = int(value)
    if levels:
        cfg.level = _levels(levels)
    return cfg


def _levels(levels: list[str]) -> list[str]:
    """Triton ORs levels together; OFF alone when none is on."""
    on = [lvl for lvl in ("TIMESTAMPS", "TENSORS") if lvl in levels]
    return on or ["OFF"]


def problems(cfg: TraceConfig) -> list[str]:
    """Start-up problems of a resolved configuration (tritond/parent/preflight.py)."""
    out = []
    if "TENSORS" in cfg.level and cfg.mode == "opentelemetry":
        out.append("trace level TENSORS is not supported by the opentelemetry trace mode "
                   "(as in Triton)")
    if cfg.mode == "opentelemetry" and "OFF" not in cfg.level:
        try:
            import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
            import opentelemetry.sdk.trace  # noqa: F401
        except ImportError:
            out.append("--trace-config mode=opentelemetry needs the OpenTelemetry SDK and "
                       "its OTLP/HTTP exporter: pip install 'tritond[trace]'")
    if cfg.mode == "opentelemetry":
        out.extend(_bsp_variables(cfg))
    if cfg.mode == "triton" and "OFF" not in cfg.level and cfg.file:
        try:
            with open(cfg.file, "a"):
                pass
        except OSError as exc:
            out.append(f"failed to open trace file '{cfg.file}': {exc.strerror}")
    return out


def _bsp_variables(cfg: TraceConfig) -> list[str]:
    """Triton reads OTEL_BSP_* for the batch span processor settings no flag gave, and
    stops at start when one is not a number (its "Bad option" line)."""
    import os

    out = []
    for setting in MODE_SETTINGS["opentelemetry"]:
        if not setting.startswith("bsp_") or setting in cfg.bsp:
            continue
        name = "OTEL_" + setting.upper()
        value = os.environ.get(name)
        if value is not None and not value.strip().isdigit():
            out.append(f'Bad option: "{name}": expected an integer, got \'{value}\'')
    return out
