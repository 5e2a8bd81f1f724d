"""Loading progress lines: one per model still loading, every 5 s of its load."""
from tritond.parent.models import READY, Instance, ModelVersion, Registry
from tritond.parent.progress import LoadProgress


def version(name, v, started=100.0, instances=("m_0",)):
    mv = ModelVersion(name, v, f"/repo/{name}", "/repo", load_started=started)
    mv.instances = [Instance(i, "CPU", 0) for i in instances]
    return mv


def test_a_line_at_each_5s_until_loaded():
    reg = Registry()
    slow = reg.versions[("slow", 1)] = version("slow", 1, instances=("slow_0_0", "slow_0_1"))
    progress = LoadProgress(reg)
    assert progress.lines(104.9) == []
    assert progress.lines(105.0) == ["model 'slow' is still loading after 5s "
                                     "(version 1: waiting for instances slow_0_0, slow_0_1)"]
    assert progress.lines(109.0) == []                     # not again before 10 s
    slow.instances[0].loaded = True
    assert progress.lines(110.2) == ["model 'slow' is still loading after 10s "
                                     "(version 1: waiting for instance slow_0_1)"]
    assert progress.lines(126.0) == ["model 'slow' is still loading after 25s "
                                     "(version 1: waiting for instance slow_0_1)"]  # one, late
    slow.state = READY
    assert progress.lines(130.0) == []


def test_one_line_per_model_with_its_versions_and_fast_models_say_nothing():
    reg = Registry()
    reg.versions[("big", 1)] = version("big", 1, instances=())
    reg.versions[("big", 2)] = version("big", 2, started=101.0)
    reg.versions[("fast", 1)] = version("fast", 1, started=104.0)
    assert LoadProgress(reg).lines(106.0) == [
        "model 'big' is still loading after 5s (version 1; version 2: waiting for instance m_0)"]


def test_api_loads_count_and_a_reload_starts_over():
    reg = Registry()
    progress = LoadProgress(reg)
    first = version("m", 1)
    with reg.loading_now([first], publish=lambda: None):
        assert progress.lines(106.0) == [
            "model 'm' is still loading after 5s (version 1: waiting for instance m_0)"]
        first.state = READY
    again = version("m", 1, started=200.0)
    with reg.loading_now([again], publish=lambda: None):
        assert progress.lines(205.5) == [
            "model 'm' is still loading after 5s (version 1: waiting for instance m_0)"]
    assert reg.loading == {}


def test_a_namespaced_copy_is_named_as_triton_logs_it():
    reg = Registry()
    reg.versions[("/r/a/slow", 1)] = version("/r/a/slow", 1)
    assert LoadProgress(reg).lines(105.0) == [
        "model '/r/a::slow' is still loading after 5s (version 1: waiting for instance m_0)"]
