"""The model repository: config.pbtxt parsing, auto-fill, normalisation,
validation and version policies.

The parent scans and validates; the first worker of a model runs its backend's
auto-complete and then the same normalisation and validation (``scan`` re-exports
what both need).
"""
from .scan import (CONFIG_FILE, ModelSource, config_path, load_labels, load_source,  # noqa: F401
                   normalize, read_config, read_labels, scan, validate)
from .spec import spec_from_config  # noqa: F401
