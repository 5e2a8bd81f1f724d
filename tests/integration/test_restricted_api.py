"""--http-restricted-api and --grpc-restricted-protocol on a real tritond."""
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.server import REPO, Server

HTTP_DENIED = "This API is restricted, expecting header 'admin-key'"
GRPC_DENIED = "This protocol is restricted, expecting header 'triton-grpc-protocol-admin-key'"


@pytest.fixture(scope="module")
def srv():
    s = Server((REPO,), "--http-restricted-api=model-repository,statistics:admin-key=s3cret",
               "--grpc-restricted-protocol=model-repository,statistics:admin-key=s3cret")
    yield s
    s.stop()


def error_of(call, *args, **kw) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as exc:
        call(*args, **kw)
    return exc.value


def test_http_restricted_categories_need_the_header(srv):
    c = httpclient.InferenceServerClient(srv.url)
    try:
        err = error_of(c.get_model_repository_index)
        assert err.status() == "403" and err.message() == HTTP_DENIED
        err = error_of(c.get_inference_statistics, "simple", headers={"admin-key": "wrong"})
        assert err.status() == "403" and err.message() == HTTP_DENIED
        assert c.get_model_repository_index(headers={"Admin-Key": "s3cret"})
        assert c.get_inference_statistics("simple", headers={"admin-key": "s3cret"})
        assert c.is_server_ready() and c.get_model_metadata("simple")   # not restricted
    finally:
        c.close()


def test_grpc_restricted_categories_need_the_metadata(srv):
    c = grpcclient.InferenceServerClient(srv.grpc_url)
    try:
        err = error_of(c.get_model_repository_index)
        assert err.status() == "StatusCode.UNAVAILABLE" and err.message() == GRPC_DENIED
        err = error_of(c.get_inference_statistics, "simple")
        assert err.message() == GRPC_DENIED
        good = {"triton-grpc-protocol-admin-key": "s3cret"}
        assert c.get_model_repository_index(headers=good).models
        assert c.get_inference_statistics("simple", headers=good).model_stats
        assert c.is_server_ready() and c.is_model_ready("simple")      # not restricted
    finally:
        c.close()
