"""frontend.models: model versions as the frontend sees them."""
from tritond import messages


def test_preserve_ordering_of_the_oldest_sequence_batcher():
    from tritond.frontend.models import ModelVersion

    from tests.specs import spec

    def ordered(scheduling):
        cfg = spec(f'name: "m" backend: "python" max_batch_size: 4 {scheduling}')
        return ModelVersion(messages.ModelEntry("m", 1, "READY", spec=cfg)).preserve_ordering

    assert ordered("sequence_batching { oldest { preserve_ordering: true } }")
    assert not ordered("sequence_batching { oldest { } }")
    assert ordered("dynamic_batching { preserve_ordering: true }")


def test_unknown_name_is_invalid_arg_with_namespacing_else_not_found():
    from tritond.errors import Code, TritonError
    from tritond.frontend.models import Models

    for namespacing, code in ((False, Code.NOT_FOUND), (True, Code.INVALID_ARG)):
        models = Models(namespacing)
        models.update(messages.ModelTable([messages.ModelEntry("m", 1, "UNAVAILABLE")], True))
        for call in (models.resolve, lambda n: models.lookup(n, "1"), models.is_ready):
            try:
                call("nope")
            except TritonError as exc:
                assert exc.code == code
                assert exc.message == "Request for unknown model: 'nope' is not found"
            else:
                raise AssertionError("an unknown model was accepted")


def test_namespaces_are_the_repositories_of_the_model_directories():
    from tritond.frontend.models import Models

    models = Models(True)
    models.update(messages.ModelTable([
        messages.ModelEntry("/r1/a", 1, "READY", model_dir="/r1/a"),
        messages.ModelEntry("/r2/b", 1, "READY", model_dir="/r2/b"),
        messages.ModelEntry("/r2/a", 1, "READY", model_dir="/r2/a"),
        messages.ModelEntry("/r2/c", -1, "UNKNOWN")], True))
    # keys and the names only one namespace serves -> (name, namespace)
    assert models.namespaces(["/r1", "/r2"]) == {
        "/r1/a": ("a", "/r1"), "/r2/a": ("a", "/r2"), "/r2/b": ("b", "/r2"),
        "b": ("b", "/r2")}


def test_a_name_two_namespaces_serve_is_ambiguous_a_unique_one_resolves():
    from tritond.errors import Code, TritonError
    from tritond.frontend.models import Models

    models = Models(True)
    models.update(messages.ModelTable([
        messages.ModelEntry("/r1/a", 1, "READY"), messages.ModelEntry("/r2/a", 1, "READY"),
        messages.ModelEntry("/r2/b", 1, "READY"), messages.ModelEntry("/r2/c", -1, "UNKNOWN")],
        True))
    mv = models.resolve("b")
    assert (mv.key, mv.name, mv.metadata["name"]) == ("/r2/b", "b", "b")
    for call in (models.resolve, lambda n: models.lookup(n, "1"), models.is_ready,
                 models.ready_versions):
        try:
            call("a")
        except TritonError as exc:
            assert exc.code == Code.INVALID_ARG
            assert exc.message == ("There are 2 identifiers of model 'a' in global map, model "
                                   "namespace must be provided to resolve ambiguity.")
        else:
            raise AssertionError("an ambiguous name was resolved")
    assert [r["name"] for r in models.index()] == ["a", "a", "b", "c"]
    try:                                  # a client cannot name a key
        models.resolve("/r2/b")
    except TritonError as exc:
        assert exc.code == Code.INVALID_ARG
        assert exc.message == "Request for unknown model: '/r2/b' is not found"
    else:
        raise AssertionError("a key was resolved for a client")
    assert models.resolve("/r2/b", by_key=True) is mv        # an ensemble step's key
