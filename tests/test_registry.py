"""Registry: names, options, declarations."""

import pytest
import torch

from rewardkit import create_reward, list_rewards
from rewardkit.registry import get_reward_info, parse_dtype, parse_reward_spec, validate_options


def test_every_reward_declares_its_contract():
    names = {info.name for info in list_rewards()}
    assert {"hpsv2", "pickscore", "clip", "temporal_flickering"} <= names
    for info in list_rewards():
        assert info.modality in ("image", "video")
        assert isinstance(info.differentiable, bool) and isinstance(info.needs_prompt, bool)
        low, high = info.score_range_for()
        assert low < high
        for weight in info.weight_files():
            assert weight.repo and weight.filename and weight.license


def test_unknown_reward_names_close_matches():
    with pytest.raises(ValueError, match=r"unknown reward 'hpsv3'.*Did you mean 'hpsv2'"):
        create_reward("hpsv3")


def test_unknown_option_names_close_matches_and_lists_options():
    with pytest.raises(ValueError, match=r"unknown option 'verison'.*Did you mean 'version'.*options are"):
        create_reward("hpsv2", verison="v2.0")


def test_option_values_are_checked_and_converted():
    info = get_reward_info("hpsv2")
    assert validate_options(info, {"version": "v2.0"}) == {"version": "v2.0"}
    with pytest.raises(ValueError, match=r"version='v3' .* not one of 'v2.0', 'v2.1'"):
        validate_options(info, {"version": "v3"})
    with pytest.raises(ValueError, match=r"not one of 'reference', 'differentiable'.*Did you mean 'reference'"):
        validate_options(info, {"mode": "referense"})


def test_parse_reward_spec():
    assert parse_reward_spec("hpsv2") == ("hpsv2", {})
    assert parse_reward_spec("clip:form=hessel, architecture=ViT-B-32") == (
        "clip",
        {"form": "hessel", "architecture": "ViT-B-32"},
    )
    with pytest.raises(ValueError, match="key=value"):
        parse_reward_spec("clip:hessel")


def test_version_selects_weight_file():
    info = get_reward_info("hpsv2")
    assert [w.filename for w in info.weight_files()] == ["HPS_v2.1_compressed.pt"]
    assert [w.filename for w in info.weight_files({"version": "v2.0"})] == ["HPS_v2_compressed.pt"]


def test_dtype_names():
    assert parse_dtype("bf16") is torch.bfloat16 and parse_dtype(None) is torch.float32
    with pytest.raises(ValueError, match="fp32, fp16, bf16"):
        parse_dtype("int8")


def test_score_range_follows_the_options():
    """clip's forms by their formulas: cosine in [-1, 1], Hessel's 2.5 * max(cos, 0), max(100 * cos, 0)."""
    info = get_reward_info("clip")
    assert info.score_range_for() == (-1.0, 1.0)
    assert info.score_range_for({"form": "hessel"}) == (0.0, 2.5)
    assert info.score_range_for({"form": "x100"}) == (0.0, 100.0)
