from tritond.parent.models import RESTART_LIMIT, ModelVersion


def test_uncounted_crashes_never_reach_the_limit():
    mv = ModelVersion("m", 1, "/x", "/")
    # SIGBUS deaths (a client shrank its region under the worker) are not counted
    assert all(mv.record_crash(float(t), counted=False) == 0.1 for t in range(3 * RESTART_LIMIT))
    assert len(mv.crashes) == 0


def test_counted_crashes_back_off_then_hit_the_limit():
    mv = ModelVersion("m", 1, "/x", "/")
    delays = [mv.record_crash(float(t)) for t in range(RESTART_LIMIT)]
    assert delays[:3] == [0.1, 0.2, 0.4] and delays[-1] is None
    assert mv.crash_reason("killed", 30) == (
        f"{RESTART_LIMIT} instance crashes in 60s (last: killed); reloading every 30s")
