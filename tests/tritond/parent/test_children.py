"""Process spawning helpers."""
from tritond.parent import children


def test_thread_pool_defaults_do_not_override_the_user():
    env = {"OMP_NUM_THREADS": "8"}
    children.child_environment_defaults(env)
    assert env["OMP_NUM_THREADS"] == "8"            # the user's choice wins
    assert env["OPENBLAS_NUM_THREADS"] == "1" and env["MKL_NUM_THREADS"] == "1"
