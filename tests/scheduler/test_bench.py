"""tritond.scheduler.bench: the core and the process shell's turns run and report."""
from tritond.scheduler import bench


def test_shell_dispatches_every_request_and_times_both_turns():
    # shell() raises unless each Request turn posted exactly its Execute to the instance.
    request, executed = bench.shell(blocks=2, n=50)
    assert request > 0 and executed > 0


def test_core_run_reports_a_cost_per_request():
    assert bench.run("test", 0, None, 1, 1, total=200) > 0
