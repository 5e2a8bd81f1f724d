"""Spawner.boot: what a child gets at spawn time follows the log levels of now."""
from tritond import channel, messages
from tritond.options import Options
from tritond.parent.levels import LogLevelRelay
from tritond.parent.spawner import Spawner


def test_boot_names_the_child_and_carries_the_levels_logged_now():
    options = Options(log_file="/tmp/x.log", log_format="iso8601")
    relay = LogLevelRelay(options, None, "parent-addr", {}, {}, scheduler=lambda: None)
    spawner = Spawner(options, "sid", "parent-addr", {}, relay, on_exit=lambda child: None)
    relay.current = messages.LogLevels(False, True, False, 2)   # as a logging API change sets it
    boot = spawner.boot("worker", "w3", "simple_0")
    assert (boot.role, boot.name, boot.title) == ("worker", "w3", "simple_0")
    assert boot.address == channel.address("sid", "w3")
    assert (boot.parent, boot.server_id) == ("parent-addr", "sid")
    assert (boot.log_info, boot.log_warning, boot.log_error, boot.log_verbose) == \
        (False, True, False, 2)
    assert (boot.log_file, boot.log_format) == ("/tmp/x.log", "iso8601")
