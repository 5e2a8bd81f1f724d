"""The command line: a tritonserver flag tritond lacks is refused by name, with the reason."""
from __future__ import annotations

import pytest

from tritond.cli import parse_options

# A sample of tritonserver 2.51+ flags (server src/command_line_parser.cc) that tritond does not
# implement: each must stop the start, never be accepted and ignored.
LACKING = [
    "--http-thread-count=4", "--grpc-infer-thread-count=2", "--grpc-infer-allocation-pool-size=8",
    "--grpc-max-response-pool-size=4",
    "--repoagent-directory=/r", "--cache-directory=/c", "--host-policy=numa,cpu-cores=0",
    "--buffer-manager-thread-count=2", "--response-cache-byte-size=1024",
    "--allow-sagemaker=true", "--sagemaker-port=8080", "--sagemaker-safe-port-range=8000-9000",
    "--sagemaker-thread-count=2", "--allow-vertex-ai=true", "--vertex-ai-port=8080",
    "--vertex-ai-thread-count=2", "--vertex-ai-default-model=m",
    "--cuda-virtual-address-size=0:1024", "--enable-peer-access=false",
    "--min-supported-compute-capability=7.0", "--model-load-gpu-limit=0:0.5",
]


@pytest.mark.parametrize("arg", LACKING)
def test_a_tritonserver_flag_tritond_lacks_is_refused_by_name(arg, capsys):
    flag = arg.split("=")[0]
    for argv in (["--model-repository", "/r", arg], [flag, arg.split("=")[1], "--model-repository", "/r"]):
        with pytest.raises(SystemExit) as exc:
            parse_options(argv, {})
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert err[0].startswith(f"tritond: error: {flag} is a tritonserver flag tritond does "
                                 "not support: "), err


def test_a_flag_triton_does_not_have_either_stays_unrecognized(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_options(["--model-repository", "/r", "--no-such-flag=1"], {})
    assert exc.value.code == 2
    assert capsys.readouterr().err == "tritond: error: unrecognized arguments: --no-such-flag=1\n"



def test_a_unique_prefix_of_a_flag_is_that_flag_as_tritonservers_getopt_long():
    """QA L0_logging starts tritonserver with --log-warn=false (getopt_long takes any
    unambiguous prefix of a long option)."""
    options = parse_options(["--model-repository", "/r", "--log-warn=false",
                             "--metrics-interval=250"], {})
    assert options.log_warning is False and options.metrics_interval_ms == 250


@pytest.mark.parametrize("arg,says", [
    # a prefix of a flag tritond lacks is refused by that flag's name
    ("--http-thread=4", "--http-thread-count is a tritonserver flag tritond does not support"),
    # ambiguous among tritonserver's flags (tritond has one of the three): as getopt_long
    ("--grpc-infer=2", "ambiguous option: --grpc-infer=2 could match --grpc-infer-response"),
])
def test_a_prefix_of_a_lacking_flag_or_an_ambiguous_one_is_refused(arg, says, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_options(["--model-repository", "/r", arg], {})
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err


def test_deprecated_trace_flags_warn_as_tritonserver(capsys):
    """QA L0_cmdline_trace counts one "Warning: '--trace-<x>' has been deprecated" line per
    deprecated flag, on stderr."""
    parse_options(["--model-repository", "/r", "--trace-file=/tmp/t.json", "--trace-rate=100",
                   "--trace-level=TIMESTAMPS", "--trace-log-frequency=50",
                   "--trace-count=100"], {})
    err = capsys.readouterr().err
    for flag in ("--trace-file", "--trace-rate", "--trace-level", "--trace-log-frequency",
                 "--trace-count"):
        assert err.count(f"Warning: '{flag}' has been deprecated") == 1, err
    assert "Please use '--trace-config rate=<rate value> instead." in err
    parse_options(["--model-repository", "/r", "--trace-config=rate=5"], {})
    assert capsys.readouterr().err == ""


def test_backend_directory_is_accepted_with_tritonservers_default():
    # Python-based backends live there (tritond/repository/backends.py)
    assert parse_options(["--model-repository", "/r"], {}).backend_directory == \
        "/opt/tritonserver/backends"
    assert parse_options(["--model-repository", "/r", "--backend-directory", "/b"],
                         {}).backend_directory == "/b"


def test_reuse_http_port_is_taken_as_tritonservers():
    """server src/command_line_parser.cc: --reuse-http-port is a bool flag (default off)."""
    assert parse_options(["--model-repository", "/r"], {}).reuse_http_port is False
    assert parse_options(["--model-repository", "/r", "--reuse-http-port"], {}).reuse_http_port
    assert parse_options(["--model-repository", "/r", "--reuse-http-port=true"],
                         {}).reuse_http_port is True
    assert parse_options(["--model-repository", "/r"],
                         {"TRITOND_REUSE_HTTP_PORT": "1"}).reuse_http_port is True
