"""Restricted-API settings and categories (frontend/restrict.py), Triton's rules."""
import pytest

from tritond.cli import parse_options
from tritond.frontend import restrict


def test_parse_categories_keys_and_values():
    got = restrict.parse(["model-repository,health:admin-key=s3cret", "inference:k=v=w"],
                         "http-restricted-api", "api")
    assert got == {"model-repository": ("admin-key", "s3cret"), "health": ("admin-key", "s3cret"),
                   "inference": ("k", "v=w")}
    grpc = restrict.parse(["trace:k=v"], "grpc-restricted-protocol", "protocol", restrict.GRPC_PREFIX)
    assert grpc == {"trace": ("triton-grpc-protocol-k", "v")}


@pytest.mark.parametrize("entry, message", [
    ("health", "--http-restricted-api option format is '<apis>:<key>=<value>'. Got health"),
    ("health:k", "option format"),
    ("bogus:k=v", "unknown restricted api 'bogus'"),
])
def test_bad_entries(entry, message):
    with pytest.raises(restrict.RestrictionError, match=message):
        restrict.parse([entry], "http-restricted-api", "api")


def test_a_category_in_two_groups_stops_the_start(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_options(["--model-repository", "/r", "--http-restricted-api", "health:a=1",
                       "--http-restricted-api", "health,trace:b=2"], {})
    assert exc.value.code == 2
    assert "restricted api 'health' can not be specified in multiple config groups" in \
        capsys.readouterr().err


def test_entries_from_the_environment_are_split_on_semicolons():
    opts = parse_options(["--model-repository", "/r"],
                         {"TRITOND_HTTP_RESTRICTED_API": "health,metadata:a=1;trace:b=2"})
    assert opts.http_restricted_api == ["health,metadata:a=1", "trace:b=2"]


@pytest.mark.parametrize("path, category", [
    ("/v2/health/live", "health"), ("/v2/models/m/ready", "health"),
    ("/v2/models/m/versions/2/ready", "health"), ("/v2", "metadata"),
    ("/v2/models/m", "metadata"), ("/v2/models/m/versions/1", "metadata"),
    ("/v2/models/m/infer", "inference"), ("/v2/models/m/generate_stream", "inference"),
    ("/v2/models/m/config", "model-config"), ("/v2/models/stats", "statistics"),
    ("/v2/models/m/versions/1/stats", "statistics"), ("/v2/trace/setting", "trace"),
    ("/v2/models/m/trace/setting", "trace"), ("/v2/logging", "logging"),
    ("/v2/repository/index", "model-repository"),
    ("/v2/repository/models/m/load", "model-repository"),
    ("/v2/systemsharedmemory/status", "shared-memory"),
    ("/v2/cudasharedmemory/region/r/register", "shared-memory"), ("/metrics", None),
])
def test_http_categories(path, category):
    assert restrict.http_category(path) == category
