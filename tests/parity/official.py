"""The official HPSv2 package (``hpsv2`` 1.2.0), set up to score offline with a given checkpoint.

Shared by the parity tests (``tests/parity``) and the benchmarks (``benchmarks/bench_hpsv2.py``).

``hpsv2.img_score.score`` calls ``initialize_model()``, which builds the model, and downloads the ~3.9 GB
LAION base weights into it, only while the module-level ``model_dict`` is empty. ``official_hpsv2`` fills
``model_dict`` with a model built by the package's own bundled open_clip with ``pretrained=None`` and
exactly the other arguments ``initialize_model`` uses, so ``score(..., cp=PATH)`` then only loads ``PATH``
(``model.load_state_dict(torch.load(PATH)["state_dict"])``, strict) on every call and never downloads.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["ensure_hpsv2_vocab", "official_hpsv2", "release_official_hpsv2"]

VOCAB_NAME = "bpe_simple_vocab_16e6.txt.gz"


def ensure_hpsv2_vocab() -> Path:
    """Copy open_clip's BPE vocabulary into hpsv2's bundled open_clip, which the hpsv2 1.2.0 wheel lacks
    (its tokenizer reads it at import). Must run before ``hpsv2`` is imported; returns the file's path."""
    import open_clip

    spec = importlib.util.find_spec("hpsv2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the official hpsv2 package is not installed (uv dependency group 'parity')"
        )
    target = Path(spec.submodule_search_locations[0]) / "src" / "open_clip" / VOCAB_NAME
    if not target.is_file():
        source = Path(open_clip.__file__).parent / VOCAB_NAME
        # Write beside the target and rename, so a concurrent run never sees a half-written file.
        temporary = target.with_name(f"{VOCAB_NAME}.{os.getpid()}.tmp")
        shutil.copyfile(source, temporary)
        temporary.replace(target)
    return target


def official_hpsv2(architecture: str = "ViT-H-14") -> Callable[..., list]:
    """Fill ``hpsv2.img_score.model_dict`` with the official model (random weights, fp32, cpu) built by
    hpsv2's bundled open_clip for ``architecture`` (a name in its ``model_configs``, e.g. ``ViT-H-14`` or
    ``ViT-B-32``), and return the official ``hpsv2.img_score.score`` function.

    Call ``score(image_or_list, prompt, cp=PATH, hps_version="v2.1")``: it loads ``PATH`` into this
    model on every call. Note that ``score`` always tokenizes with ``get_tokenizer('ViT-H-14')``, the
    plain CLIP BPE tokenizer, which is also the one every non-HF open_clip config uses.
    """
    ensure_hpsv2_vocab()
    # score() creates HPS_ROOT (default ~/.cache/hpsv2) on every call; keep that out of the home folder.
    os.environ.setdefault("HPS_ROOT", tempfile.mkdtemp(prefix="hpsv2-root-"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import hpsv2.img_score as img_score
    from hpsv2.src.open_clip import create_model_and_transforms

    release_official_hpsv2()
    # The arguments of hpsv2.img_score.initialize_model, except pretrained=None and device='cpu'.
    model, _, preprocess_val = create_model_and_transforms(
        architecture,
        pretrained=None,
        precision="amp",
        device="cpu",
        jit=False,
        force_quick_gelu=False,
        force_custom_text=False,
        force_patch_dropout=False,
        force_image_size=None,
        pretrained_image=False,
        image_mean=None,
        image_std=None,
        light_augmentation=True,
        aug_cfg={},
        output_dict=True,
        with_score_predictor=False,
        with_region_predictor=False,
    )
    img_score.model_dict["model"] = model
    img_score.model_dict["preprocess_val"] = preprocess_val
    # score() moves the model and inputs to this module-level device ('cuda' when available); the
    # comparisons run on the cpu, where its torch.cuda.amp.autocast() is a no-op, i.e. plain fp32.
    img_score.device = "cpu"
    return img_score.score


def release_official_hpsv2() -> None:
    """Drop the official model from ``hpsv2.img_score.model_dict`` (frees its memory)."""
    import sys

    module = sys.modules.get("hpsv2.img_score")
    if module is not None:
        module.model_dict.clear()
