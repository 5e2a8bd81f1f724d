"""Prometheus text exposition format 0.0.4, written here rather than by prometheus_client:
its writer appends ``_total`` to counter names in HELP/TYPE lines, and Triton's dashboards
expect ``nv_inference_count`` etc. as is."""
from __future__ import annotations

from prometheus_client.metrics_core import Metric


def render(fams: list[Metric]) -> bytes:
    """Prometheus text exposition format 0.0.4."""
    lines = []
    for fam in fams:
        lines.append(f"# HELP {fam.name} {_escape_help(fam.documentation)}")
        lines.append(f"# TYPE {fam.name} {fam.type}")
        for sample in fam.samples:
            labels = ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in sample.labels.items())
            value = float(sample.value)
            if value != value:
                text = "NaN"                # an empty summary window (prometheus' spelling)
            else:
                text = str(int(value)) if value.is_integer() else repr(value)
            lines.append(f"{sample.name}{{{labels}}} {text}" if labels else f"{sample.name} {text}")
    return ("\n".join(lines) + "\n").encode()


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
