"""TOML reading on every supported Python: the standard library's ``tomllib`` (3.11+), else ``tomli``
(the same API; a dependency on 3.10). Import it as ``from rewardkit.toml import tomllib``."""

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

__all__ = ["tomllib"]
