"""Deferred imports: heavy or optional packages load when first used, not when rewardkit is imported.

``cv2 = lazy_import("cv2", extra="eval")`` at module level stands for the module; the first attribute
access or call imports it. ``resize = lazy_import("torchvision.transforms.functional", "resize")`` stands
for one attribute of a module (a function or class that is called, or an enum whose members are read).
A package that is not installed raises :class:`MissingDependencyError` naming the extra that installs
it; :func:`check_dependencies` raises the same error up front, when a reward is created.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from typing import Any

from rewardkit.errors import MissingDependencyError

__all__ = ["lazy_import", "check_dependencies", "is_installed"]


class _Deferred:
    """Stands for a module (or one of its attributes) until first use; then forwards to it."""

    __slots__ = ("_lazy_module", "_lazy_attribute", "_lazy_extra", "_lazy_target")

    def __init__(self, module: str, attribute: str | None, extra: str | None) -> None:
        object.__setattr__(self, "_lazy_module", module)
        object.__setattr__(self, "_lazy_attribute", attribute)
        object.__setattr__(self, "_lazy_extra", extra)
        object.__setattr__(self, "_lazy_target", None)

    def _lazy_resolve(self) -> Any:
        target = object.__getattribute__(self, "_lazy_target")
        if target is None:
            module_name = object.__getattribute__(self, "_lazy_module")
            try:
                target = importlib.import_module(module_name)
            except ModuleNotFoundError as error:
                raise _missing(module_name, object.__getattribute__(self, "_lazy_extra")) from error
            attribute = object.__getattribute__(self, "_lazy_attribute")
            if attribute is not None:
                target = getattr(target, attribute)
            object.__setattr__(self, "_lazy_target", target)
        return target

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lazy_resolve(), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._lazy_resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        attribute = object.__getattribute__(self, "_lazy_attribute")
        return f"<deferred {object.__getattribute__(self, '_lazy_module')}{'.' + attribute if attribute else ''}>"


def lazy_import(module: str, attribute: str | None = None, *, extra: str | None = None) -> Any:
    """A stand-in for ``module`` (or ``module.attribute``) that imports it on first use.

    ``extra`` names the rewardkit extra that installs the package (``pip install "rewardkit[EXTRA]"``);
    leave it None for packages every install has.
    """
    return _Deferred(module, attribute, extra)


def is_installed(module: str) -> bool:
    """True when the top-level package of ``module`` can be imported (found without importing it)."""
    return importlib.util.find_spec(module.partition(".")[0]) is not None


def check_dependencies(namespace: Mapping[str, Any]) -> None:
    """Raise :class:`MissingDependencyError` for the first deferred import in ``namespace`` (a module's
    globals) whose package is not installed; used when a reward is created, before it is used."""
    for value in namespace.values():
        if isinstance(value, _Deferred):
            module = object.__getattribute__(value, "_lazy_module")
            if not is_installed(module):
                raise _missing(module, object.__getattribute__(value, "_lazy_extra"))


def _missing(module: str, extra: str | None) -> MissingDependencyError:
    package = module.partition(".")[0]
    if extra is None:
        return MissingDependencyError(f"the package {package!r} is not installed; reinstall rewardkit")
    return MissingDependencyError(
        f"this needs the package {package!r}, which the {extra!r} extra installs: pip install \"rewardkit[{extra}]\""
    )
