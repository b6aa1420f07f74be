"""Tiny random-weight checkpoints in the exact official file layouts, for offline tests and benchmarks.

Nothing here downloads: each writer builds a small model of the same architecture family, with the same
key names and nesting as the published checkpoint, and saves it the way the official file is saved, so
that rewardkit loads it through the path a user's download takes. One module per model family
(``rewardkit.testing.clip``, ``.dover``, ``.imagereward``, ``.musiq``, ``.vbench``, ``.videoreward``,
``.videoscore``, ``.umt``, ``.finetune``, ``.wan``); this module holds what they share, the ``testing:<name>`` tiny models the
fine-tuning recipes name, and the network guard. ``rewardkit.testing.plugin`` exposes the checkpoints as
pytest fixtures. Importing this module imports nothing heavy.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "NetworkAccessError",
    "TINY_MODELS",
    "TINY_REWARDS",
    "block_network",
    "cached_tiny_model",
    "gradient_images",
    "pattern_image",
    "put_in_hf_cache",
    "tiny_reward_options",
    "write_tiny_model",
]

# The tiny models the fine-tuning recipes name as ``testing:<name>``: name -> "module:writer", the writer
# saving a diffusers pipeline folder (``model_index.json``) into the folder it is given.
TINY_MODELS = {
    "tiny-t2v": "rewardkit.testing.finetune:write_tiny_t2v_pipeline",
    "tiny-animatediff": "rewardkit.testing.finetune:write_tiny_animatediff_pipeline",
    "tiny-wan": "rewardkit.testing.wan:write_tiny_wan_pipeline",
    # not a model: the synthetic bright-vs-dark clips and pairs the preference smoke recipes train on
    "bright-dark": "rewardkit.testing.finetune:write_bright_dark_data",
}


def write_tiny_model(name: str, folder: str | os.PathLike[str]) -> Path:
    """Write the tiny model ``testing:<name>`` (a key of ``TINY_MODELS``) into ``folder``."""
    from rewardkit.parsing import did_you_mean

    if name not in TINY_MODELS:
        raise ValueError(f"unknown tiny model 'testing:{name}'.{did_you_mean(name, TINY_MODELS)} Known: "
                         + ", ".join(f"testing:{known}" for known in TINY_MODELS))
    module, function = TINY_MODELS[name].split(":")
    return getattr(importlib.import_module(module), function)(folder)


def cached_tiny_model(name: str, marker: str) -> Path:
    """The folder of ``testing:<name>`` in the rewardkit cache, written on first use. It is written beside
    the cache entry and renamed into place (the first rename wins), so concurrent processes (torchrun ranks,
    parallel tests) never read a half-written folder; ``marker`` is the file whose presence means complete."""
    import tempfile

    from rewardkit.weights import cache_root

    folder = cache_root() / name
    if (folder / marker).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
    try:
        write_tiny_model(name, staging)
        if folder.exists() and not (folder / marker).is_file():
            shutil.rmtree(folder, ignore_errors=True)  # left incomplete by a killed run
        try:
            os.rename(staging, folder)
        except OSError:
            if not (folder / marker).is_file():  # not another process's complete copy: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


# The tiny fixture of every registered reward: name -> "module:function", the function writing the tiny files
# into the folder it is given and returning the create_reward options that load them ({} for weight-free
# metrics). A new reward adds its line here; the contract tests fail for a registered reward without one.
TINY_REWARDS = {
    "aesthetic": "rewardkit.testing.clip:tiny_aesthetic",
    "aesthetic_quality": "rewardkit.testing.clip:tiny_aesthetic_quality",
    "appearance_style": "rewardkit.testing.clip:tiny_appearance_style",
    "background_consistency": "rewardkit.testing.clip:tiny_background_consistency",
    "clip": "rewardkit.testing.clip:tiny_clip",
    "color": "rewardkit.testing.grit:tiny_grit_dimension",
    "dover": "rewardkit.testing.dover:tiny_dover",
    "dynamic_degree": "rewardkit.testing.vbench:tiny_dynamic_degree",
    "dynamic_degree_flow": "rewardkit.testing:weight_free",
    "hpsv2": "rewardkit.testing.clip:tiny_hpsv2",
    "human_action": "rewardkit.testing.umt:tiny_human_action",
    "imagereward": "rewardkit.testing.imagereward:tiny_imagereward",
    "imaging_quality": "rewardkit.testing.musiq:tiny_imaging_quality",
    "motion_smoothness": "rewardkit.testing.amt:tiny_motion_smoothness",
    "motion_smoothness_flow": "rewardkit.testing:weight_free",
    "multiple_objects": "rewardkit.testing.grit:tiny_grit_dimension",
    "object_class": "rewardkit.testing.grit:tiny_grit_dimension",
    "overall_consistency": "rewardkit.testing.vbench:tiny_overall_consistency",
    "patch": "rewardkit.testing.clip:tiny_patch",
    "pickscore": "rewardkit.testing.clip:tiny_pickscore",
    "scene": "rewardkit.testing.tag2text:tiny_scene",
    "spatial_relationship": "rewardkit.testing.grit:tiny_grit_dimension",
    "subject_consistency": "rewardkit.testing.vbench:tiny_subject_consistency",
    "temporal_flickering": "rewardkit.testing:weight_free",
    "temporal_style": "rewardkit.testing.vbench:tiny_overall_consistency",
    "videoreward": "rewardkit.testing.videoreward:tiny_videoreward",
    "videoscore": "rewardkit.testing.videoscore:tiny_videoscore",
}


def tiny_reward_options(name: str, folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Write reward ``name``'s tiny files into ``folder``; returns the ``create_reward`` options that load
    them (``create_reward(name, **options)``)."""
    from rewardkit.parsing import did_you_mean

    if name not in TINY_REWARDS:
        raise ValueError(f"no tiny fixture for reward {name!r}.{did_you_mean(name, TINY_REWARDS)} Add one to rewardkit.testing.TINY_REWARDS.")
    module, function = TINY_REWARDS[name].split(":")
    Path(folder).mkdir(parents=True, exist_ok=True)
    return getattr(importlib.import_module(module), function)(folder)


def weight_free(folder: str | os.PathLike[str]) -> dict[str, str]:
    """The fixture of a weight-free metric: no files, no options."""
    return {}


class NetworkAccessError(RuntimeError):
    """Raised when code under test tries to reach the network."""


def block_network() -> None:
    """Make every internet connection and host-name lookup in this process raise NetworkAccessError.

    Local sockets (socketpair, AF_UNIX: used by DataLoader workers) and loopback lookups still work.
    """
    real_connect, real_connect_ex, real_getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def guard(real):
        def connect(self, address, *args, **kwargs):
            if self.family in (socket.AF_INET, socket.AF_INET6):
                raise NetworkAccessError(f"tests must not open network connections (tried {address!r})")
            return real(self, address, *args, **kwargs)

        return connect

    def getaddrinfo(host, *args, **kwargs):
        if host not in (None, "localhost", "127.0.0.1", "::1", b"localhost"):
            raise NetworkAccessError(f"tests must not resolve host names (tried {host!r})")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = guard(real_connect)
    socket.socket.connect_ex = guard(real_connect_ex)
    socket.getaddrinfo = getaddrinfo


def put_in_hf_cache(cache_dir: str | os.PathLike[str], repo: str, files: dict[str, str | os.PathLike[str]]) -> None:
    """Place files in a Hugging Face Hub cache exactly as a download would: ``blobs/<sha256>``,
    ``snapshots/<commit>/<name>`` symlinks and ``refs/main``."""
    root = Path(cache_dir) / f"models--{repo.replace('/', '--')}"
    commit = hashlib.sha1(repo.encode()).hexdigest()
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    for name, source in files.items():
        digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()
        blob = root / "blobs" / digest
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, blob)
        link = root / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))


def pattern_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A uint8 ``[H, W, 3]`` test image with smooth gradients, a disk and noise: real edges for the
    resampling in preprocessing to work on (parity tests)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width].astype(np.float64)
    x, y = xx / max(width - 1, 1), yy / max(height - 1, 1)
    disk = ((x - 0.4) ** 2 + (y - 0.6) ** 2) < 0.08
    image = np.stack([255 * x, 255 * y, 255 * (1 - x) * (1 - disk)], axis=-1)
    image += rng.normal(0, 20, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def gradient_images(count: int, sizes: list[tuple[int, int]], seed: int = 0) -> list:
    """``count`` RGB PIL images cycling through ``sizes`` ((width, height)): gradients plus noise
    (benchmark workloads)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = []
    for index in range(count):
        width, height = sizes[index % len(sizes)]
        yy, xx = np.mgrid[:height, :width]
        base = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 16 * index)], axis=-1)
        noisy = base + rng.integers(-24, 25, base.shape)
        images.append(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), mode="RGB"))
    return images
