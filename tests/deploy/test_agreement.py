"""The deployment files agree with tritond and with each other: the flags they pass parse as
tritond's, probes and ports point at the ports those flags choose, and every stop deadline
(systemd's TimeoutStopSec, Kubernetes' grace period, docker's stop timeout) leaves room for
the drain of --exit-timeout-secs."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.server import ROOT
from tritond import options
from tritond.cli import parse_options

SYSTEMD = ROOT / "deploy" / "systemd"
KUBE = ROOT / "deploy" / "kubernetes"
K8S_DEFAULT_GRACE = 30     # terminationGracePeriodSeconds when a pod spec does not set it
DOCKER_DEFAULT_STOP = 10   # `docker stop` waits this long before SIGKILL unless told
FINALIZE_MARGIN = 10       # seconds left for finalizing the models after the drain


def _unit() -> dict[str, str]:
    keys = {}
    for line in (SYSTEMD / "tritond.service").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            keys[key.strip()] = value.strip()
    return keys


def _env_file() -> dict[str, str]:
    env = {}
    for line in (SYSTEMD / "tritond.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


def test_env_file_names_only_tritond_variables_and_they_parse():
    env = _env_file()
    known = {opt.env for opt in options.OPTIONS} | {"TRITOND_ARGS"}   # the unit's own
    assert sorted(set(env) - known) == []
    resolved = parse_options(shlex.split(env["TRITOND_ARGS"]), env)
    assert resolved.model_repository == [env["TRITOND_MODEL_REPOSITORY"]]


def test_unit_runs_the_installed_tritond_with_the_installed_env_file():
    unit, ops = _unit(), (ROOT / "docs" / "operations.md").read_text()
    assert unit["Type"] == "notify" and unit["NotifyAccess"] == "main" and unit["WatchdogSec"]
    exe, *args = unit["ExecStart"].split()
    assert args == ["$TRITOND_ARGS"]
    # operations.md clones into /opt/tritond and makes .venv there, installs the env file
    assert exe == "/opt/tritond/.venv/bin/tritond" and "git clone <this repo> /opt/tritond" in ops
    assert f"deploy/systemd/tritond.env {unit['EnvironmentFile']}" in ops
    assert f"useradd --system --home /opt/tritond {unit['User']}" in ops


def test_unit_stop_deadline_exceeds_the_drain():
    unit, env = _unit(), _env_file()
    assert unit["KillSignal"] == "SIGTERM" and unit["KillMode"] in ("mixed", "control-group")
    drain = parse_options([], env).exit_timeout_secs
    assert int(unit["TimeoutStopSec"]) >= drain + FINALIZE_MARGIN


def test_systemd_analyze_verifies_the_unit(tmp_path):
    """Where systemd is installed: ExecStart pointed at this venv's tritond, the env file at
    the repository's (verify checks that both exist and every directive is known)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (it is not pip-installable)")
    exe = Path(sys.executable).with_name("tritond")
    text = (SYSTEMD / "tritond.service").read_text()
    text = text.replace("/opt/tritond/.venv/bin/tritond", str(exe))
    text = text.replace("/etc/tritond/tritond.env", str(SYSTEMD / "tritond.env"))
    (tmp_path / "tritond.service").write_text(text)
    done = subprocess.run([analyze, "verify", str(tmp_path / "tritond.service")],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def _resources() -> list[dict]:
    return [doc for path in sorted(KUBE.glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def _containers():
    for res in _resources():
        if res["kind"] in ("Deployment", "ServingRuntime"):
            pod = res["spec"]["template"]["spec"] if res["kind"] == "Deployment" else res["spec"]
            for container in pod["containers"]:
                yield res, pod, container


def _port(container: dict, port) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p.get("name") == port)


@pytest.mark.parametrize("kind", ["Deployment", "ServingRuntime"])
def test_kubernetes_args_parse_and_probes_use_their_ports(kind):
    (res, pod, container), = [c for c in _containers() if c[0]["kind"] == kind]
    opts = parse_options(container["args"], {})
    ports = {p["containerPort"] for p in container["ports"]}
    assert opts.http_port in ports
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if probe in container:
            assert _port(container, container[probe]["httpGet"]["port"]) == opts.http_port, probe
    named = {p.get("name"): p["containerPort"] for p in container["ports"]}
    if "grpc" in named:
        assert named["grpc"] == opts.grpc_port and named["metrics"] == opts.metrics_port
    if kind == "ServingRuntime":
        annotations = res["metadata"]["annotations"]
        assert int(annotations["prometheus.kserve.io/port"]) == opts.metrics_port


@pytest.mark.parametrize("kind", ["Deployment", "ServingRuntime"])
def test_kubernetes_grace_period_exceeds_the_drain(kind):
    (res, pod, container), = [c for c in _containers() if c[0]["kind"] == kind]
    drain = parse_options(container["args"], {}).exit_timeout_secs
    grace = pod.get("terminationGracePeriodSeconds", K8S_DEFAULT_GRACE)
    assert grace >= drain + FINALIZE_MARGIN


def test_service_targets_the_deployments_named_ports():
    (dep, _, container), = [c for c in _containers() if c[0]["kind"] == "Deployment"]
    (svc,) = [r for r in _resources() if r["kind"] == "Service"]
    names = {p["name"] for p in container["ports"]}
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= names
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()


def _dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_dockerfile_ports_and_healthcheck_match_its_command():
    text = _dockerfile()
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M).group(1)
    opts = parse_options(yaml.safe_load(cmd), {})
    exposed = {int(p) for p in re.search(r"^EXPOSE (.*)$", text, re.M).group(1).split()}
    assert exposed == {opts.http_port, opts.grpc_port, opts.metrics_port}
    assert f"127.0.0.1:{opts.http_port}/v2/health/ready" in text


def test_docker_run_lines_give_the_drain_time_to_finish():
    """`docker stop` kills after 10 s, before --exit-timeout-secs (30) is over: every
    `docker run` the repository shows sets --stop-timeout above the drain."""
    drain = options.Options().exit_timeout_secs
    pages = [ROOT / "Dockerfile", ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    runs = [(page.name, line) for page in pages for line in page.read_text().splitlines()
            if "docker run " in line and "-p 8000" in line]
    assert runs
    for page, line in runs:
        stop = re.search(r"--stop-timeout[= ](\d+)", line)
        assert stop and int(stop.group(1)) >= drain + FINALIZE_MARGIN > DOCKER_DEFAULT_STOP, \
            f"{page}: {line}"
