"""rewardkit's GRiT against VBench's own GRiT code (``vbench/third_party/grit_src``, VBench 0.1.5 wheel).

VBench's GRiT needs detectron2, which cannot be installed here. The official files that define GRiT's
modules are run as they are, with the few detectron2 / fvcore names they import replaced by stand-ins kept
in this file (removed after the tests):

- ``grit/modeling/backbone/vit.py`` (``ViT``, ``ViT_FPN``) and ``centernet/modeling/backbone/fpn_p5.py``
  (``LastLevelP6P7_P5``): stand-ins for detectron2's ``Backbone`` base class, ``ShapeSpec``, the backbone
  registry and fvcore's weight initialisers (only used at construction);
- ``centernet/modeling/dense_heads/centernet_head.py`` (``CenterNetHead``) and ``centernet.py``
  (``CenterNet``, its inference: ``predict_instances``, ``nms_and_topK``): stand-ins for ``configurable``
  (a no-op: the tests pass the config's values), ``get_norm("GN")`` = ``GroupNorm(32, C)``, ``batched_nms``
  = torchvision's (what detectron2's is), ``cat`` = ``torch.cat``, and minimal ``Instances`` / ``Boxes``
  (field containers with indexing and ``cat``);
- ``grit/modeling/text/text_decoder.py`` and ``modeling_bert.py`` (the text decoder, ``GRiTTextDecoder``,
  ``AutoRegressiveBeamSearch``): only ``file_utils`` (downloads, unused) is stubbed.

What is compared, on one tiny random checkpoint in the official layout (``rewardkit.testing.grit``), loaded
strictly by both sides: the layout (the official modules' state-dict keys and shapes at GRiT-B's real
sizes equal rewardkit's), the feature pyramid P3-P7, the CenterNet head's outputs, the proposals (boxes and
scores) and the greedy descriptions (tokens, and mean log-probabilities within 1e-5) for both task tokens.
Every |official - rewardkit| <= 1e-5. The cascade ROI heads (``GRiTROIHeadsAndTextDecoder`` subclasses
detectron2's ``CascadeROIHeads``) and the whole detector are compared in
tests/parity/test_vbench_grit_cascade_parity.py, against detectron2's own source where one is given.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections import namedtuple
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.ops import batched_nms

from rewardkit.rewards.grit import CAPTION_BEGIN, END, OBJECT_BEGIN, Grit, GritConfig, load_grit
from rewardkit.testing.grit import tiny_grit
from tests.parity.official_vbench import remove_patches, vbench_root

pytestmark = [pytest.mark.parity, pytest.mark.usefixtures("one_thread")]

_ADDED: list[str] = []


def _module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    _ADDED.append(name)
    return module


def _package(name: str, path: Path) -> None:
    _module(name, __path__=[str(path)])


class _Boxes:
    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor

    def __getitem__(self, item) -> _Boxes:
        return _Boxes(self.tensor[item])

    def __len__(self) -> int:
        return len(self.tensor)

    @staticmethod
    def cat(boxes: list[_Boxes]) -> _Boxes:
        return _Boxes(torch.cat([b.tensor for b in boxes]))


class _Instances:
    def __init__(self, image_size, **fields) -> None:
        object.__setattr__(self, "image_size", image_size)
        object.__setattr__(self, "_fields", dict(fields))

    def __setattr__(self, name, value) -> None:
        self._fields[name] = value

    def __getattr__(self, name):
        try:
            return self.__dict__["_fields"][name]
        except KeyError:
            raise AttributeError(name) from None

    def has(self, name: str) -> bool:
        return name in self._fields

    def get(self, name: str):
        return self._fields[name]

    def remove(self, name: str) -> None:
        del self._fields[name]

    def __len__(self) -> int:
        return len(next(iter(self._fields.values())))

    def __getitem__(self, item) -> _Instances:
        return _Instances(self.image_size, **{key: value[item] for key, value in self._fields.items()})

    @staticmethod
    def cat(items: list[_Instances]) -> _Instances:
        fields = {}
        for key, value in items[0]._fields.items():
            values = [item.get(key) for item in items]
            fields[key] = torch.cat(values) if isinstance(value, torch.Tensor) else type(value).cat(values)
        return _Instances(items[0].image_size, **fields)


class _Backbone(nn.Module):
    pass


def _install(root: Path) -> Path:
    grit_src = root / "vbench" / "third_party" / "grit_src"
    registry = types.SimpleNamespace(register=lambda *a, **k: (lambda f: f))
    _module("fvcore")
    _module("fvcore.nn")
    _module("fvcore.nn.weight_init", c2_msra_fill=lambda m: None, c2_xavier_fill=lambda m: None)
    _module("detectron2")
    _module("detectron2.layers", CNNBlockBase=nn.Module, Conv2d=nn.Conv2d, ShapeSpec=namedtuple("ShapeSpec", "channels height width stride", defaults=(None,) * 4),
            get_norm=lambda norm, channels: nn.GroupNorm(32, channels), batched_nms=batched_nms, cat=lambda tensors, dim=0: torch.cat(tensors, dim))
    _module("detectron2.config", configurable=lambda f: f)
    _module("detectron2.structures", Instances=_Instances, Boxes=_Boxes)
    _module("detectron2.modeling", detector_postprocess=None)
    _module("detectron2.modeling.backbone", Backbone=_Backbone)
    _module("detectron2.modeling.backbone.backbone", Backbone=_Backbone)
    _module("detectron2.modeling.backbone.build", BACKBONE_REGISTRY=registry)
    _module("detectron2.modeling.backbone.fpn", FPN=None)
    _module("detectron2.modeling.backbone.resnet", build_resnet_backbone=None)
    _module("detectron2.modeling.proposal_generator")
    _module("detectron2.modeling.proposal_generator.build", PROPOSAL_GENERATOR_REGISTRY=registry)
    _module("detectron2.utils")
    _module("detectron2.utils.comm", get_world_size=lambda: 1)
    centernet = grit_src / "centernet2" / "centernet"
    _package("centernet", centernet)
    _package("centernet.modeling", centernet / "modeling")
    _package("centernet.modeling.backbone", centernet / "modeling" / "backbone")
    _package("centernet.modeling.dense_heads", centernet / "modeling" / "dense_heads")
    _package("centernet.modeling.layers", centernet / "modeling" / "layers")
    _module("centernet.modeling.layers.deform_conv", DFConv2d=None)  # deformable convs are off in GRiT
    _module("centernet.modeling.debug", debug_train=None, debug_test=None)  # imports cv2; debug is off
    _module("centernet.modeling.dense_heads.utils", reduce_sum=None, _transpose=None)  # imports cv2; training only
    _package("grit_official_backbone", grit_src / "grit" / "modeling" / "backbone")
    _package("grit_official_text", grit_src / "grit" / "modeling" / "text")
    _module("grit_official_text.file_utils", cached_path=None)
    return grit_src


@pytest.fixture(scope="module")
def official(tmp_path_factory: pytest.TempPathFactory) -> Iterator[types.SimpleNamespace]:
    folder = tmp_path_factory.mktemp("vbench-wheel")
    root = vbench_root(folder)
    if root is None:
        pytest.skip("VBench's code is not here: set VBENCH_WHEEL to vbench-0.1.5-py3-none-any.whl (see .ci/run)")
    before = set(sys.modules)
    _install(root)
    try:
        yield types.SimpleNamespace(
            vit=importlib.import_module("grit_official_backbone.vit"),
            fpn_p5=importlib.import_module("centernet.modeling.backbone.fpn_p5"),
            head=importlib.import_module("centernet.modeling.dense_heads.centernet_head"),
            centernet=importlib.import_module("centernet.modeling.dense_heads.centernet"),
            text=importlib.import_module("grit_official_text.text_decoder"),
        )
    finally:
        for name in set(sys.modules) - before:
            sys.modules.pop(name, None)
        _ADDED.clear()
        remove_patches(folder)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return tiny_grit(tmp_path_factory.mktemp("grit"), word=None)["weights"]


@pytest.fixture(scope="module")
def ours(checkpoint) -> Grit:
    return load_grit(checkpoint["model"], checkpoint["tokenizer"])


def _state(path: str, prefix: str) -> dict[str, torch.Tensor]:
    state = torch.load(path, weights_only=True)["model"]
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def _official_backbone(o, c: GritConfig, use_act_checkpoint: bool = False) -> nn.Module:
    """As ``build_vit_fpn_backbone`` builds it, at the sizes of ``c``."""
    from functools import partial

    vit = o.vit.ViT(
        img_size=c.image_size, patch_size=c.patch, embed_dim=c.dim, depth=c.depth, num_heads=c.heads, drop_path_rate=0.1,
        window_size=c.window, mlp_ratio=c.mlp / c.dim, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6),
        window_block_indexes=list(c.window_blocks), residual_block_indexes=[], use_act_checkpoint=use_act_checkpoint,
        use_rel_pos=True, out_feature="last_feat", pretrain_img_size=c.pretrain_grid * c.patch,
    )
    return o.vit.ViT_FPN(bottom_up=vit, top_block=o.fpn_p5.LastLevelP6P7_P5(c.channels, c.channels), out_channels=c.channels,
                         strides=[8, 16, 32, 64, 128], vit_out_dim=c.dim)


def _official_head(o, c: GritConfig) -> nn.Module:
    return o.head.CenterNetHead(c.channels, 5, num_classes=1, with_agn_hm=True, only_proposal=True, norm="GN",
                                num_cls_convs=4, num_box_convs=c.centernet_convs, num_share_convs=0, use_deformable=False)


def _official_textual(o, c: GritConfig) -> nn.Module:
    return o.text.TransformerDecoderTextualHead(
        object_feature_size=c.channels, vocab_size=c.vocab, hidden_size=c.text_hidden, num_layers=c.text_layers,
        attention_heads=c.text_heads, feedforward_size=c.text_ffn, mask_future_positions=True, padding_idx=0,
        decoder_type="bert_en", use_act_checkpoint=False, max_caption_length=c.text_positions,
    )


def _shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


def test_real_size_layout_equals_official(official):
    """GRiT-B as VBench's config builds it (ViT-B, 256-channel pyramid, 4-conv CenterNet head, 6-layer text
    decoder of 768 with 1024 positions): same keys and shapes as rewardkit's ``Grit()``."""
    c = GritConfig()
    with torch.device("meta"):
        ours = Grit(c)
    backbone, head, textual = _official_backbone(official, c), _official_head(official, c), _official_textual(official, c)
    assert _shapes(backbone) == _shapes(ours.backbone)
    assert _shapes(head) == _shapes(ours.proposal_generator.centernet_head)
    assert _shapes(textual) == _shapes(ours.roi_heads.text_decoder.textual)


def _image(seed: int, height: int, width: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, 3, height, width), generator=generator, dtype=torch.uint8)


def test_pyramid_head_and_proposals_match_official(official, checkpoint, ours):
    c = ours.config
    backbone = _official_backbone(official, c).eval()
    backbone.load_state_dict(_state(checkpoint["model"], "backbone."), strict=True)
    head = _official_head(official, c).eval()
    head.load_state_dict(_state(checkpoint["model"], "proposal_generator.centernet_head."), strict=True)
    frame = _image(0, 70, 100)
    images = (frame.float() - ours.pixel_mean) / ours.pixel_std
    images = torch.nn.functional.pad(images, (0, 28, 0, 26))  # ImageList: zero padding to multiples of 32
    with torch.no_grad():
        expected = backbone(images)
        found = ours.backbone(images)
        for name, level in zip(("p3", "p4", "p5", "p6", "p7"), found, strict=True):
            torch.testing.assert_close(level, expected[name], atol=1e-5, rtol=0)
        _, regressions, heatmaps = head([expected[name] for name in ("p3", "p4", "p5", "p6", "p7")])
        our_regressions, our_heatmaps = ours.proposal_generator.centernet_head(found)
        for a, b in zip(regressions + heatmaps, our_regressions + our_heatmaps, strict=True):
            torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
        generator = official.centernet.CenterNet(
            in_channels=c.channels, num_classes=1, score_thresh=1e-4, with_agn_hm=True, only_proposal=True,
            pre_nms_topk_test=1000, post_nms_topk_test=256, nms_thresh_test=0.9, centernet_head=head,
        ).eval()
        proposals, _ = generator(types.SimpleNamespace(image_sizes=[(70, 100)]), expected, None)
        boxes, scores = ours.proposal_generator(found)[0]
    assert len(proposals[0]) == len(boxes) > 0
    torch.testing.assert_close(boxes, proposals[0].proposal_boxes.tensor, atol=1e-5, rtol=0)
    torch.testing.assert_close(scores, proposals[0].scores, atol=1e-5, rtol=0)


@pytest.mark.parametrize("begin", [OBJECT_BEGIN, CAPTION_BEGIN])
def test_greedy_descriptions_match_official(official, checkpoint, ours, begin):
    """GRiTTextDecoder.infer with AutoRegressiveBeamSearch(beam 1, 40 steps), VBench's settings, on random
    14 x 14 object features of 5 boxes: the same tokens and mean log-probabilities."""
    c = ours.config
    textual = _official_textual(official, c).eval()
    textual.load_state_dict(_state(checkpoint["model"], "roi_heads.text_decoder.textual."), strict=True)
    search = official.text.AutoRegressiveBeamSearch(end_token_id=END, max_steps=40, beam_size=1, objectdet=begin == OBJECT_BEGIN, per_node_beam_size=1)
    decoder = official.text.GRiTTextDecoder(textual, beamsearch_decode=search, begin_token_id=begin, loss_type="smooth").eval()
    generator = torch.Generator().manual_seed(begin)  # a per-box offset, so that boxes differ
    features = torch.randn(5, 196, c.channels, generator=generator) + 3 * torch.randn(5, 1, c.channels, generator=generator)
    with torch.no_grad():
        expected = decoder({"object_features": features})
    tokens, logprobs = ours.roi_heads.text_decoder.generate(features, begin)
    assert torch.equal(tokens, expected["predictions"])
    torch.testing.assert_close(logprobs, expected["logprobs"], atol=1e-5, rtol=0)
    assert (tokens == END).any()  # some descriptions end before the step limit (the [SEP] rules are exercised)
