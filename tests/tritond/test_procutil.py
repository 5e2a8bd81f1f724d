"""Child process titles and signal handling (tritond/procutil.py)."""
import os
import signal

from tritond.procutil import Bootstrap, ignore_group_signals, role_title


def boot(role, name, title=""):
    return Bootstrap(role, name, "@a", "@p", "id", 1, title=title)


def test_titles_name_the_role():
    assert role_title(boot("worker", "w3", "simple_0_0 (version 1)")) == \
        "tritond: worker simple_0_0 (version 1)"
    assert role_title(boot("worker", "w3")) == "tritond: worker w3"
    assert role_title(boot("scheduler", "scheduler")) == "tritond: scheduler"
    assert role_title(boot("frontend", "frontend-0")) == "tritond: frontend 0"


def test_group_signals_pass_by_and_forked_children_get_the_defaults():
    """In a forked copy of this test process (it must not keep the handlers)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])   # as spawned
            ignore_group_signals()
            os.kill(os.getpid(), signal.SIGTERM)     # unblocked: delivered, and survived
            os.kill(os.getpid(), signal.SIGINT)
            grandchild = os.fork()
            if grandchild == 0:
                os.kill(os.getpid(), signal.SIGTERM)  # the default again: it dies
                os._exit(0)
            _, status = os.waitpid(grandchild, 0)
            code = 0 if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
