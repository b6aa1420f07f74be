"""rewardkit's GRiT cascade ROI heads against VBench's ``GRiTROIHeadsAndTextDecoder`` on detectron2's real code.

VBench's ROI heads (``vbench/third_party/grit_src/grit/modeling/roi_heads``, VBench 0.1.5 wheel, see
``official_vbench``) subclass detectron2's ``CascadeROIHeads``: the ROI pooler (``ROIPooler``, ROIAlignV2 via
torchvision), the box transform (``Box2BoxTransform``), the box heads (``FastRCNNConvFCHead``), the mask head,
``Boxes`` / ``Instances`` and the config system are detectron2's. Here they are detectron2's own Python source,
imported from a checkout beside the project:

- source: https://github.com/facebookresearch/detectron2 at commit 02b5c4e295e990042a714712c21dc79b731e8833
  (``git archive`` of it extracted to a folder); ``DETECTRON2_SRC`` points at that folder. The test skips
  without it. Nothing of detectron2 is in this repository.
- detectron2's compiled extension (``detectron2._C``) is not needed: the modules used here import none of it
  (NMS and ROIAlign are torchvision's). Its pure-Python dependencies are not rewardkit's; run with
  ``uv run --with fvcore --with iopath --with omegaconf --with cloudpickle --with hydra-core --with pycocotools``
  (the test skips, naming them, when one is missing).
- stand-ins, kept in this file and removed after: VBench's ``grit`` package ``__init__``s (they import the
  training data registrations) are bare namespaces over the wheel's folders, and the heads' tokenizer
  (``BertTokenizer.from_pretrained("bert-base-uncased")``, a download) and the text decoder's ``file_utils``
  (download helpers importing boto3, unused) are stand-ins (the tokenizer is
  the tiny checkpoint's bert-base-uncased one that rewardkit loads; the download helpers are absent).

The heads are built by VBench's own ``from_config`` from VBench's ``GRiT_B_DenseCap_ObjectDet.yaml`` with
``setup_cfg``'s overrides (confidence 0.5, beam 1, no soft NMS), at the tiny checkpoint's sizes
(``rewardkit.testing.grit``), and load its ``roi_heads.*`` (every key used; the only keys not in the
checkpoint are ``text_decoder_det.*``, which alias ``text_decoder``'s tensors). Both sides get the same P3-P5 features
and proposals (rewardkit's backbone and proposal generator, which test_vbench_grit_parity.py matches to
VBench's) and must give the same final boxes, scores and descriptions: per task, VBench's ``forward``
(``DenseCap``: captions score the boxes; ``ObjectDet``) and ``forward_object`` (the ``det_obj`` names).
Measured (24 proposals of a 70 x 100 frame, all 24 kept by both sides): max |official - rewardkit| over boxes
and scores 2.6e-8 for both tasks (asserted <= 1e-5); descriptions and names identical.
The whole detector on one 32 x 40 frame (VBench's backbone, CenterNet and heads on detectron2 vs
``Grit.detect``): 44 proposals, 42 boxes, max |diff| 2.2e-8, captions and names identical.

Run: DETECTRON2_SRC=<folder> VBENCH_WHEEL=<vbench-0.1.5 wheel> uv run --with fvcore --with iopath --with omegaconf
--with cloudpickle --with hydra-core --with pycocotools pytest tests/parity/test_vbench_grit_cascade_parity.py -s
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from rewardkit.rewards.grit import CAPTION_BEGIN, OBJECT_BEGIN, Grit, load_grit
from rewardkit.testing.grit import tiny_grit
from tests.parity.official_vbench import remove_patches, vbench_root

pytestmark = [pytest.mark.parity, pytest.mark.slow, pytest.mark.usefixtures("one_thread")]  # ~1 min on 2 busy cores

D2_DEPENDENCIES = ("fvcore", "iopath", "omegaconf", "cloudpickle", "hydra", "pycocotools")
GRIT = "vbench.third_party.grit_src.grit"


def _namespace(name: str, path: Path) -> None:
    module = types.ModuleType(name)
    module.__path__ = [str(path)]
    sys.modules[name] = module


@pytest.fixture(scope="module")
def official(tmp_path_factory: pytest.TempPathFactory) -> Iterator[types.SimpleNamespace]:
    source = os.environ.get("DETECTRON2_SRC")
    if not source:
        pytest.skip("detectron2's source is not here: set DETECTRON2_SRC to an extracted detectron2 checkout (see the docstring)")
    if not (Path(source) / "detectron2" / "modeling" / "roi_heads" / "cascade_rcnn.py").is_file():
        raise FileNotFoundError(f"DETECTRON2_SRC={source} has no detectron2/modeling/roi_heads/cascade_rcnn.py")
    missing = [name for name in D2_DEPENDENCIES if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"detectron2's Python dependencies {missing} are not installed: run under `uv run --with ...` (see the docstring)")
    folder = tmp_path_factory.mktemp("vbench-wheel")
    before = set(sys.modules)
    root = vbench_root(folder)
    if root is None:
        pytest.skip("VBench's code is not here: set VBENCH_WHEEL to vbench-0.1.5-py3-none-any.whl (see .ci/run)")
    sys.path.insert(0, source)
    try:
        grit = root / "vbench" / "third_party" / "grit_src"
        _namespace(GRIT, grit / "grit")
        for sub in ("data", "modeling", "modeling/backbone", "modeling/roi_heads", "modeling/text"):
            _namespace(f"{GRIT}.{sub.replace('/', '.')}", grit / "grit" / sub)
        _namespace("centernet", grit / "centernet2" / "centernet")
        sys.modules[f"{GRIT}.modeling.text.file_utils"] = types.SimpleNamespace(cached_path=None)  # downloads (boto3)
        heads = importlib.import_module(f"{GRIT}.modeling.roi_heads.grit_roi_heads")
        yield types.SimpleNamespace(
            heads=heads,
            vit=importlib.import_module(f"{GRIT}.modeling.backbone.vit"),
            fpn_p5=importlib.import_module("centernet.modeling.backbone.fpn_p5"),
            centernet=importlib.import_module("centernet.modeling.dense_heads.centernet"),
            text=importlib.import_module(f"{GRIT}.modeling.text.text_decoder"),
            config=importlib.import_module("detectron2.config"),
            structures=importlib.import_module("detectron2.structures"),
            layers=importlib.import_module("detectron2.layers"),
            add_centernet_config=importlib.import_module("centernet.config").add_centernet_config,
            add_grit_config=importlib.import_module(f"{GRIT}.config").add_grit_config,
            config_file=grit / "configs" / "GRiT_B_DenseCap_ObjectDet.yaml",
        )
    finally:
        sys.path.remove(source)
        for name in set(sys.modules) - before:
            sys.modules.pop(name, None)
        remove_patches(folder)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return tiny_grit(tmp_path_factory.mktemp("grit"), word=None)["weights"]


@pytest.fixture(scope="module")
def ours(checkpoint) -> Grit:
    return load_grit(checkpoint["model"], checkpoint["tokenizer"])


def _official_heads(o, ours: Grit, checkpoint: dict, task: str) -> torch.nn.Module:
    """VBench's ``setup_cfg`` on its config file, at the tiny sizes; heads built by their ``from_config``."""
    c = ours.config
    cfg = o.config.get_cfg()
    o.add_centernet_config(cfg)
    o.add_grit_config(cfg)
    cfg.merge_from_file(str(o.config_file))
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.5
    cfg.MODEL.TEST_TASK = task
    cfg.MODEL.BEAM_SIZE = 1
    cfg.MODEL.ROI_HEADS.SOFT_NMS_ENABLED = False
    cfg.USE_ACT_CHECKPOINT = False
    cfg.MODEL.FPN.OUT_CHANNELS = c.channels
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = c.fc
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = c.channels
    cfg.TEXT_DECODER.VOCAB_SIZE = c.vocab
    cfg.TEXT_DECODER.HIDDEN_SIZE = c.text_hidden
    cfg.TEXT_DECODER.NUM_LAYERS = c.text_layers
    cfg.TEXT_DECODER.ATTENTION_HEADS = c.text_heads
    cfg.TEXT_DECODER.FEEDFORWARD_SIZE = c.text_ffn
    shapes = {f"p{level}": o.layers.ShapeSpec(channels=c.channels, stride=2**level) for level in range(3, 8)}
    cls = o.heads.GRiTROIHeadsAndTextDecoder
    o.heads.BertTokenizer = types.SimpleNamespace(from_pretrained=lambda *args, **kwargs: ours.tokenizer)
    arguments = cls.from_config(cfg, shapes)
    # from_config leaves the text decoder's position table at its 1024 default; the tiny one has fewer.
    arguments["text_decoder_transformer"] = o.text.TransformerDecoderTextualHead(
        object_feature_size=c.channels, vocab_size=c.vocab, hidden_size=c.text_hidden, num_layers=c.text_layers,
        attention_heads=c.text_heads, feedforward_size=c.text_ffn, mask_future_positions=True, padding_idx=0,
        decoder_type="bert_en", use_act_checkpoint=False, max_caption_length=c.text_positions,
    )
    heads = cls(**arguments).eval()
    state = torch.load(checkpoint["model"], weights_only=True)["model"]
    # ``text_decoder_det`` (VBench's addition) shares ``text_decoder``'s module: its keys alias the same tensors.
    missing, unexpected = heads.load_state_dict({key[len("roi_heads."):]: value for key, value in state.items() if key.startswith("roi_heads.")}, strict=False)
    assert not unexpected and missing and all(key.startswith("text_decoder_det.") for key in missing)
    assert heads.text_decoder_det.textual is heads.text_decoder.textual
    return heads


PROPOSALS = 24


@pytest.mark.parametrize("task", ["DenseCap", "ObjectDet"])
def test_cascade_heads_match_vbench_on_detectron2(official, checkpoint, ours, task):
    heads = _official_heads(official, ours, checkpoint, task)
    height, width = 70, 100
    frame = torch.randint(0, 256, (1, 3, height, width), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    images = torch.nn.functional.pad((frame.float() - ours.pixel_mean) / ours.pixel_std, (0, 28, 0, 26))
    with torch.no_grad():
        features = ours.backbone(images)
        boxes, scores = (kept[:PROPOSALS] for kept in ours.proposal_generator(features)[0])  # few boxes: fast
        proposals = official.structures.Instances((height, width))
        proposals.proposal_boxes = official.structures.Boxes(boxes.clone())
        proposals.scores = scores.clone()
        proposals.objectness_logits = scores.clone()
        named = {f"p{level}": feature for level, feature in zip(range(3, 8), features, strict=True)}
        expected = heads(named, [proposals])[0][0]
        expected_names = heads.forward_object(named, [proposals])[0][0]
        # rewardkit, as Grit.detect composes it for one frame
        found_boxes, found_scores = ours.roi_heads.detect(features, boxes, scores, (height, width))
        names, logprobs = ours.describe(features, found_boxes, OBJECT_BEGIN)
        descriptions = names
        if task == "DenseCap":
            descriptions, logprobs = ours.describe(features, found_boxes, CAPTION_BEGIN)
        found_scores = (found_scores * torch.exp(logprobs)) ** 0.5
    assert len(found_boxes) == len(expected) > 1  # several boxes pass the 0.5 threshold and NMS
    torch.testing.assert_close(found_boxes, expected.pred_boxes.tensor, atol=1e-5, rtol=0)
    torch.testing.assert_close(found_scores, expected.scores, atol=1e-5, rtol=0)
    assert descriptions == expected.pred_object_descriptions.data
    assert names == expected_names.pred_object_descriptions.data
    largest = max((found_boxes - expected.pred_boxes.tensor).abs().max().item(), (found_scores - expected.scores).abs().max().item())
    print(f"{task}: {len(found_boxes)} boxes, max |official - rewardkit| = {largest:.3g}")


def test_whole_detector_on_one_frame_matches_vbench_on_detectron2(official, checkpoint, ours):
    """GRiT's ``inference`` (meta_arch/grit.py) assembled from VBench's parts on detectron2: ``ImageList``
    (pad to 32), ``ViT_FPN``, ``CenterNet`` (Base.yaml's test settings), the heads (DenseCap) and
    ``forward_object``; against ``Grit.detect(frame, captions=True)``."""
    from functools import partial

    c = ours.config
    state = torch.load(checkpoint["model"], weights_only=True)["model"]
    vit = official.vit.ViT(
        img_size=c.image_size, patch_size=c.patch, embed_dim=c.dim, depth=c.depth, num_heads=c.heads, drop_path_rate=0.1,
        window_size=c.window, mlp_ratio=c.mlp / c.dim, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        window_block_indexes=list(c.window_blocks), residual_block_indexes=[], use_act_checkpoint=False,
        use_rel_pos=True, out_feature="last_feat", pretrain_img_size=c.pretrain_grid * c.patch,
    )
    backbone = official.vit.ViT_FPN(bottom_up=vit, top_block=official.fpn_p5.LastLevelP6P7_P5(c.channels, c.channels),
                                    out_channels=c.channels, strides=[8, 16, 32, 64, 128], vit_out_dim=c.dim).eval()
    backbone.load_state_dict({k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}, strict=True)
    head = official.centernet.CenterNetHead(c.channels, 5, num_classes=1, with_agn_hm=True, only_proposal=True, norm="GN",
                                            num_cls_convs=4, num_box_convs=c.centernet_convs, num_share_convs=0, use_deformable=False)
    generator = official.centernet.CenterNet(
        in_channels=c.channels, num_classes=1, score_thresh=1e-4, with_agn_hm=True, only_proposal=True,
        pre_nms_topk_test=1000, post_nms_topk_test=256, nms_thresh_test=0.9, centernet_head=head,
    ).eval()
    prefix = "proposal_generator."
    generator.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)
    heads = _official_heads(official, ours, checkpoint, "DenseCap")
    frame = torch.randint(0, 256, (1, 3, 32, 40), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    with torch.no_grad():
        images = official.structures.ImageList.from_tensors([(frame[0].float() - ours.pixel_mean) / ours.pixel_std], 32)
        features = backbone(images.tensor)
        proposals, _ = generator(images, features, None)
        expected = heads(features, proposals)[0][0]
        names = heads.forward_object(features, proposals)[0][0]
        found = ours.detect(frame, captions=True)[0]
    assert len(found.boxes) == len(expected) > 1
    torch.testing.assert_close(found.boxes, expected.pred_boxes.tensor, atol=1e-5, rtol=0)
    torch.testing.assert_close(found.scores, expected.scores, atol=1e-5, rtol=0)
    assert found.captions == expected.pred_object_descriptions.data
    assert found.objects == names.pred_object_descriptions.data
    largest = max((found.boxes - expected.pred_boxes.tensor).abs().max().item(), (found.scores - expected.scores).abs().max().item())
    print(f"whole detector: {len(proposals[0])} proposals, {len(found.boxes)} boxes, max |official - rewardkit| = {largest:.3g}")
