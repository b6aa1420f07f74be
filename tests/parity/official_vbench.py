"""VBench's own code (the ``vbench`` 0.1.5 wheel from PyPI, pinned by sha256), importable beside rewardkit.

The wheel cannot join the ``parity`` dependency group: it pins ``numpy<2`` and ``transformers==4.33.2``.
CI downloads it without its dependencies (``.ci/run``: ``pip download vbench==0.1.5 --no-deps``) and
points ``VBENCH_WHEEL`` at it; the tests skip when it is absent. Its modules are read from an extracted
copy; compatibility patches (kept here, never in rewardkit) stand in for what importing them would drag
in without being used by the code under test:

- ``vbench/__init__.py`` imports every dimension's dependencies: the package is registered as a bare
  namespace over the extracted folder instead, so only the modules a test imports run.
- ``vbench.utils`` imports decord (only ``load_dimension_info`` is taken from it, unused by the tests).
- ``imageio`` (imported by ``third_party/amt/utils/utils.py`` for its file readers, unused here) is a
  module whose ``imread``/``imwrite`` raise.
- ``omegaconf`` (for ``OmegaConf.load`` of the network config) is replaced by a YAML reader returning
  attribute-accessible dicts.

The wheel's ``motion_smoothness.py`` and ``third_party/amt`` equal those of the GitHub repository at
commit 45e79ec14e69a2187202c675d2dbce1a71843d53 except that GitHub's ``torch.load`` passes
``weights_only=False`` (checked when this was written).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import types
import zipfile
from pathlib import Path
from typing import Any

__all__ = ["VBENCH_WHEEL_SHA256", "extract_wheels", "vbench_root"]

VBENCH_WHEEL_NAME = "vbench-0.1.5-py3-none-any.whl"
VBENCH_WHEEL_SHA256 = "13266ed4715d91a7669ab58484b9e010bc91bb96e129d414fb512d4937890023"
# VBench 0.1.5 pins transformers==4.33.2, whose generate() its Tag2Text captions go through; CI downloads it
# beside the vbench wheel (.ci/run) and the Tag2Text parity test runs VBench's code under it in a subprocess.
TRANSFORMERS_WHEEL_NAME = "transformers-4.33.2-py3-none-any.whl"
TRANSFORMERS_WHEEL_SHA256 = "5a9a757bea5b5a1b94796805bcb5978b552208a3ac193f46edda66be6f4a5488"


def _verified(path: Path, name: str, sha256: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not there: expected {name}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise ValueError(f"{path} has sha256 {digest}, expected {sha256} ({name})")
    return path


def _wheel() -> Path | None:
    given = os.environ.get("VBENCH_WHEEL")
    if not given:
        return None
    path = Path(given)
    return _verified(path / VBENCH_WHEEL_NAME if path.is_dir() else path, VBENCH_WHEEL_NAME, VBENCH_WHEEL_SHA256)


def extract_wheels(folder: Path) -> tuple[Path, Path] | None:
    """The vbench 0.1.5 and transformers 4.33.2 wheels (``VBENCH_WHEEL``; ``TRANSFORMERS_WHEEL``, by default
    the transformers wheel beside the vbench one), hash-checked and extracted into two folders under
    ``folder``; None when either is absent. Nothing is imported here."""
    vbench = _wheel()
    if vbench is None:
        return None
    transformers = Path(os.environ.get("TRANSFORMERS_WHEEL", vbench.parent / TRANSFORMERS_WHEEL_NAME))
    if transformers.is_dir():
        transformers = transformers / TRANSFORMERS_WHEEL_NAME
    if not transformers.is_file():
        return None
    _verified(transformers, TRANSFORMERS_WHEEL_NAME, TRANSFORMERS_WHEEL_SHA256)
    roots = (folder / "vbench", folder / "transformers")
    for wheel, root in zip((vbench, transformers), roots, strict=True):
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(root)
    return roots


class _AttrDict(dict):
    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


# Stand-in modules this file put into sys.modules (removed by remove_patches: a stub ``imageio`` without a
# spec breaks every later ``importlib.util.find_spec("imageio")``, diffusers' among them).
_STUBS: list[str] = []


def _install_patches(root: Path) -> None:
    import yaml

    def wrap(value: Any) -> Any:
        if isinstance(value, dict):
            return _AttrDict({key: wrap(item) for key, item in value.items()})
        return [wrap(item) for item in value] if isinstance(value, list) else value

    omegaconf = types.ModuleType("omegaconf")
    omegaconf.OmegaConf = types.SimpleNamespace(load=lambda path: wrap(yaml.safe_load(Path(path).read_text())))
    if "omegaconf" not in sys.modules:
        sys.modules["omegaconf"] = omegaconf
        _STUBS.append("omegaconf")

    def unused(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("imageio is patched out in rewardkit's parity tests")

    if importlib.util.find_spec("imageio") is None:
        imageio = types.ModuleType("imageio")
        imageio.imread = imageio.imwrite = unused
        sys.modules["imageio"] = imageio
        _STUBS.append("imageio")

    package = types.ModuleType("vbench")
    package.__path__ = [str(root / "vbench")]
    sys.modules["vbench"] = package

    utils = types.ModuleType("vbench.utils")

    utils.load_dimension_info = unused
    sys.modules["vbench.utils"] = utils


def remove_patches(folder: Path) -> None:
    """Undo ``vbench_root``: the stand-in modules, every ``vbench.*`` module imported and the path entry."""
    for name in [*_STUBS, *(name for name in sys.modules if name == "vbench" or name.startswith("vbench."))]:
        sys.modules.pop(name, None)
    _STUBS.clear()
    if str(folder) in sys.path:
        sys.path.remove(str(folder))


def vbench_root(folder: Path) -> Path | None:
    """Extract the pinned wheel into ``folder`` (once) and make ``vbench.*`` importable from it; None when
    ``VBENCH_WHEEL`` is not set."""
    wheel = _wheel()
    if wheel is None:
        return None
    if "vbench" not in sys.modules or not hasattr(sys.modules["vbench"], "__path__"):
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(folder)
        sys.path.insert(0, str(folder))
        _install_patches(folder)
    return Path(sys.modules["vbench"].__path__[0]).parent


