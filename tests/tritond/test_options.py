"""Every option is declared once: a flag, a TRITOND_* variable, one typed Options struct."""
from __future__ import annotations

import pathlib

import msgspec
import pytest

from tritond import messages, options
from tritond.cli import build_parser, parse_options

ROOT = pathlib.Path(__file__).resolve().parents[2]


def sample(opt: options.Option) -> tuple[str, object]:
    """A value other than the default: (as text, as parsed)."""
    if opt.repeat:
        text = {"trace_level": "TIMESTAMPS",
                "metrics_config": "counter_latencies=false",
                "cache_config": "local,size=1024",
                "rate_limit_resource": "R1:4",
                "http_restricted_api": "health:k=v",
                "grpc_restricted_protocol": "health:k=v",
                "trace_config": "triton,file=/tmp/t.json",
                "cuda_memory_pool_byte_size": "0:67108864"}.get(opt.name, "x")
        return text, [text]
    choices = getattr(opt.parse, "choices", None)
    if choices:
        text = next(c for c in choices if c.lower() != str(opt.default).lower())
        return text, opt.parse(text)
    if opt.parse is options.parse_bool:
        return str(not opt.default).lower(), not opt.default
    if opt.parse is options.parse_bool01:
        return "true", 1
    if opt.parse in (options.parse_int, options.parse_nonneg, options.parse_port,
                     options.parse_positive):
        return "7", 7
    if opt.parse is options.parse_positive_float:
        return "7.5", 7.5
    return "10.1.2.3", "10.1.2.3"


@pytest.mark.parametrize("opt", options.OPTIONS, ids=lambda o: o.name)
def test_every_option_has_a_flag_and_an_env_var(opt):
    text, value = sample(opt)
    assert opt.env == "TRITOND_" + opt.name.upper()
    argv = [opt.flag] if opt.flag_only else [opt.flag, text]
    from_flag = options.resolve(vars(build_parser().parse_args(argv)), {})
    from_env = options.resolve({}, {opt.env: text})
    expected = True if opt.flag_only else value
    assert getattr(from_flag, opt.name) == expected
    assert getattr(from_env, opt.name) == value
    assert getattr(options.Options(), opt.name) == opt.default     # the one default


def test_command_line_beats_environment_and_strict_implies_no_auto_complete():
    got = parse_options(["--model-repository", "/r", "--http-port", "9"],
                        {"TRITOND_HTTP_PORT": "8", "TRITOND_STRICT_MODEL_CONFIG": "true"})
    assert got.http_port == 9 and got.disable_auto_complete_config
    assert got.model_repository == ["/r"]


def test_options_round_trip_through_setup():
    opts = options.resolve({"grpc_keepalive_time": "100", "trace_level": ["TENSORS"]},
                           {"TRITOND_LOG_VERBOSE": "2"})
    setup = messages.Setup(options=opts, server_id="s", parent="p", scheduler="q",
                           frontends=["f"])
    (back,) = messages.decoder(messages.TO_WORKER).decode(messages.encode([setup]))
    assert back == setup and back.options.grpc_keepalive_time == 100
    assert back.options.log_verbose == 2 and back.options.trace_level == ["TENSORS"]


def test_an_undeclared_option_does_not_decode():
    raw = msgspec.msgpack.encode({"http_port": 1, "no_such_option": 2})
    with pytest.raises(msgspec.ValidationError, match="no_such_option"):
        msgspec.msgpack.decode(raw, type=options.Options)


def test_no_option_is_read_with_a_default_of_its_own():
    """Options are attributes: ``options.get("x", default)`` would repeat a default."""
    offenders = []
    # The packages only: a checkout may hold any number of virtual environments.
    packages = ("tritond", "frontend", "scheduler", "workers", "shm", "protos", "bench",
                "model_repository")
    for path in (p for pkg in packages for p in (ROOT / pkg).rglob("*.py")):
        text = path.read_text()
        for needle in ("options.get(", "opts.get(", 'options["', "options['"):
            if needle in text:
                offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert offenders == []


def test_model_namespacing_is_accepted():
    assert options.resolve({"model_namespacing": "true"}, {}).model_namespacing is True
    assert options.resolve({}, {}).model_namespacing is False


def test_model_load_thread_count_must_be_positive():
    with pytest.raises(options.OptionError, match="expected a positive integer, got 0"):
        options.resolve({"model_load_thread_count": "0"}, {})


def test_header_forward_pattern_must_compile():
    with pytest.raises(options.OptionError, match="invalid regular expression '\\(x'"):
        options.resolve({"http_header_forward_pattern": "(x"}, {})


def test_tritonserver_pool_flags_are_accepted_and_checked():
    """A tritonserver command line with its pool sizes keeps working (the values are unused)."""
    got = parse_options(["--model-repository", "/r", "--pinned-memory-pool-byte-size", "0",
                         "--cuda-memory-pool-byte-size", "0:268435456",
                         "--cuda-memory-pool-byte-size", "1:0"], {})
    assert got.pinned_memory_pool_byte_size == 0
    assert got.cuda_memory_pool_byte_size == ["0:268435456", "1:0"]
    for bad in ("268435456", "x:1", "0:-1"):
        with pytest.raises(SystemExit):
            parse_options(["--model-repository", "/r", "--cuda-memory-pool-byte-size", bad], {})


def test_strict_model_config_warns_as_tritonserver(capsys):
    # L0_model_config cli_messages: tritonserver's texts on stderr
    parse_options(["--model-repository", "/r"], {"TRITOND_STRICT_MODEL_CONFIG": "true"})
    assert capsys.readouterr().err == ""          # not a command-line flag: no warning
    got = parse_options(["--model-repository", "/r", "--strict-model-config=true"], {})
    assert got.disable_auto_complete_config
    assert capsys.readouterr().err == ("Warning: '--strict-model-config' has been deprecated! "
                                       "Please use '--disable-auto-complete-config' instead.\n")
    got = parse_options(["--model-repository", "/r", "--disable-auto-complete-config",
                         "--strict-model-config=false"], {})
    assert got.disable_auto_complete_config
    assert capsys.readouterr().err.splitlines()[1] == (
        "Warning: Overriding deprecated '--strict-model-config' from False to True in favor of "
        "'--disable-auto-complete-config'!")


def test_empty_model_config_name_stops_the_start(capsys):
    # L0_custom_model_config: `--model-config-name=` must not start (tritonserver's rule)
    with pytest.raises(SystemExit) as stop:
        parse_options(["--model-repository", "/r", "--model-config-name="], {})
    assert stop.value.code == 2
    assert "empty argument for --model-config-name" in capsys.readouterr().err
    assert parse_options(["--model-repository", "/r", "--model-config-name=h100"],
                         {}).model_config_name == "h100"


@pytest.mark.parametrize("text,value", [("true", 1), ("ON", 1), ("1", 1), ("false", 0),
                                        ("off", 0), ("0", 0)])
def test_keepalive_permit_without_calls_is_a_boolean_as_in_tritonserver(text, value):
    """tritonserver declares it ArgBool (true/on/1, false/off/0); gRPC takes it as 0/1."""
    got = parse_options(["--model-repository=/r", f"--grpc-keepalive-permit-without-calls={text}"],
                        {})
    assert got.grpc_keepalive_permit_without_calls == value
    setup = messages.Setup(options=got, server_id="s", parent="p", scheduler="q", frontends=[])
    (back,) = messages.decoder(messages.TO_WORKER).decode(messages.encode([setup]))
    assert back.options.grpc_keepalive_permit_without_calls == value


def test_keepalive_permit_without_calls_refuses_a_non_boolean(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_options(["--model-repository=/r", "--grpc-keepalive-permit-without-calls=2"], {})
    assert exc.value.code == 2
    assert "--grpc-keepalive-permit-without-calls" in capsys.readouterr().err


def test_metrics_address_defaults_to_the_http_address():
    """tritonserver's post-parse step (server src/command_line_parser.cc): an empty or unset
    --metrics-address is --http-address; checked against Triton 2.51, whose
    --http-address=127.0.0.1 logs "Started Metrics Service at 127.0.0.1:<port>"."""
    assert options.resolve({}, {}).metrics_address == "0.0.0.0"
    assert options.resolve({"http_address": "127.0.0.1"}, {}).metrics_address == "127.0.0.1"
    assert options.resolve({}, {"TRITOND_HTTP_ADDRESS": "::1"}).metrics_address == "::1"
    given = {"http_address": "127.0.0.1", "metrics_address": "127.0.0.2"}
    assert options.resolve(given, {}).metrics_address == "127.0.0.2"
    given = {"http_address": "127.0.0.1", "metrics_address": ""}
    assert options.resolve(given, {}).metrics_address == "127.0.0.1"
    # also without HTTP: tritonserver takes 0.0.0.0 only in a build without HTTP
    given = {"http_address": "127.0.0.1", "allow_http": "false"}
    assert options.resolve(given, {}).metrics_address == "127.0.0.1"


def test_flags_adjusted_by_others_as_tritonserver():
    """command_line_parser.cc: allow_{cpu,gpu}_metrics &= allow_metrics,
    --disable-auto-complete-config sets strict_model_config, and --grpc-use-ssl-mutual
    (whatever its value) sets use_ssl."""
    off = options.resolve({"allow_metrics": "false"}, {})
    assert (off.allow_cpu_metrics, off.allow_gpu_metrics) == (False, False)
    on = options.resolve({}, {})
    assert (on.allow_cpu_metrics, on.allow_gpu_metrics) == (True, True)
    assert options.resolve({"disable_auto_complete_config": "true"}, {}).strict_model_config
    assert options.resolve({"grpc_use_ssl_mutual": "false"}, {}).grpc_use_ssl
    assert not options.resolve({"grpc_use_ssl_mutual": "true", "grpc_use_ssl": "false"},
                               {}).grpc_use_ssl
    assert not options.resolve({}, {}).grpc_use_ssl


def test_http_max_input_size_must_be_positive():
    """tritonserver: "Error: --http-max-input-size must be greater than 0."."""
    with pytest.raises(options.OptionError, match="--http-max-input-size"):
        options.resolve({"http_max_input_size": "0"}, {})
