"""tritond/parent/modelready.py: the version string of ``pb_utils.is_model_ready``, read as
python_backend's GetModelVersionFromString reads it (std::stol), with its texts."""
from __future__ import annotations

import pytest

from tritond.errors import Code, TritonError
from tritond.parent.modelready import bls_version


@pytest.mark.parametrize("text,version", [("", -1), ("0", 0), ("3", 3), (" 12", 12),
                                          ("+4", 4), ("7abc", 7), ("2.9", 2)])
def test_versions_read_as_stol(text, version):
    assert bls_version(text) == version


@pytest.mark.parametrize("text,detail", [
    ("x", "'x' (details: stol), version should be an integral value > 0"),
    (" ", "' ' (details: stol), version should be an integral value > 0"),
    ("99999999999999999999", "'99999999999999999999' (details: stol), version should be an "
                             "integral value > 0"),
    ("-1", "'-1', version should be an integral value > 0"),
])
def test_refusals_in_python_backends_words(text, detail):
    with pytest.raises(TritonError) as e:
        bls_version(text)
    assert e.value.code == Code.INVALID_ARG
    assert e.value.message == ("failed to get model version from specified version string "
                               + detail)
