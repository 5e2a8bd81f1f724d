"""The command line: a tritonserver flag tritond lacks is refused by name, with the reason."""
from __future__ import annotations

import pytest

from tritond.cli import parse_options

# A sample of tritonserver 2.51+ flags (server src/command_line_parser.cc) that tritond does not
# implement: each must stop the start, never be accepted and ignored.
LACKING = [
    "--http-thread-count=4", "--grpc-infer-thread-count=2", "--grpc-infer-allocation-pool-size=8",
    "--grpc-max-response-pool-size=4", "--backend-directory=/opt/tritonserver/backends",
    "--repoagent-directory=/r", "--cache-directory=/c", "--host-policy=numa,cpu-cores=0",
    "--buffer-manager-thread-count=2", "--response-cache-byte-size=1024",
    "--allow-sagemaker=true", "--sagemaker-port=8080", "--sagemaker-safe-port-range=8000-9000",
    "--sagemaker-thread-count=2", "--allow-vertex-ai=true", "--vertex-ai-port=8080",
    "--vertex-ai-thread-count=2", "--vertex-ai-default-model=m", "--reuse-http-port=true",
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

