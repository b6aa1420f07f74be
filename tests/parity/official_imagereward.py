"""The official ``image-reward`` 1.5 package, made to run on transformers 5 offline with a given checkpoint.

Shared by ``tests/parity/test_imagereward_parity.py`` and ``benchmarks/bench_imagereward.py``. Every
compatibility patch lives here, never in rewardkit:

- ``ImageReward/models/BLIP/med.py`` imports ``apply_chunking_to_forward``, ``prune_linear_layer`` and
  ``find_pruneable_heads_and_indices`` from ``transformers.modeling_utils``; transformers 5 moved the first
  two to ``transformers.pytorch_utils`` and removed the third (only used for head pruning): they are put
  back on ``transformers.modeling_utils`` before the package is imported;
- its ``BertModel`` calls ``self.invert_attention_mask`` and ``self.get_head_mask``, removed from
  ``PreTrainedModel`` in transformers 5: added to the official ``BertModel`` class with transformers 4's
  definitions (mask ``(1 - m) * finfo.min``; no head mask -> ``[None] * layers``);
- its ``BertModel.__init__`` calls ``self.init_weights()``, which in transformers 5 needs ``post_init``'s
  bookkeeping: it runs ``post_init`` instead (which calls the real ``init_weights``);
- ``blip.init_tokenizer`` downloads ``bert-base-uncased`` and reads ``additional_special_tokens_ids``
  (gone in transformers 5): replaced by the same steps on a local vocab folder, ``enc_token_id`` from
  ``convert_tokens_to_ids('[ENC]')``;
- ``BLIP_Pretrain`` hard-codes ``vit='large'`` and ``ImageReward`` ``MLP(768)``: for a tiny checkpoint,
  ``create_vit`` and ``MLP`` are swapped for the official classes built with the tiny sizes.

Then the checkpoint is loaded as ``ImageReward.utils.load`` does (``load_state_dict(strict=False)``), but
the result is checked here: no missing and no unexpected keys.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch


def _patch_transformers() -> None:
    import transformers.modeling_utils as modeling_utils
    import transformers.pytorch_utils as pytorch_utils

    modeling_utils.apply_chunking_to_forward = pytorch_utils.apply_chunking_to_forward
    modeling_utils.prune_linear_layer = pytorch_utils.prune_linear_layer
    if not hasattr(modeling_utils, "find_pruneable_heads_and_indices"):

        def find_pruneable_heads_and_indices(*args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError("head pruning is not used by ImageReward scoring")

        modeling_utils.find_pruneable_heads_and_indices = find_pruneable_heads_and_indices


def _patch_official(tokenizer_folder: str, vision_width: int, vision_depth: int, text_width: int) -> None:
    import ImageReward.models.BLIP.blip_pretrain as blip_pretrain
    import ImageReward.models.BLIP.med as med
    from ImageReward.models.BLIP.vit import VisionTransformer
    from transformers import BertTokenizer

    # The package's __init__ rebinds the name ``ImageReward.ImageReward`` to the class; take the module.
    image_reward_module = sys.modules["ImageReward.ImageReward"]

    def invert_attention_mask(self: Any, encoder_attention_mask: torch.Tensor) -> torch.Tensor:
        if encoder_attention_mask.dim() == 3:
            extended = encoder_attention_mask[:, None, :, :]
        else:
            extended = encoder_attention_mask[:, None, None, :]
        extended = extended.to(dtype=self.dtype)
        return (1.0 - extended) * torch.finfo(self.dtype).min

    def get_head_mask(self: Any, head_mask: Any, num_hidden_layers: int) -> list:
        if head_mask is not None:
            raise NotImplementedError("head masks are not used by ImageReward scoring")
        return [None] * num_hidden_layers

    med.BertModel.invert_attention_mask = invert_attention_mask
    med.BertModel.get_head_mask = get_head_mask
    original_init_weights = med.BertPreTrainedModel.init_weights

    def init_weights(self: Any) -> None:
        # post_init sets up what transformers 5's init_weights needs, then calls init_weights itself.
        if getattr(self, "_rewardkit_in_post_init", False):
            original_init_weights(self)
            return
        self._rewardkit_in_post_init = True
        self.post_init()

    med.BertModel.init_weights = init_weights

    def init_tokenizer() -> Any:
        tokenizer = BertTokenizer.from_pretrained(tokenizer_folder)
        tokenizer.add_special_tokens({"bos_token": "[DEC]"})
        tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
        tokenizer.enc_token_id = tokenizer.convert_tokens_to_ids("[ENC]")
        return tokenizer

    blip_pretrain.init_tokenizer = init_tokenizer

    # Keep the originals, so that a later call with other sizes (tiny, then real) starts from them.
    originals = _ORIGINALS.setdefault("sizes", (blip_pretrain.create_vit, image_reward_module.MLP))
    official_create_vit, official_mlp = originals
    blip_pretrain.create_vit = official_create_vit
    image_reward_module.MLP = official_mlp
    if (vision_width, vision_depth) != (1024, 24):

        def create_vit(vit: str, image_size: int, *args: Any) -> tuple[Any, int]:
            assert vit == "large"
            encoder = VisionTransformer(
                img_size=image_size, patch_size=16, embed_dim=vision_width, depth=vision_depth,
                num_heads=vision_width // 64, drop_path_rate=0.1,
            )  # fmt: skip
            return encoder, vision_width

        blip_pretrain.create_vit = create_vit
    if text_width != 768:

        class TinyMLP(official_mlp):  # type: ignore[misc, valid-type]
            def __init__(self, input_size: int) -> None:
                super().__init__(text_width)

        image_reward_module.MLP = TinyMLP


_ORIGINALS: dict[str, Any] = {}


def official_imagereward(checkpoint: str | os.PathLike[str], tokenizer_folder: str | os.PathLike[str]) -> Any:
    """The official ``ImageReward.ImageReward`` model (fp32, cpu, eval) with ``checkpoint`` loaded and
    every key checked; ``med_config.json`` is read from the checkpoint's folder."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _patch_transformers()
    import ImageReward  # noqa: F401

    image_reward_module = sys.modules["ImageReward.ImageReward"]
    checkpoint = Path(checkpoint)
    med_config = checkpoint.parent / "med_config.json"
    config = json.loads(med_config.read_text())
    state_dict = torch.load(checkpoint, map_location="cpu", weights_only=True)
    vision_width = state_dict["blip.visual_encoder.cls_token"].shape[-1]
    vision_depth = len({key.split(".")[3] for key in state_dict if key.startswith("blip.visual_encoder.blocks.")})
    _patch_official(str(tokenizer_folder), vision_width, vision_depth, config["hidden_size"])

    model = image_reward_module.ImageReward(med_config=str(med_config), device="cpu")
    result = model.load_state_dict(state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise AssertionError(f"official model vs checkpoint: {result}")
    return model.eval()
