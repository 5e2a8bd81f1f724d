"""Labels Triton adds to every per-model metric: ``_<key>`` from the model's
``metric_tags`` and, with --model-namespacing, ``namespace``. prometheus-cpp writes a
sample's labels sorted, then a bucket's ``le`` or a summary's ``quantile``."""
from __future__ import annotations

import json

from prometheus_client.metrics_core import Metric


def with_tags(fams: list[Metric], versions) -> None:
    """Triton's labels ``_<key>`` from each model's ``metric_tags`` on every per-model
    sample (metric_model_reporter.cc), in prometheus-cpp's label order."""
    tags = {}
    for mv in versions:
        text = mv.spec.config_json
        if '"metric_tags"' in text and '"metric_tags":{}' not in text:
            found = json.loads(mv.spec.config_json).get("metric_tags") or {}
            if found:
                tags[mv.key] = {f"_{k}": str(v) for k, v in found.items()}
    if not tags:
        return
    for fam in fams:
        fam.samples = [_tagged(sample, tags) for sample in fam.samples]


def _tagged(sample, tags: dict):
    extra = tags.get(sample.labels.get("model"))
    if extra is None:
        return sample
    labels = {**sample.labels, **extra}
    return sample._replace(labels=dict(sorted(labels.items(), key=_label_order)))


def with_namespaces(fams: list[Metric], namespaces: dict[str, tuple[str, str]]) -> None:
    """Add Triton's ``namespace`` label (the model's repository) to every per-model
    sample; Triton adds it only with --model-namespacing (metric_model_reporter.cc).
    Labels stay in prometheus-cpp's order: sorted, then ``le`` or ``quantile``."""
    for fam in fams:
        fam.samples = [_namespaced(sample, namespaces) for sample in fam.samples]


def _namespaced(sample, namespaces: dict[str, tuple[str, str]]):
    """The ``model`` label is the scheduler's key (tritond/namespaces.py) or a name
    only one namespace serves: it becomes the name and its repository."""
    found = namespaces.get(sample.labels.get("model"))
    if found is None:
        return sample
    name, repo = found
    labels = {**sample.labels, "model": name, "namespace": repo}
    # prometheus-cpp writes a bucket's le (a quantile's quantile) after the sorted labels
    return sample._replace(labels=dict(sorted(labels.items(), key=_label_order)))


def _label_order(item) -> tuple:
    return (item[0] in ("le", "quantile"), item[0])
