"""reid-bench: a benchmark harness for person re-identification from 3D data.

Importing this package must stay cheap (no torch, ray or mlflow): `reid-bench list` relies on it.
"""

from importlib.metadata import PackageNotFoundError, version as _dist_version

try:
    __version__ = _dist_version("reid-bench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

#: Version of the plugin API. A plugin declares the version it was written against; the registry
#: refuses a plugin whose major version differs.
API_VERSION = "1.0"

__all__ = ["API_VERSION", "__version__"]
