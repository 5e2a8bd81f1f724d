"""What a reload keeps: Triton's in-place instance_group update (the pure plan)."""
from tritond.parent.models import READY, Instance, ModelVersion
from tritond.parent import reloads
from tritond.repository import spec_from_config
from tritond.repository.modelconfig import parse_pbtxt

BASE = ('name: "m" backend: "python" input [{ name: "I" data_type: TYPE_FP32 dims: [1] }] '
        'output [{ name: "O" data_type: TYPE_FP32 dims: [1] }] ')


def _served(groups):
    cfg = parse_pbtxt(BASE + groups, "c")
    mv = ModelVersion("m", 1, "/r/m", "/r", state=READY, spec=spec_from_config(cfg, 1))
    mv.basis = reloads.basis(cfg)
    mv.instances = [Instance(f"m_0_{i}", "CPU", 0) for i in range(sum(
        g.count for g in cfg.instance_group))]
    return mv


def test_instance_count_changes_keep_the_serving_instances():
    mv = _served("instance_group [{ name: 'm_0' count: 3 kind: KIND_CPU }]")
    up = reloads.instance_update(mv, parse_pbtxt(
        BASE + "instance_group [{ name: 'm_0' count: 4 kind: KIND_CPU }]", "c"))
    assert up.order[:3] == mv.instances and [i.name for i in up.added] == ["m_0_3"]
    assert up.removed == [] and up.spec.instance_groups[0].count == 4
    up = reloads.instance_update(mv, parse_pbtxt(
        BASE + "instance_group [{ name: 'm_0' count: 1 kind: KIND_CPU }]", "c"))
    assert up.order == mv.instances[:1] and up.removed == mv.instances[1:] and up.added == []


def test_a_rename_or_a_split_keeps_instances_of_the_same_signature():
    mv = _served("instance_group [{ name: 'm_0' count: 2 kind: KIND_CPU }]")
    up = reloads.instance_update(mv, parse_pbtxt(
        BASE + "instance_group [{ name: 'a' count: 1 kind: KIND_CPU }, "
        "{ name: 'b' count: 2 kind: KIND_CPU }]", "c"))
    assert up.order[:2] == mv.instances and [i.name for i in up.added] == ["b_1"]
    same = parse_pbtxt(BASE + "instance_group [{ name: 'm_0' count: 2 kind: KIND_CPU }]", "c")
    assert reloads.instance_update(mv, same) is None


def test_only_instance_group_and_version_policy_changes_keep_a_version():
    mv = _served("instance_group [{ name: 'm_0' count: 1 kind: KIND_CPU }]")
    mv.stamps = {"1": 10}
    moved = parse_pbtxt(BASE + "version_policy { all {} } instance_group [{ count: 5 }]", "c")
    assert reloads.keeps(mv, moved, {"1": 10})
    assert not reloads.keeps(mv, moved, {"1": 11})           # its files changed
    batching = parse_pbtxt(BASE + "max_batch_size: 4", "c")
    assert not reloads.keeps(mv, batching, {"1": 10})        # any other config change
