"""The parent's model registry and instance plans (from the ModelSpec)."""
from __future__ import annotations

from tritond.parent.models import (READY, UNAVAILABLE, UNLOADED, ModelVersion, Registry,
                                   format_table, instance_plan, planned_instances)
from tritond.spec import InstanceGroup, ModelSpec

from tests.specs import spec


def test_versions_of_skips_unloaded_versions():
    reg = Registry()
    reg.versions[("m", 1)] = ModelVersion("m", 1, "/r/m", "/r", state=READY)
    reg.versions[("m", 2)] = ModelVersion("m", 2, "/r/m", "/r", state=UNAVAILABLE, reason=UNLOADED)
    reg.versions[("n", 1)] = ModelVersion("n", 1, "/r/n", "/r")
    assert [mv.version for mv in reg.versions_of("m")] == [1]
    assert reg.versions_of("x") == []


def test_instance_plan_of_gpu_groups_numbers_across_devices():
    got = ModelSpec("m", instance_groups=(InstanceGroup("g", "GPU", 2, (0, 1)),
                                          InstanceGroup("c", "CPU", 1)))
    assert instance_plan(got) == [("g_0", "GPU", 0), ("g_1", "GPU", 0), ("g_2", "GPU", 1),
                                  ("g_3", "GPU", 1), ("c_0", "CPU", 0)]


def test_instance_plan_without_groups_is_one_cpu_instance():
    assert instance_plan(ModelSpec("e")) == [("e_0_0", "CPU", 0)]
    assert instance_plan(spec('name: "m" backend: "onnxruntime"')) == [
        ("m_0", "CPU", 0), ("m_1", "CPU", 0)]       # normalize: ORT CPU groups count 2


def test_planned_instances_of_a_passive_group_are_passive():
    got = ModelSpec("m", instance_groups=(InstanceGroup("a", "CPU", 1),
                                          InstanceGroup("p", "CPU", 2, passive=True)))
    assert [(i.name, i.passive) for i in planned_instances(got)] == [
        ("a_0", False), ("p_0", True), ("p_1", True)]
    assert [i.passive for i in planned_instances(ModelSpec("e"))] == [False]


def test_the_start_up_table_names_namespaced_copies_as_triton_does():
    # --model-namespacing keys ("<repository>/<name>") show as Triton's "<repository>::<name>"
    ready = ModelVersion("/r/a/m", 1, "/r/a/m", "/r/a", state=READY)
    other = ModelVersion("/r/b/m", 1, "/r/b/m", "/r/b", state=READY)
    plain = ModelVersion("simple", 2, "/r/a/simple", "/r/a", state=READY)
    text = format_table([other, ready, plain], {"/r/b/bad": "no such backend"})
    rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]
    assert rows == ["Model", "/r/a::m", "/r/b::m", "simple", "/r/b::bad"]
    assert "/r/a/m" not in text and "/r/b/bad" not in text


def test_a_multi_line_status_continues_on_rows_of_its_own():
    """The table is logged unescaped (Triton's LOG_TABLE_INFO): a reason's lines go one
    under the other, each inside the table's borders, as Triton's table printer does."""
    bad = ModelVersion("bad", 1, "/r/bad", "/r", state="UNAVAILABLE",
                       reason="ValueError: x\nI1130 forged] y\n")
    lines = format_table([bad], {}).splitlines()
    assert all(line[:1] in "+|" for line in lines)
    assert lines[3:5] == ["| bad   | 1       | UNAVAILABLE: ValueError: x |",
                          "|       |         | I1130 forged] y            |"]
