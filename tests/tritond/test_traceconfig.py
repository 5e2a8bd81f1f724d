"""--trace-config parsing (Triton's syntax and messages) and start-up problems."""
import pytest

from tritond import options, traceconfig
from tritond.options import OptionError


def resolve(*entries, **legacy):
    return traceconfig.resolve(options.Options(trace_config=list(entries), **legacy))


def test_new_settings_win_over_the_deprecated_flags_and_levels_accumulate():
    cfg = resolve("rate=5", "level=TIMESTAMPS", "level=tensors", "triton,file=/tmp/t.json",
                  "triton,log-frequency=3", "count=7",
                  trace_rate=100, trace_file="/tmp/old.json", trace_level=["OFF"])
    assert (cfg.rate, cfg.count, cfg.file, cfg.log_frequency) == (5, 7, "/tmp/t.json", 3)
    assert cfg.level == ["TIMESTAMPS", "TENSORS"]
    assert resolve(trace_rate=9, trace_level=["TIMESTAMPS"]).rate == 9


def test_opentelemetry_settings():
    cfg = resolve("mode=opentelemetry", "opentelemetry,url=http://h:1/v1/traces",
                  "opentelemetry,resource=service.name=x", "opentelemetry,resource=a=b",
                  "opentelemetry,bsp_schedule_delay=10")
    assert cfg.mode == "opentelemetry" and cfg.url == "http://h:1/v1/traces"
    assert cfg.resource == {"service.name": "x", "a": "b"} and cfg.bsp == {
        "bsp_schedule_delay": 10}


@pytest.mark.parametrize("text,message", [
    (",rate=1", "No trace mode specified"),
    ("rate", "option format is '<trace mode>,<setting>=<value>'"),
    ("triton,file=", "option format"),
    ("jaeger,url=x", "invalid value for trace mode option: jaeger"),
    ("level=loud", "invalid value for trace level option: loud"),
    ("count=-2", "expected an integer >= -1"),
    ("rate=x", "expected an integer"),
    ("triton,url=x", "unknown --trace-config setting 'url' for mode 'triton'"),
    ("opentelemetry,resource=novalue", "expects <key>=<value>"),
])
def test_bad_entries_are_refused(text, message):
    with pytest.raises(OptionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        traceconfig.entry(text)


def test_problems(tmp_path):
    assert traceconfig.problems(resolve("level=TENSORS", "mode=opentelemetry"))
    assert traceconfig.problems(resolve("level=TIMESTAMPS",
                                        f"triton,file={tmp_path}/no/such/dir/t.json"))
    assert traceconfig.problems(resolve("level=TIMESTAMPS", f"triton,file={tmp_path}/t")) == []


def test_bad_bsp_settings_name_their_mode_and_variable_as_triton(monkeypatch):
    """QA L0_cmdline_trace: tritonserver stops with 'Bad option: "--trace-config
    opentelemetry,bsp_max_queue_size"' and, for a bad OTEL_BSP_* variable when the flag
    does not set that setting, 'Bad option: "OTEL_BSP_MAX_QUEUE_SIZE"'."""
    for setting in ("bsp_max_queue_size", "bsp_schedule_delay", "bsp_max_export_batch_size"):
        with pytest.raises(OptionError, match=f'Bad option: "--trace-config '
                                              f'opentelemetry,{setting}"'):
            traceconfig.entry(f"opentelemetry,{setting}=bad_value")
    with pytest.raises(OptionError, match='Bad option: "--trace-config triton,log-frequency"'):
        traceconfig.entry("triton,log-frequency=x")
    for var in ("OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_SCHEDULE_DELAY",
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"):
        monkeypatch.setenv(var, "bad_value")
        found = traceconfig.problems(resolve("mode=opentelemetry"))
        assert any(f'Bad option: "{var}"' in p for p in found), found
        setting = var[len("OTEL_"):].lower()
        assert not any(var in p for p in traceconfig.problems(
            resolve("mode=opentelemetry", f"opentelemetry,{setting}=5")))   # the flag wins
        assert not any(var in p for p in traceconfig.problems(resolve()))   # triton mode
        monkeypatch.delenv(var)


def test_deprecated_trace_level_takes_tritons_old_words():
    """QA L0_cmdline_trace runs --trace-level=MIN and --trace-level=MAX."""
    from tritond.cli import parse_options

    for word in ("MIN", "max", "on", "true"):
        assert traceconfig.resolve(parse_options(
            ["--model-repository", "/r", f"--trace-level={word}"], {})).level == ["TIMESTAMPS"]
    assert traceconfig.resolve(parse_options(
        ["--model-repository", "/r", "--trace-level=false"], {})).level == ["OFF"]
