"""The batch engine behind ``rewardkit score``: files -> decoded, preprocessed frames -> batches -> rows.

Decoding and reference preprocessing run in DataLoader workers while the main process runs the models.
Each file becomes one row per reward with a status and an error, so a corrupt file among thousands is one
failed row. Decoding always runs in worker processes (one with ``workers=0``, reading ahead only when every reward
scores in the worker, so that no file's frames wait in memory), so a
decoder that crashes its process (``std::bad_alloc``, SIGABRT, SIGSEGV) costs only the file it was
decoding: that file becomes a failed row, a fresh worker takes over and the run goes on. A score that is
not finite is a failed row, never ``ok``. Rows are flushed to ``out`` as they are produced; a rerun with
the same ``out`` skips the rows that already succeeded (matched on the resolved path), so an interrupted
run resumes where it stopped. Under ``accelerate launch`` / ``torchrun`` each process scores its share of
the files into its own journal and the main process merges every share into ``out``
(``rewardkit.distributed``).
"""

from __future__ import annotations

import ctypes
import functools
import json
import math
import os
import signal
import sys
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Subset

import rewardkit
from rewardkit.distributed import processes
from rewardkit.errors import UserInputError
from rewardkit.registry import create_reward, get_reward_info, parse_reward_spec
from rewardkit.rewards.errors import NotApplicable
from rewardkit.scoring.inputs import MediaItem, collect_media, prompt_for, prompt_table, read_manifest
from rewardkit.scoring.results import COLUMNS, ResultsWriter, combine_results, escape_text, row_key
from rewardkit.video.io import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    DecodeError,
    Media,
    check_decode_device,
    iter_frames,
    media_kind,
    open_media,
    video_backend,
)
from rewardkit.video.sampling import FrameSampler, parse_sampler
from rewardkit.video.weighting import FrameWeighting, parse_weighting
from rewardkit.weights import weights_for

__all__ = [
    "AUTO_BATCH_FRAMES",
    "DECODE_BUDGET_BYTES",
    "Engine",
    "FILES_PER_WORKER",
    "ScorerSlot",
    "WEIGHT_FREE_REWARDS",
    "auto_batch_frames",
    "build_slots",
    "check_decode_budget",
    "default_workers",
    "score",
    "shared_preprocess",
]

# Scored when no reward is named: they need no weights, so the quick start works offline.
WEIGHT_FREE_REWARDS = ("temporal_flickering", "dynamic_degree_flow", "motion_smoothness_flow")


@dataclass
class ScorerSlot:
    """A reward prepared for the engine: the module, how it samples frames, its key in the results."""

    label: str
    module: torch.nn.Module
    needs_prompt: bool
    options: dict[str, Any]
    video_options: dict[str, Any]
    sampler: FrameSampler | None = None  # for image rewards on videos
    weighting: FrameWeighting | None = None
    seed: int = 0
    truncated_prompts: dict[str, bool] = field(default_factory=dict)

    @property
    def modality(self) -> str:
        return self.module.modality

    @property
    def extra_columns(self) -> dict[str, str]:
        """The reward's named outputs beyond its score, and the results column each goes to."""
        return {name: f"{self.label}_{name}" for name in getattr(self.module, "output_names", ())}

    @property
    def options_text(self) -> str:
        """The reward's options, plus how it scores videos when it is an image reward (one per run)."""
        options = {**self.options, **(self.video_options if self.modality == "image" else {})}
        return json.dumps(options, sort_keys=True, default=str)

    @property
    def plan(self) -> FramePlan:
        sampler = self.module.sampler if self.modality == "video" else self.sampler
        streams = self.modality == "video" and getattr(self.module, "stream_chunk", 0) > 0
        # A streaming reward without weights (flicker, the OpenCV-flow metrics) scores in the decoding worker.
        in_worker = streams and next(self.module.parameters(), None) is None
        preprocess = getattr(self.module, "preprocessor", None)
        return FramePlan(self.label, self.modality, sampler, self.seed, preprocess, streams, self.module if in_worker else None)

    def prompt_truncated(self, prompt: str | None) -> bool:
        if prompt is None or not hasattr(self.module, "prompt_truncated"):
            return False
        if prompt not in self.truncated_prompts:
            self.truncated_prompts[prompt] = bool(self.module.prompt_truncated(prompt))
            if self.truncated_prompts[prompt]:
                warnings.warn(
                    f"{self.label}: prompt longer than {self.module.max_prompt_tokens} tokens, truncated: "
                    f"{prompt[:60]!r}...",
                    stacklevel=2,
                )
        return self.truncated_prompts[prompt]


def build_slots(
    specs: Sequence[str],
    *,
    device: str,
    dtype: str,
    weights: Mapping[str, str],
    frames: str | FrameSampler,
    weighting: str | FrameWeighting,
    seed: int,
) -> list[ScorerSlot]:
    """Parse ``NAME[:key=value,...]`` specs and build each reward once. ``frames`` and ``weighting`` are
    objects or the strings ``parse_sampler`` / ``parse_weighting`` read."""
    sampler = parse_sampler(frames) if isinstance(frames, str) else frames
    frame_weighting = parse_weighting(weighting) if isinstance(weighting, str) else weighting
    slots = []
    for spec in specs:
        name, options = parse_reward_spec(spec)
        info = get_reward_info(name)
        module = create_reward(name, device=device, dtype=dtype, weights=weights_for(name, options, weights), **options)
        resolved = {**info.defaults, **module.options}
        inner = getattr(module, "image_reward", None)  # a wrapper (patch): its base's options count too
        if hasattr(inner, "info"):
            resolved = {**inner.info.defaults, **inner.options, **resolved}
        video_options = {"frames": sampler.spec, "weighting": frame_weighting.spec}
        if "random" in sampler.spec:
            video_options["seed"] = seed
        slots.append(
            ScorerSlot(
                label=name,
                module=module,
                needs_prompt=getattr(module, "needs_prompt", info.needs_prompt),
                options=resolved,
                video_options=video_options,
                sampler=sampler,
                weighting=frame_weighting,
                seed=seed,
            )
        )
    return slots


# -------------------------------------------------------------------------------------------- decoding

# The most decoded RGB bytes a reward that needs its sampled frames all at once may hold per file (streaming
# rewards hold a few frames instead); a file over it is that reward's failed row, never an out-of-memory crash.
DECODE_BUDGET_BYTES = int(float(os.environ.get("REWARDKIT_DECODE_BUDGET_GB", "4")) * 2**30)


def check_decode_budget(frames: int, height: int, width: int) -> None:
    """Raise ValueError when ``frames`` RGB frames of ``height`` x ``width`` exceed ``DECODE_BUDGET_BYTES``."""
    needed = frames * height * width * 3
    if needed > DECODE_BUDGET_BYTES:
        raise ValueError(
            f"this reward needs {frames} frames of {width}x{height} decoded at once ({needed / 2**30:.1f} GiB), over the "
            f"decode budget of {DECODE_BUDGET_BYTES / 2**30:.1f} GiB; sample fewer frames (--frames segmental:S or "
            f"uniform:N for image rewards) or raise REWARDKIT_DECODE_BUDGET_GB"
        )



@dataclass(frozen=True)
class FramePlan:
    """What a DataLoader worker needs to know of a reward (picklable, no model): which frames, which
    preprocessing."""

    label: str
    modality: str
    sampler: FrameSampler
    seed: int
    preprocess: Any
    streams: bool = False  # a video reward that decodes its frames while it scores (``score_stream``)
    scorer: Any = None  # such a reward when it has no weights: it scores in the worker, as it decodes

    def score_rng(self, path: str) -> np.random.Generator:
        """The reward's own randomness for one file (seeded per file, as the frame choice)."""
        return np.random.default_rng([self.seed, zlib.crc32(f"{self.label}|{path}|score".encode("utf-8", "surrogatepass"))])

    def indices(self, path: str, kind: str, num_frames: int, fps: float | None = None) -> list[int]:
        if kind == "image":
            return [0]
        # Per-file generator: random sampling does not depend on batch size, worker count or file order.
        # surrogatepass: a file name may hold undecodable bytes; valid names encode as before
        rng = np.random.default_rng([self.seed, zlib.crc32(f"{self.label}|{path}".encode("utf-8", "surrogatepass"))])
        return self.sampler.indices(num_frames, rng, fps=fps)


class _DecodeDataset(Dataset):
    """Decodes each file once (the union of the frames every reward asked for) and preprocesses it."""

    def __init__(self, items: Sequence[MediaItem], slots: Sequence[ScorerSlot], decode_device: str = "cpu") -> None:  # noqa: D107
        self.items = items
        self.plans = [slot.plan for slot in slots]
        self.decode_device = decode_device
        # False when every reward scores in the worker: a decoded file's result is then a few numbers
        self.holds_frames = any(plan.scorer is None for plan in self.plans)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> dict[str, Any]:
        item = self.items[position]
        started = time.perf_counter()
        result: dict[str, Any] = {"position": position, "per_slot": [], "error": None, "num_frames": 0, "backend": "", "warnings": []}
        # Warnings raised here (e.g. an assumed frame rate) travel with the result: a worker's own
        # warnings would never reach the user.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                if item.kind is None:
                    raise DecodeError(
                        f"{item.path} is not an image or video; supported extensions are "
                        f"{', '.join(sorted(VIDEO_EXTENSIONS | IMAGE_EXTENSIONS))} and folders of frames"
                    )
                with open_media(item.path, device=self.decode_device) as media:  # one open: probe, then read
                    info = media.info
                    result["num_frames"], result["backend"] = info.num_frames, media.backend
                    wanted: list[list[int] | Exception] = []
                    for plan in self.plans:
                        try:
                            indices = plan.indices(item.path, info.kind, info.num_frames, info.fps)
                            if not plan.streams:
                                check_decode_budget(len(set(indices)), info.height, info.width)
                            wanted.append(indices)
                        except ValueError as error:
                            wanted.append(error)
                    union = sorted({
                        index
                        for plan, indices in zip(self.plans, wanted, strict=True)
                        if isinstance(indices, list) and not plan.streams
                        for index in indices
                    })
                    frames = dict(zip(union, media.read(union), strict=True)) if union else {}
                    streamed = {  # weight-free streaming rewards score here, through the same open
                        position: _score_streaming(plan, item, indices, media)
                        for position, (plan, indices) in enumerate(zip(self.plans, wanted, strict=True))
                        if plan.scorer is not None and isinstance(indices, list) and info.kind != "image"
                    }
                # Rewards whose preprocessing agrees (equal ``key``) share each preprocessed frame and,
                # for the same frames, the stacked tensor (sent to the main process once).
                shared: dict[Any, torch.Tensor] = {}
                for position, (plan, indices) in enumerate(zip(self.plans, wanted, strict=True)):
                    if isinstance(indices, Exception):
                        result["per_slot"].append(indices)
                    elif plan.modality == "video" and info.kind == "image":
                        result["per_slot"].append(None)  # not applicable: a still image has no time axis
                    elif plan.scorer is not None:
                        result["per_slot"].append(streamed[position])
                    elif plan.streams:
                        result["per_slot"].append((indices, None))  # decoded while scored, in the main process
                    elif plan.modality == "video":
                        stacked = np.stack([frames[index] for index in indices])
                        result["per_slot"].append((indices, torch.from_numpy(stacked).permute(0, 3, 1, 2)))
                    else:
                        try:
                            tensors = shared_preprocess(plan.preprocess, frames, indices, shared)
                        except Exception as error:  # a preprocessing failure concerns this file only
                            result["per_slot"].append(ValueError(f"preprocessing failed: {error}"))
                            continue
                        result["per_slot"].append((indices, tensors))
            except Exception as error:  # whatever goes wrong decoding one file concerns that file only
                result["error"] = f"{type(error).__name__}: {error}"
        result["warnings"] = [(warning.category, str(warning.message)) for warning in caught]
        result["seconds"] = time.perf_counter() - started
        return result


def shared_preprocess(preprocess: Any, frames: Mapping[int, np.ndarray], indices: list[int], shared: dict[Any, torch.Tensor]) -> torch.Tensor:
    """``preprocess`` of the frames at ``indices``, stacked; reused from ``shared`` when a step with the same
    ``key`` already made them for another reward (steps without a key are never shared)."""
    key = getattr(preprocess, "key", None)
    if key is None:
        return torch.stack([preprocess(frames[index]) for index in indices])
    stacked = (key, tuple(indices))
    if stacked not in shared:
        for index in indices:
            if (key, index) not in shared:
                shared[key, index] = preprocess(frames[index])
        shared[stacked] = torch.stack([shared[key, index] for index in indices])
    return shared[stacked]


def _score_streaming(plan: FramePlan, item: MediaItem, indices: list[int], media: Media) -> tuple[list[int], dict[str, float]] | Exception:
    """A weight-free streaming reward's outputs for one open file, decoded chunk by chunk here in the worker."""
    scorer = plan.scorer
    try:
        with torch.inference_mode():
            frames = media.iter_frames(indices, scorer.stream_chunk)
            return indices, scorer.score_stream(frames, indices, media.info.num_frames, item.prompt, plan.score_rng(item.path))
    except (ValueError, RuntimeError, DecodeError, OSError) as error:  # NotApplicable (a ValueError) included
        return error


@dataclass
class _Pending:
    """Frames of files waiting for a full batch of one image reward."""

    entries: list[tuple[dict[str, Any], torch.Tensor, list[int]]] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return sum(len(tensors) for _, tensors, _ in self.entries)


def score(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    rewards: Sequence[str] = WEIGHT_FREE_REWARDS,
    *,
    prompts: str | os.PathLike[str] | Mapping[str, str] | None = None,
    frames: str | FrameSampler = "segmental:4",
    weighting: str | FrameWeighting = "mean",
    batch_size: int | str = 8,
    device: str = "cpu",
    dtype: str = "fp32",
    compile_models: bool = False,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    weights: Mapping[str, str] | None = None,
    progress: bool = True,
    manifest: str | os.PathLike[str] | None = None,
    decode_device: str = "cpu",
) -> pd.DataFrame:
    """Score files and folders with rewards; one row per file and reward (see ``COLUMNS``).

    ``rewards`` are specs ``NAME[:key=value,...]``. ``frames`` and ``weighting`` say how image rewards
    score videos, as objects (``Segmental(4, "first")``, ``TemporalAttenuation(1.0)``) or as the CLI's
    strings (``segmental:4`` takes the first frame of 4 equal segments, InstructVideo's evaluation
    setting; ``tar:1.0`` weights frames by temporal attenuation). ``weights`` maps a reward name to a
    local weights path. With ``out``, rows are appended as they are produced and rows that succeeded in
    an earlier run with the same ``out`` are skipped. ``manifest``: a ``.txt`` / ``.csv`` list of files
    scored after ``paths``, as listed (see ``read_manifest``). ``decode_device="cuda"`` decodes video files
    on the GPU (torchcodec; in the main process, as CUDA does not survive forked workers); each row's
    ``backend`` says which library decoded the file. ``batch_size="auto"``: the largest batch that fits, per
    reward (see ``Engine``); ``compile_models``: ``torch.compile`` the modules each reward calls, warmed up on
    its first batch, which the rows' ``seconds`` leave out.
    """
    if batch_size != "auto" and not (isinstance(batch_size, int) and batch_size >= 1):
        raise UserInputError(f"batch_size must be a whole number of frames, at least 1, or 'auto'; got {batch_size!r}")
    if seed < 0:
        raise UserInputError(f"seed must be 0 or more, got {seed}")
    if workers is not None and workers < 0:
        raise UserInputError(f"workers must be 0 or more, got {workers}")
    try:
        check_decode_device(decode_device)
    except ValueError as error:
        raise UserInputError(str(error)) from error
    group = processes()
    path_list = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    media, _ = collect_media(path_list)
    if manifest is not None:
        media = list(dict.fromkeys([*media, *read_manifest(manifest)]))
    table = prompt_table(prompts)
    writer = ResultsWriter(out, shard=group.rank if group.world > 1 else None)
    writer.open()  # a folder, a read-only place or another run's lock: an error before any model loads
    try:
        done = writer.existing()
        group.barrier()  # every process has read the same earlier rows before any process appends
        slots = build_slots(
            rewards, device=group.device(device), dtype=dtype, weights=weights or {}, frames=frames,
            weighting=weighting, seed=seed,
        )
    except BaseException:
        writer.close(None)
        raise
    extra = [column for slot in slots for column in slot.extra_columns.values()]
    writer.columns = list(dict.fromkeys([*COLUMNS, *done.columns, *extra]))
    finished = {
        (row_key(row.path), row.reward, row.options) for row in done.itertuples() if row.status in ("ok", "skipped")
    }
    engine = Engine(slots, writer, finished, compile_models=compile_models)
    everything = [MediaItem(path, media_kind(path), *prompt_for(path, table)) for path in media]
    # Only unfinished files are shared out, so a resumed run keeps every process busy.
    todo = [item for item in everything if any(engine.key(item, slot) not in finished for slot in slots)]
    already = len(everything) * len(slots) - sum(engine.key(item, slot) not in finished for item in todo for slot in slots)
    if already and group.is_main:
        print(
            f"{out}: {already} of {len(everything) * len(slots)} rows already done; scoring the other "
            f"{len(everything) * len(slots) - already}",
            file=sys.stderr,
        )
    items = group.split(todo)
    if group.world > 1:
        try:
            engine.run(items, batch_size=batch_size, workers=workers, progress=progress and group.is_main, decode_device=decode_device)
        finally:
            writer.close(None)  # a process that dies leaves its journal; a rerun resumes from it
        new = pd.DataFrame(group.gather(engine.rows), columns=writer.columns)
        combined = combine_results(done, new, writer.columns)
        if group.is_main:
            writer.close(combined if out is not None else None)
        group.barrier()  # ``out`` is complete when any process returns
    else:
        try:
            engine.run(items, batch_size=batch_size, workers=workers, progress=progress, decode_device=decode_device)
        finally:
            combined = combine_results(done, pd.DataFrame(engine.rows, columns=writer.columns), writer.columns)
            writer.close(combined if out is not None else None)
    wanted = {row_key(item.path) for item in everything}
    return combined[combined["path"].map(row_key).isin(wanted)].reset_index(drop=True)


class Engine:
    """Runs the rewards over decoded files: batches image frames across files, scores videos one by one,
    and emits one row per file and reward.

    ``batch_size="auto"`` (image rewards; a video reward scores one file at a time): each reward starts at
    ``AUTO_BATCH_FRAMES`` frames. On a GPU, a batch that runs out of memory is halved and retried until one
    fits. On a CPU, where running out of memory ends the process instead of raising, the reward's first
    ``AUTO_PROBE_FRAMES`` frames are scored as a probe: the growth of the process's peak resident memory per
    frame (``resident_peak_growth``) sets the batch to ``AUTO_MEMORY_FRACTION`` of the available memory
    (``auto_batch_frames``).
    ``compile_models``: before a reward's first batch, its calls are recorded, the outermost modules it
    calls are compiled with ``torch.compile`` and run once on that batch (the warm-up, printed and left out
    of the rows' ``seconds``)."""

    def __init__(
        self, slots: Sequence[ScorerSlot], writer: ResultsWriter, finished: set[tuple[str, str, str]], *, compile_models: bool = False
    ) -> None:
        self.slots = slots
        self.writer = writer
        self.finished = finished
        self.rows: list[dict[str, Any]] = []
        self.failures = 0
        self.pending = [_Pending() for _ in slots]
        self.compile_models = compile_models
        self.warmed_up: set[int] = set()  # slots compiled and warmed up
        self.warmup_seconds: dict[str, float] = {}
        self.warmup_total = 0.0

    def run(
        self, items: Sequence[MediaItem], *, batch_size: int | str, workers: int | None, progress: bool, decode_device: str = "cpu"
    ) -> None:
        from tqdm.auto import tqdm

        items = [item for item in items if any(self.key(item, slot) not in self.finished for slot in self.slots)]
        if not items:
            return
        if workers is None:
            workers = default_workers(len(items), main_scores=any(slot.plan.scorer is None for slot in self.slots))
        video_backend()  # loads torchcodec once here rather than in every forked worker
        # CUDA does not survive a fork: with --decode-device cuda decoding runs in this process
        decoded_files = _decoded_files(_DecodeDataset(items, self.slots, decode_device), workers, decode_device == "cpu")
        self.auto_batch = batch_size == "auto"
        self.batch_sizes = [AUTO_BATCH_FRAMES if self.auto_batch else int(batch_size)] * len(self.slots)
        self.probed: set[int] = set()
        self.items = items
        bar = tqdm(total=len(items), unit="file", disable=not progress, dynamic_ncols=True, desc="scoring")
        try:
            with torch.inference_mode():
                for decoded in decoded_files:
                    self._accept(decoded)
                    bar.update(1)
                    bar.set_postfix(failed=self.failures, refresh=False)
                for slot_index in range(len(self.slots)):
                    self._flush(slot_index)
        finally:
            decoded_files.close()
            bar.close()

    @staticmethod
    def key(item: MediaItem, slot: ScorerSlot) -> tuple[str, str, str]:
        """What resume compares: the resolved path, the reward and its options."""
        return row_key(item.path), slot.label, slot.options_text

    def _accept(self, decoded: dict[str, Any]) -> None:
        item = self.items[decoded["position"]]
        for category, message in decoded.get("warnings", ()):
            warnings.warn(message, category, stacklevel=2)
        for slot_index, slot in enumerate(self.slots):
            if self.key(item, slot) in self.finished:
                continue
            base = self._row(item, slot, decoded)
            if decoded["error"] is not None:
                self._emit(base, status="failed", error=decoded["error"])
                continue
            payload = decoded["per_slot"][slot_index]
            if payload is None:
                self._emit(base, status="skipped", error=f"{slot.label} scores videos; {item.path} is a still image")
            elif isinstance(payload, NotApplicable):  # scored in the worker: e.g. VBench's flicker on a moving video
                self._emit(base, status="skipped", error=str(payload))
            elif isinstance(payload, Exception):
                self._emit(base, status="failed", error=f"{type(payload).__name__}: {payload}")
            elif slot.needs_prompt and item.prompt is None:
                self._emit(
                    base,
                    status="failed",
                    error=f"no prompt for {item.path}: {slot.label} needs one"
                    + (f" ({item.prompt_problem})" if item.prompt_problem else "")
                    + f"; give --prompts FILE (CSV path,prompt or JSONL), a sidecar {Path(item.path).stem}.txt, or a "
                    "VBench-style name '{prompt}-0.mp4'",
                )
            elif slot.modality == "video":
                indices, tensors = payload
                if slot.needs_prompt and slot.prompt_truncated(item.prompt):
                    base["warning"] = f"prompt truncated to {slot.module.max_prompt_tokens} tokens"
                try:
                    if not isinstance(tensors, dict) and tensors is not None:
                        self._warm_up(slot_index, functools.partial(self._score_video, slot, item, tensors, indices, decoded["num_frames"]))
                    started = time.perf_counter()
                    if isinstance(tensors, dict):  # already scored in the worker
                        outputs = tensors
                    else:
                        outputs = self._score_video(slot, item, tensors, indices, decoded["num_frames"])
                except NotApplicable as error:  # e.g. VBench's flicker on a moving video: left out, not failed
                    self._emit(base, status="skipped", error=str(error))
                    continue
                except (ValueError, RuntimeError, DecodeError, OSError) as error:
                    self._emit(base, status="failed", error=f"{type(error).__name__}: {error}")
                    continue
                base["seconds"] += time.perf_counter() - started
                self._emit(base, status="ok", outputs=outputs)
            else:
                indices, tensors = payload
                if slot.needs_prompt and slot.prompt_truncated(item.prompt):
                    base["warning"] = f"prompt truncated to {slot.module.max_prompt_tokens} tokens"
                self.pending[slot_index].entries.append((base, tensors, indices))
                if self.pending[slot_index].frames >= self.batch_sizes[slot_index]:
                    self._flush(slot_index)

    @staticmethod
    def _score_video(
        slot: ScorerSlot, item: MediaItem, tensors: torch.Tensor | None, indices: list[int], num_frames: int
    ) -> dict[str, float]:
        """Run a video reward on one file's sampled frames (``tensors``, or decoded here chunk by chunk for
        a streaming reward); its own randomness is seeded per file."""
        module = slot.module
        rng = slot.plan.score_rng(item.path)
        prompt = item.prompt if slot.needs_prompt else None
        if tensors is None:
            return module.score_stream(iter_frames(item.path, indices, module.stream_chunk), indices, num_frames, prompt, rng)
        arguments = (
            tensors[None].to(_device_of(module)),
            torch.tensor([indices], dtype=torch.long),
            num_frames,
            [item.prompt] if slot.needs_prompt else None,
        )
        if slot.extra_columns:
            outputs = module.score_sampled_details(*arguments, rng=rng)
        else:
            outputs = {"score": module.score_sampled(*arguments, rng=rng)}
        return {key: float(value[0]) for key, value in outputs.items()}

    def _warm_up(self, slot_index: int, step: Callable[[], Any]) -> None:
        """With ``compile_models``, once per reward: compile the outermost modules ``step`` calls, then run
        ``step`` once more so that compiling stays out of the timed calls."""
        if not self.compile_models or slot_index in self.warmed_up:
            return
        self.warmed_up.add(slot_index)
        slot = self.slots[slot_index]
        started = time.perf_counter()
        compiled = compile_called_modules(slot.module, step)
        step()
        self.warmup_seconds[slot.label] = time.perf_counter() - started
        self.warmup_total += self.warmup_seconds[slot.label]
        print(
            f"{slot.label}: compiled {compiled} module(s); warm-up {self.warmup_seconds[slot.label]:.1f} s (not in the rows' seconds)",
            file=sys.stderr,
        )

    def _score_frames(self, slot_index: int, pixel_values: torch.Tensor, prompts: list[str] | None) -> dict[str, torch.Tensor]:
        """Scores of preprocessed frames, the reward's batch size at a time: the score plus any named outputs.
        With ``batch_size="auto"`` a batch that runs out of memory is halved and retried; on a CPU the first
        frames are a memory probe that sets the batch size (see ``Engine``)."""
        slot = self.slots[slot_index]

        def run(chunk: torch.Tensor, chunk_prompts: list[str] | None) -> dict[str, torch.Tensor]:
            if slot.extra_columns:
                return slot.module.score_preprocessed_details(chunk, chunk_prompts)
            return {"score": slot.module.score_preprocessed(chunk, chunk_prompts)}

        chunks = []
        start = 0
        while start < len(pixel_values):
            size = self.batch_sizes[slot_index]
            probing = self.auto_batch and slot_index not in self.probed and _device_of(slot.module).type == "cpu"
            if probing:
                size = min(size, AUTO_PROBE_FRAMES)
            chunk = pixel_values[start : start + size]
            chunk_prompts = prompts[start : start + size] if prompts is not None else None
            self._warm_up(slot_index, lambda chunk=chunk, chunk_prompts=chunk_prompts: run(chunk, chunk_prompts))
            try:
                if probing:
                    self.probed.add(slot_index)
                    grown, outputs = resident_peak_growth(lambda chunk=chunk, chunk_prompts=chunk_prompts: run(chunk, chunk_prompts))
                    if grown is not None:
                        self.batch_sizes[slot_index] = auto_batch_frames(grown / len(chunk), available_memory())
                else:
                    outputs = run(chunk, chunk_prompts)
            except torch.OutOfMemoryError:
                if not self.auto_batch or size == 1:
                    raise
                self.batch_sizes[slot_index] = max(1, min(size, len(chunk)) // 2)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            chunks.append(outputs)
            start += len(chunk)
        return {key: torch.cat([chunk[key].float().cpu() for chunk in chunks]) for key in chunks[0]}

    def _flush(self, slot_index: int) -> None:
        pending = self.pending[slot_index]
        if not pending.entries:
            return
        slot = self.slots[slot_index]
        entries, pending.entries = pending.entries, []
        pixel_values = torch.cat([tensors for _, tensors, _ in entries])
        prompts = [base["prompt"] for base, tensors, _ in entries for _ in range(len(tensors))]
        started, warmups = time.perf_counter(), self.warmup_total
        try:
            frame_scores = self._score_frames(slot_index, pixel_values, prompts if slot.needs_prompt else None)
        except (ValueError, RuntimeError) as error:
            if len(entries) == 1:
                base = entries[0][0]
                self._emit(base, status="failed", error=f"{type(error).__name__}: {error}")
                return
            for entry in entries:  # isolate the failing file: score the batch's files one by one
                pending.entries = [entry]
                self._flush(slot_index)
            return
        seconds_per_frame = (time.perf_counter() - started - (self.warmup_total - warmups)) / len(pixel_values)
        offset = 0
        for base, tensors, indices in entries:
            count = len(tensors)
            outputs = {}
            for key, scores in frame_scores.items():
                scores = scores[offset : offset + count]
                if base["kind"] == "image":
                    outputs[key] = float(scores[0])
                else:  # every output is pooled over the sampled frames the same way as the score
                    outputs[key] = float(slot.weighting(scores[None], torch.tensor([indices]), base["n_frames"])[0])
            offset += count
            base["seconds"] += seconds_per_frame * count
            self._emit(base, status="ok", outputs=outputs)

    def _row(self, item: MediaItem, slot: ScorerSlot, decoded: dict[str, Any]) -> dict[str, Any]:
        return {
            "path": item.path,
            "prompt": item.prompt if slot.needs_prompt or not item.prompt_problem else None,
            "reward": slot.label,
            "options": slot.options_text,
            "score": math.nan,
            "n_frames": decoded["num_frames"],
            "backend": decoded["backend"],
            "status": "",
            "error": "",
            "warning": f"{item.prompt_problem} (no prompt used)" if item.prompt_problem and not slot.needs_prompt else "",
            "seconds": decoded["seconds"],
            "rewardkit_version": rewardkit.__version__,
            "weights_sha256": getattr(slot.module, "weights_sha256", None) or getattr(getattr(slot.module, "image_reward", None), "weights_sha256", None) or "",
            "kind": item.kind,
            "slot": slot,
        }

    def _emit(self, row: dict[str, Any], *, status: str, outputs: Mapping[str, float] | None = None, error: str = "") -> None:
        outputs = outputs or {}
        extra = {column: outputs.get(name, math.nan) for name, column in row["slot"].extra_columns.items()}
        row = {column: row.get(column, math.nan) for column in self.writer.columns} | extra
        row |= {"status": status, "score": outputs.get("score", math.nan), "error": error}
        not_finite = [name for name, value in outputs.items() if not math.isfinite(value)]
        if status == "ok" and not_finite:  # NaN or inf is never a score
            row |= {"status": "failed", "error": f"the reward gave a non-finite {' and '.join(not_finite)} ({outputs[not_finite[0]]})"}
        row = {key: escape_text(value) if isinstance(value, str) else value for key, value in row.items()}
        row["seconds"] = round(row["seconds"], 6)
        self.failures += row["status"] == "failed"
        self.rows.append(row)
        self.writer.write(row)


def _identity(sample: Any) -> Any:
    return sample


def _decoded_files(dataset: _DecodeDataset, workers: int, isolated: bool = True) -> Iterator[dict[str, Any]]:
    """Each file decoded, in order, by ``workers`` processes (``0``: one process, see ``_loader``);
    ``isolated`` False: in this process (GPU decoding), where a decoder crash ends the run.

    When a worker dies (the decoder aborted or crashed the process), the first file not yet delivered is
    decoded alone in a fresh worker: if that one dies too, the file gets its failed row; then a new loader
    goes on from the next file. torch notices a dead worker by a SIGCHLD handler that raises; SIGCHLD is
    blocked except while fetching, so that this happens here and never inside a model call."""
    if not isolated:
        yield from (dataset[position] for position in range(len(dataset)))
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    try:
        start = 0
        while start < len(dataset):
            try:
                for decoded in _watched(_loader(dataset, range(start, len(dataset)), workers)):
                    start = decoded["position"] + 1
                    yield decoded
                return
            except RuntimeError as error:
                if "DataLoader worker" not in str(error):
                    raise
            try:
                yield from _watched(_loader(dataset, [start], 0))
            except RuntimeError as error:
                if "DataLoader worker" not in str(error):
                    raise
                reason = str(error).partition(")")[2].strip(" .") or "died"
                yield {
                    "position": start, "per_slot": [], "num_frames": 0, "seconds": 0.0, "backend": "",
                    "error": f"DecoderCrash: decoding this file crashed the decoding process (the worker {reason}); "
                    "the file is left out",
                }
            start += 1
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _watched(loader: DataLoader) -> Iterator[dict[str, Any]]:
    """The items of ``loader``, with SIGCHLD let through only while the next one is fetched."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
    try:
        iterator = iter(loader)
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    while True:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        try:
            item = next(iterator)
        except StopIteration:
            return
        finally:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        yield item


def _loader(dataset: _DecodeDataset, positions: Sequence[int], workers: int) -> DataLoader:
    return DataLoader(
        Subset(dataset, positions),
        batch_size=None,
        shuffle=False,
        num_workers=max(workers, 1),
        collate_fn=_identity,
        # With workers=0, no read-ahead while a decoded file holds frames (all-frame metrics hold whole
        # videos); when every reward scores in the worker a file's result is a few numbers, so the worker
        # reads ahead and never waits for the main process to ask for the next file.
        prefetch_factor=2 if workers > 0 or not dataset.holds_frames else 1,
        persistent_workers=False,
    )


def _device_of(module: torch.nn.Module) -> torch.device:
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


# ------------------------------------------------------------------------- batch sizes and compiling

AUTO_BATCH_FRAMES = 256  # where batch_size="auto" starts: the largest batch it tries
AUTO_PROBE_FRAMES = 4  # the CPU memory probe's batch
AUTO_MEMORY_FRACTION = 0.5  # of the available memory, the most a CPU batch's peak may take


def auto_batch_frames(bytes_per_frame: float, available_bytes: int) -> int:
    """The CPU rule of ``batch_size="auto"``: as many frames as fit in ``AUTO_MEMORY_FRACTION`` of
    ``available_bytes`` at ``bytes_per_frame`` each (at least 1 MiB a frame), between 1 and
    ``AUTO_BATCH_FRAMES``."""
    frames = int(AUTO_MEMORY_FRACTION * available_bytes // max(bytes_per_frame, 2**20))
    return max(1, min(AUTO_BATCH_FRAMES, frames))


def available_memory() -> int:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``; else free physical pages)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _status_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    raise OSError(f"no {field_name} in /proc/self/status")


def release_free_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc's ``malloc_trim(0)``; nothing elsewhere).
    glibc keeps freed memory resident for reuse, so after an earlier, larger peak (a long-lived process)
    new tensors land on pages that are already counted and the resident peak does not rise at all."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS, Windows)
        pass


def resident_peak_growth(step: Callable[[], Any]) -> tuple[int | None, Any]:
    """Run ``step``; return how many bytes the process's peak resident memory rose above its resident
    memory before it (Linux: the C heap's free pages are released first, see ``release_free_heap``, and the
    peak is reset through ``/proc/self/clear_refs``), or None where that cannot be measured, and ``step``'s
    result."""
    release_free_heap()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        before = _status_kib("VmRSS")
    except OSError:
        return None, step()
    result = step()
    return max(0, _status_kib("VmHWM") - before) * 1024, result


def compile_called_modules(module: torch.nn.Module, step: Callable[[], Any]) -> int:
    """Run ``step`` once, recording which submodules of ``module`` it calls, and ``torch.compile`` the
    outermost of them in place (``nn.Module.compile``): a reward's own methods (text caches, tokenizers)
    stay plain Python, the networks they call are compiled. Returns how many modules were compiled."""
    parents = {child: parent for parent in module.modules() for child in parent.children()}
    members = set(parents)
    called: list[torch.nn.Module] = []

    def record(called_module: torch.nn.Module, _inputs: Any) -> None:
        if called_module in members and called_module not in called:
            called.append(called_module)

    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        step()
    finally:
        handle.remove()
    chosen = set(called)
    outermost = []
    for candidate in called:
        ancestor = parents.get(candidate)
        while ancestor is not None and ancestor not in chosen:
            ancestor = parents.get(ancestor)
        if ancestor is None:
            outermost.append(candidate)
    for candidate in outermost:
        candidate.compile()
    return len(outermost)


# Starting another DataLoader worker process costs about what decoding this many small clips does (measured
# in benchmarks/bench_eval.py), so smaller jobs decode in one worker (``workers=0``).
FILES_PER_WORKER = 16


def default_workers(files: int, main_scores: bool = True) -> int:
    """Decoding workers for ``files`` files: one per ``FILES_PER_WORKER`` files, at most 4 and cores - 1, or
    every core when the main process has nothing to score (``main_scores`` False: every reward scores in
    the workers as they decode, as the weight-free streaming metrics do)."""
    return max(0, min(4, (os.cpu_count() or 1) - main_scores, files // FILES_PER_WORKER))
