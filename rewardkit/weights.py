"""Find, verify and safely load the weights a scorer needs.

Resolution order: an explicit path, then the Hugging Face cache (no network), then a download with a
progress bar unless offline (``HF_HUB_OFFLINE=1``). Files hosted outside the Hub (``WeightFile.url``)
take the same order with the rewardkit cache (``REWARDKIT_CACHE``, default ``~/.cache/rewardkit``) in
place of the Hugging Face one. Checkpoints are read with safetensors or
``torch.load(weights_only=True)``, so a checkpoint can never run code, and every load checks missing and
unexpected keys.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from rewardkit import network
from rewardkit.errors import UserInputError
from rewardkit.registry import WeightFile

__all__ = [
    "MissingWeightsError",
    "WeightsMismatchError",
    "resolve_weight_file",
    "cached_weight_path",
    "cache_root",
    "explicit_weights_file",
    "sha256_of",
    "load_state_dict",
    "check_keys",
    "load_strict",
    "is_offline",
]

_SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


class MissingWeightsError(FileNotFoundError):
    """The weights are neither at the given path, nor cached, nor downloadable."""


class WeightsMismatchError(UserInputError):
    """A checkpoint does not fit the model: wrong keys, shapes or hash."""


def is_offline() -> bool:
    """True when the Hugging Face Hub must not be contacted (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``)."""
    return any(
        os.environ.get(variable, "").strip().lower() in ("1", "true", "yes", "on")
        for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def resolve_weight_file(
    weight: WeightFile,
    *,
    reward: str,
    explicit: str | os.PathLike[str] | None = None,
    verify: bool = True,
    option: str = "weights",
) -> Path:
    """Return a local path to ``weight``, downloading it if allowed; verify its sha256.

    ``explicit`` may name the file itself or a folder that contains ``weight.filename``.
    Companion files (``weight.extra_files``) are fetched next to the main file. ``option`` is the
    create_reward argument through which a user passes this file (named in the missing-weights error).
    """
    if explicit is not None:
        path = Path(explicit).expanduser()
        if path.is_dir() and (path / weight.filename).is_file():
            path = path / weight.filename
        if not path.exists():
            raise MissingWeightsError(
                f"the weights path {str(path)!r} given for reward {reward!r} does not exist; "
                f"it should be {weight.filename} from {_origin(weight)} or a folder holding it"
            )
        if verify and path.is_file() and weight.sha256:
            _verify_hash(path, weight.sha256, reward)
        return path
    if weight.url is not None:
        return _resolve_url_file(weight, reward, option)

    import huggingface_hub.constants
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    filenames = (weight.filename, *weight.extra_files)
    try:
        paths = [
            Path(hf_hub_download(weight.repo, name, revision=weight.revision, local_files_only=True))
            for name in filenames
        ]
    except LocalEntryNotFoundError:
        if is_offline():
            raise MissingWeightsError(_missing_message(weight, reward, "HF_HUB_OFFLINE is set", option)) from None
        _check_network(huggingface_hub.constants.ENDPOINT, weight, reward, option)
        try:
            paths = [Path(hf_hub_download(weight.repo, name, revision=weight.revision)) for name in filenames]
        except Exception as error:  # network errors come in many types; all mean "could not download"
            raise MissingWeightsError(
                _missing_message(weight, reward, f"the download failed ({type(error).__name__}: {error})", option)
            ) from error
    if verify:
        expected = weight.sha256 or _hub_blob_hash(paths[0])
        if expected:
            _verify_hash(paths[0], expected, reward)
    return paths[0]


def explicit_weights_file(path: str | os.PathLike[str], *, reward: str) -> Path:
    """A user-given checkpoint path, which must be an existing file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingWeightsError(
            f"the weights path {str(path)!r} given for reward {reward!r} is not an existing file"
        )
    return path


def cache_root() -> Path:
    """rewardkit's own cache folder: ``REWARDKIT_CACHE``, default ``~/.cache/rewardkit``."""
    return Path(os.environ.get("REWARDKIT_CACHE", Path.home() / ".cache" / "rewardkit")).expanduser()


def _url_cache_path(weight: WeightFile) -> Path:
    """Where a URL file lives in the rewardkit cache: ``downloads/<host>/<url path>``, named ``filename``."""
    parsed = urllib.parse.urlparse(weight.url or "")
    parts = [part for part in urllib.parse.unquote(parsed.path).split("/") if part not in ("", ".", "..")]
    return cache_root().joinpath("downloads", parsed.netloc or parsed.scheme or "local", *parts[:-1], weight.filename)


def cached_weight_path(weight: WeightFile) -> Path | None:
    """The local copy of ``weight`` if it is already cached (no network), else None."""
    if weight.url is not None:
        path = _url_cache_path(weight)
        return path if path.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(weight.repo, weight.filename, revision=weight.revision)
    return Path(found) if isinstance(found, str) else None


def _resolve_url_file(weight: WeightFile, reward: str, option: str) -> Path:
    path = _url_cache_path(weight)
    if not path.is_file():
        if is_offline():
            raise MissingWeightsError(_missing_message(weight, reward, "HF_HUB_OFFLINE is set", option))
        _check_network(weight.url or "", weight, reward, option)
        try:
            _download_url(weight, path)
        except WeightsMismatchError:
            raise
        except Exception as error:  # network errors come in many types; all mean "could not download"
            raise MissingWeightsError(
                _missing_message(weight, reward, f"the download failed ({type(error).__name__}: {error})", option)
            ) from error
    if weight.sha256:
        _verify_hash(path, weight.sha256, reward)
    return path


def _check_network(url: str, weight: WeightFile, reward: str, option: str) -> None:
    """Fail at once, with the usual advice, when the download host does not answer (no retries)."""
    reason = network.unreachable_reason(url)
    if reason is not None:
        raise MissingWeightsError(_missing_message(weight, reward, f"the download failed before it started: {reason}", option))


def _download_url(weight: WeightFile, path: Path) -> None:
    """Stream ``weight.url`` into ``path`` with a progress bar; the file appears only when complete and,
    if a hash is pinned, verified, so an interrupted or corrupt download never poses as the weights."""
    from tqdm.auto import tqdm

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    try:
        request = urllib.request.Request(weight.url, headers={"User-Agent": "rewardkit"})
        with urllib.request.urlopen(request, timeout=60) as response, open(partial, "wb") as handle:
            total = int(response.headers.get("Content-Length") or 0) or weight.size or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=weight.filename) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    handle.write(block)
                    digest.update(block)
                    bar.update(len(block))
        if weight.sha256 and digest.hexdigest() != weight.sha256.lower():
            raise WeightsMismatchError(
                f"the file downloaded from {weight.url} has sha256 {digest.hexdigest()}, but {weight.filename} "
                f"should have {weight.sha256}: the server sent a different or truncated file; nothing was kept"
            )
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def _origin(weight: WeightFile) -> str:
    return weight.url if weight.url is not None else f"the Hugging Face repo {weight.repo}"


def _missing_message(weight: WeightFile, reward: str, why: str, option: str = "weights") -> str:
    if weight.url is not None:
        where = f"it is not in the rewardkit cache ({_url_cache_path(weight)})"
        fills = f"it fills the rewardkit cache; copy {cache_root()} here or point REWARDKIT_CACHE at a copy"
    else:
        where = "it is not in the local Hugging Face cache"
        fills = "it fills the Hugging Face cache; copy that cache here or point HF_HOME at it"
    if option == "weights":
        supply = f"`--weights PATH` on the command line, or create_reward({reward!r}, weights=PATH) in Python"
    else:
        supply = (
            f"`--reward {reward}:{option}=PATH` on the command line, or create_reward({reward!r}, {option}=PATH) "
            f"in Python"
        )
    return (
        f"reward {reward!r} needs {weight.filename} ({weight.size_text}) from {_origin(weight)}; "
        f"{where} and {why}.\n"
        f"Supply it one of two ways:\n"
        f"  1. on a machine with internet access run `rewardkit download {reward}` ({fills}), or\n"
        f"  2. pass the file you already have: {supply}."
    )


def _hub_blob_hash(path: Path) -> str | None:
    """The Hub stores LFS files in the cache as ``blobs/<sha256>``; return that hash when it is one."""
    target = path.resolve()
    if target.parent.name == "blobs" and _SHA256_PATTERN.match(target.name):
        return target.name
    return None


def _verify_hash(path: Path, expected: str, reward: str) -> None:
    actual = sha256_of(path)
    if actual != expected.lower():
        raise WeightsMismatchError(
            f"{path} has sha256 {actual}, but reward {reward!r} expects {expected}: the file is corrupt, "
            f"incomplete or a different checkpoint. Delete it and run `rewardkit download {reward}` again."
        )


def _hash_cache_path() -> Path:
    return cache_root() / "sha256.json"


def sha256_of(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, remembered by (real path, size, mtime) so multi-GB checkpoints hash once."""
    real = Path(path).resolve()
    stat = real.stat()
    key = f"{real}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = _hash_cache_path()
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return cache[key]
    digest = hashlib.sha256()
    with open(real, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    cache[key] = digest.hexdigest()
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache_file.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(cache))
        temporary.replace(cache_file)
    except OSError:
        pass  # a read-only home only costs re-hashing next time
    return cache[key]


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a checkpoint without executing code: safetensors, or a torch file with ``weights_only=True``."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        if "weights_only" in str(error) or "Unsupported global" in str(error):
            raise WeightsMismatchError(
                f"{path} contains pickled Python objects besides tensors; rewardkit loads checkpoints with "
                f"torch.load(weights_only=True) so that a checkpoint cannot run code. Re-save it as a plain "
                f"state dict (torch.save(model.state_dict(), ...)) or as safetensors."
            ) from error
        raise WeightsMismatchError(f"cannot read checkpoint {path}: {error}") from error


def check_keys(expected: Iterable[str], found: Iterable[str], source: str) -> None:
    """Raise if the checkpoint's keys differ from the model's, listing a few of each kind."""
    expected_set, found_set = set(expected), set(found)
    missing = sorted(expected_set - found_set)
    unexpected = sorted(found_set - expected_set)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:5])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:5])})")
        raise WeightsMismatchError(
            f"checkpoint {source} does not match the model: {'; '.join(parts)} keys. "
            f"Is it the right file for this reward and version?"
        )


def load_strict(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state_dict`` into ``module``; any missing or unexpected key or shape mismatch is an error."""
    check_keys(module.state_dict().keys(), state_dict.keys(), source)
    own = module.state_dict()
    wrong_shapes = [
        f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(own[key].shape)}"
        for key, value in state_dict.items()
        if tuple(value.shape) != tuple(own[key].shape)
    ]
    if wrong_shapes:
        raise WeightsMismatchError(
            f"checkpoint {source} has {len(wrong_shapes)} tensors of the wrong shape "
            f"(e.g. {'; '.join(wrong_shapes[:3])}); it was made for a different architecture"
        )
    module.load_state_dict(state_dict, strict=True)
