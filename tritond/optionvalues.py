"""The parsers of option values (``Option.parse`` in ``options.py``'s table): each takes
the text of a flag or an environment variable and returns the value, or raises
``OptionError`` with what was wrong."""
from __future__ import annotations

import re
from typing import Callable


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


def parse_bool01(text: str | int) -> int:
    """A tritonserver boolean that gRPC takes as 0/1 (--grpc-keepalive-permit-without-calls)."""
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    return int(parse_bool(text))


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


def parse_positive_float(text: str | float) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise OptionError(f"expected a number, got '{text}'") from None
    if not value > 0:
        raise OptionError(f"expected a positive number, got {text}")
    return value


def summary_quantiles(text: str) -> str:
    """``summary_quantiles=<q>:<err>,...`` (Triton's format; checked at start)."""
    from tritond.scheduler.summary import parse_quantiles

    try:
        parse_quantiles(text.strip('"'))
    except ValueError as exc:
        raise OptionError(str(exc)) from None
    return text


# --metrics-config settings tritond honours (others are passed over, as Triton does).
METRICS_SETTINGS = {"counter_latencies": parse_bool, "histogram_latencies": parse_bool,
                    "summary_latencies": parse_bool, "summary_quantiles": summary_quantiles}


def parse_positive(text: str | int) -> int:
    value = parse_int(text)
    if value < 1:
        raise OptionError(f"expected a positive integer, got {value}")
    return value


_RE2_FLAGS = re.compile(r"\(\?([ims]*)(?:-([ims]*))?\)")
_FLAG_BITS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


def header_regex(text: str) -> re.Pattern:
    """A header-forward pattern as Triton compiles it: RE2 with ``(?i)`` put in front
    (header names are case-insensitive), so a leading flag group such as ``(?-i)``
    turns that off again. Python's ``re`` takes flags only at the start, as here."""
    flags = re.IGNORECASE
    lead = _RE2_FLAGS.match(text)
    if lead:
        for ch in lead.group(1):
            flags |= _FLAG_BITS[ch]
        for ch in lead.group(2) or "":
            flags &= ~_FLAG_BITS[ch]
        text = text[lead.end():]
    return re.compile(text, flags)


def regex(text: str) -> str:
    """A header-forward pattern: refused at start when it does not compile."""
    try:
        header_regex(text)
    except re.error as exc:
        raise OptionError(f"invalid regular expression '{text}': {exc}") from None
    return text


def metrics_setting(text: str) -> str:
    """One ``--metrics-config <setting>=<value>`` (Triton's format and message)."""
    setting, eq, value = text.partition("=")
    if not eq or "," in setting or not setting or not value:
        raise OptionError(f"--metrics-config option format is <setting>=<value>. Got {text}")
    if setting in METRICS_SETTINGS:
        METRICS_SETTINGS[setting](value)
    return text


def cache_setting(text: str) -> str:
    """One ``--cache-config <cache>,<setting>=<value>``: only Triton's 'local' cache exists."""
    name, _, rest = text.partition(",")
    key, eq, value = rest.partition("=")
    if not eq or not name or not key or not value:
        raise OptionError(f"--cache-config option format is '<cache name>,<setting>=<value>'. "
                          f"Got {text}")
    if name != "local":
        raise OptionError(f"cache '{name}' is not supported by tritond yet (only 'local')")
    if key == "size":
        parse_nonneg(value)
    return text


def cache_bytes(settings: list[str]) -> int:
    """The local cache's byte size from ``--cache-config`` entries (checked by
    :func:`cache_setting`; 0: no cache)."""
    size = 0
    for entry in settings:
        key, _, value = entry.partition(",")[2].partition("=")
        if key == "size":
            size = int(value, 0)
    return size


def rate_limit_resource(text: str) -> str:
    """One ``--rate-limit-resource <name>:<count>[:<device>]`` (Triton's syntax)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0]:
        raise OptionError(f"--rate-limit-resource option format is "
                          f"'<resource_name>:<count>:<device>' or '<resource_name>:<count>'. "
                          f"Got {text}")
    for part in parts[1:]:
        parse_nonneg(part)
    return text


def restriction(flag: str, kind: str) -> Callable[[str], str]:
    """One ``<categories>:<key>=<value>`` entry of a restricted-API flag (Triton's rules;
    frontend/restrict.py)."""
    def parse(text: str) -> str:
        from tritond.frontend.restrict import RestrictionError, parse as parse_entries

        try:
            parse_entries([text], flag, kind)
        except RestrictionError as exc:
            raise OptionError(str(exc)) from None
        return text
    return parse


def choice(*values: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        low = text.strip().lower()
        if low not in values:
            raise OptionError(f"expected one of {', '.join(values)}, got '{text}'")
        return low
    parse.choices = values
    return parse


def address(text: str) -> str:
    # tritonserver writes IPv6 as ipv6:[::1]
    if text.startswith("ipv6:"):
        text = text[5:]
    return text.strip("[]")


def trace_level(text: str) -> str:
    """Triton's level words (also its old ones: on/true/min/max, off/false)."""
    from tritond.traceconfig import parse_level

    return parse_level(text)


trace_level.choices = ("OFF", "TIMESTAMPS", "TENSORS")


def trace_config_entry(text: str) -> str:
    """One ``--trace-config [<mode>,]<setting>=<value>`` (tritond/traceconfig.py)."""
    from tritond.traceconfig import entry

    return entry(text)


def gpu_bytes(text: str) -> str:
    """``<gpu id>:<bytes>`` (tritonserver's --cuda-memory-pool-byte-size)."""
    gpu, sep, size = text.partition(":")
    if not sep:
        raise OptionError(f"expected <gpu id>:<bytes>, got '{text}'")
    parse_nonneg(gpu)
    parse_nonneg(size)
    return text
