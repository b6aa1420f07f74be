"""VBench 0.1.5's Tag2Text on given frames, under its pinned transformers 4.33.2; run as a subprocess by
tests/parity/test_tag2text_parity.py (``python tag2text_official.py JOB.json``), never imported by rewardkit.

The job names the extracted vbench and transformers wheels, the checkpoint, a tokenizer folder, the tiny
configuration, the frames (``.npy``, uint8 ``[N, H, W, 3]``), the scene label and the output file. Patches,
all for imports or files the code under test does not use, or for the tiny sizes:

- transformers 4.33.2 checks at import that tokenizers < 0.14 and huggingface-hub < 1.0 are installed; the
  slow ``BertTokenizer`` and ``generate`` used here need neither, so the check is given those versions.
- ``decord`` (``vbench.utils`` imports ``VideoReader``; frames are given as arrays) and, when absent,
  ``fairscale`` (``tag2Text/vit.py``, the ViT path unused by the ``swin_b`` model) are empty stand-ins.
- ``vbench/__init__.py`` imports every dimension: ``vbench`` is registered as a bare namespace instead.
- ``bert-base-uncased``: ``BertTokenizer.from_pretrained`` reads the given folder and
  ``BertModel.from_pretrained`` builds from the config (its weights are all overwritten by the checkpoint).
- the model's tokenizer is wrapped to record the tag strings ``generate`` encodes (one per frame and beam).
- ``med_config.json``, ``q2l_config.json`` and ``config_swinB_384.json`` in the extracted copy are rewritten
  with the tiny sizes (everything VBench's code hard-codes, 384 px, hidden 768, 3429 tags, stays).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import sys
import types
from pathlib import Path


def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    vbench_dir = Path(job["vbench_dir"])
    sys.path[:0] = [job["transformers_dir"], str(vbench_dir)]

    real_version = importlib.metadata.version
    pinned = {"tokenizers": "0.13.3", "huggingface-hub": "0.17.3"}
    importlib.metadata.version = lambda name: pinned.get(name, None) or real_version(name)
    package = types.ModuleType("vbench")
    package.__path__ = [str(vbench_dir / "vbench")]
    sys.modules["vbench"] = package

    folder = vbench_dir / "vbench" / "third_party" / "tag2Text"
    for name, values in job["configs"].items():
        config = json.loads((folder / name).read_text())
        config.update(values)
        (folder / name).write_text(json.dumps(config))

    import numpy as np
    import torch
    import transformers

    assert transformers.__version__ == "4.33.2", transformers.__version__
    # Stand-ins, after transformers has looked for the real packages (find_spec refuses spec-less modules).
    sys.modules["decord"] = types.SimpleNamespace(VideoReader=None, cpu=None)
    if importlib.util.find_spec("fairscale") is None:
        for name in ("fairscale", "fairscale.nn", "fairscale.nn.checkpoint"):
            sys.modules[name] = types.ModuleType(name)
        wrapper = types.ModuleType("fairscale.nn.checkpoint.checkpoint_activations")
        wrapper.checkpoint_wrapper = None
        sys.modules[wrapper.__name__] = wrapper
    tokenizer_from_pretrained = transformers.BertTokenizer.from_pretrained.__func__
    transformers.BertTokenizer.from_pretrained = classmethod(
        lambda cls, name, *args, **kwargs: tokenizer_from_pretrained(cls, job["tokenizer"], *args, **kwargs)
    )
    med = importlib.import_module("vbench.third_party.tag2Text.med")
    med.BertModel.from_pretrained = classmethod(
        lambda cls, name, config=None, add_pooling_layer=True: cls(config, add_pooling_layer=add_pooling_layer)
    )
    tag2text = importlib.import_module("vbench.third_party.tag2Text.tag2text")
    scene = importlib.import_module("vbench.scene")
    utils = importlib.import_module("vbench.utils")

    # VBench's init_submodules for scene: pretrained=tag2text_swin_14m.pth, image_size=384, vit="swin_b".
    model = tag2text.tag2text_caption(pretrained=job["checkpoint"], image_size=384, vit="swin_b")
    model.eval()
    state = {key: list(value.shape) for key, value in model.state_dict().items()}
    loaded = model.load_state_dict(torch.load(job["checkpoint"], map_location="cpu")["model"], strict=False)
    logits = []
    model.fc.register_forward_hook(lambda module, inputs, output: logits.append(output.detach()))

    tag_inputs: list[list[str]] = []  # what generate() tokenizes for the tag encoder: each frame's tags, once per beam

    class Recorder:
        def __init__(self, tokenizer: object) -> None:
            self.tokenizer = tokenizer

        def __call__(self, text: object, *args: object, **kwargs: object) -> object:
            if kwargs.get("max_length") == 40:
                tag_inputs.append(list(text))
            return self.tokenizer(text, *args, **kwargs)

        def __getattr__(self, name: str) -> object:
            return getattr(self.tokenizer, name)

    model.tokenizer = Recorder(model.tokenizer)

    transform = utils.tag2text_transform(384)  # as scene.scene(): per frame, then concatenated
    frames = np.load(job["frames"])
    video = torch.cat([transform(frame).unsqueeze(0) for frame in frames])
    with torch.no_grad():
        captions, tags = model.generate(video, tag_input=None, return_tag_predict=True)  # scene.get_caption's call
    count = scene.check_generate({"scene": job["scene"]}, captions)
    torch.save(
        {
            "captions": captions,
            "returned_tags": tags,
            "tag_inputs": tag_inputs[0],
            "logits": logits[0],
            "count": count,
            "state_shapes": state,
            "unexpected": list(loaded.unexpected_keys),
        },
        job["out"],
    )


if __name__ == "__main__":
    main(sys.argv[1])
