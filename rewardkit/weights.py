"""Find, verify and safely load the weights a scorer needs: one builder every reward goes through.

A reward declares its files by role in the registry (``RewardInfo.weight_roles``; the first role is the
main one). Its factory calls ``build_with_weights``, which resolves every file, building the module only
when all are here, and records the sha256 of what was loaded on the module (``weights_sha256``).

Resolution order per file: the path the user gave (``weights=PATH`` for the main role, or
``weights={ROLE: PATH}``; a folder holding the file works too), then the Hugging Face cache (no network),
then a download with a progress bar unless offline (``HF_HUB_OFFLINE=1``): ``hf_hub_download`` or
``snapshot_download(allow_patterns=...)`` for Hub files, ``torch.hub.download_url_to_file`` for files
hosted elsewhere (``WeightFile.url``; cached under ``REWARDKIT_CACHE``, default ``~/.cache/rewardkit``).
Files that cannot be downloaded (``WeightFile.manual``) come only from a path. Every missing file is
reported at once, with the command that fetches it. Cached and downloaded files are verified against a
pinned sha256, else the Hub's own LFS hash; a path the user gives is used as given and its sha256 recorded.
Checkpoints are read with safetensors or ``torch.load(weights_only=True)``, so a checkpoint can never run
code, and ``load_strict`` makes missing and unexpected keys errors.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from rewardkit import network
from rewardkit.errors import UserInputError
from rewardkit.registry import RewardInfo, WeightFile, format_size, get_reward_info

__all__ = [
    "MissingFile",
    "MissingWeightsError",
    "DamagedWeightsError",
    "WeightsArgument",
    "WeightsMismatchError",
    "build_with_weights",
    "resolve_weights",
    "require_weights",
    "split_weights_argument",
    "weights_for",
    "fetch_weight_file",
    "cached_weight_path",
    "url_cache_path",
    "cache_root",
    "sha256_of",
    "hub_blob_hash",
    "load_state_dict",
    "check_keys",
    "load_strict",
    "is_offline",
]

_SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")

WeightsArgument = str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]] | None
Module = TypeVar("Module", bound=torch.nn.Module)


@dataclass(frozen=True)
class MissingFile:
    """One declared file that is neither at a given path, nor cached, nor downloadable now."""

    reward: str
    role: str
    main: bool  # the main role: a plain ``weights=PATH`` / ``--weights PATH`` supplies it
    file: WeightFile
    reason: str
    download_spec: str  # ``NAME[:key=value,...]``: what ``rewardkit download`` needs to fetch this file

    @property
    def where(self) -> str:
        if not self.file.downloadable:
            return f"{self.file.repo} ({self.file.manual})"
        return _origin(self.file)


class MissingWeightsError(FileNotFoundError):
    """Weights that are neither at the given path, nor cached, nor downloadable.

    ``missing`` lists every file that is missing (empty when the error is about a bad path).
    ``advice(command)`` words the remedy for the command the user ran (``score``, ``eval``, or Python).
    """

    def __init__(self, message: str = "", missing: Sequence[MissingFile] = ()) -> None:
        self.missing = tuple(missing)
        super().__init__(message or self.advice(None))

    def __str__(self) -> str:
        return self.args[0] if self.args else ""

    def advice(self, command: str | None) -> str:
        """The message, with the ways to supply the files in the syntax of ``command``: ``score`` (the
        ``rewardkit score`` command), ``eval`` (``rewardkit eval``), anything else: Python and the CLI."""
        if not self.missing:
            return str(self)
        unique = {item.file.source: item.file for item in self.missing}
        known = sum(file.size for file in unique.values())
        unknown = sum(1 for file in unique.values() if not file.size)
        total = format_size(known) + (f" + {unknown} of unknown size" if unknown else "")
        rewards = list(dict.fromkeys(item.reward for item in self.missing))
        who = f"reward {rewards[0]!r} needs" if len(rewards) == 1 else f"rewards {', '.join(map(repr, rewards))} need"
        count = "a file that is not here" if len(unique) == 1 else f"{len(unique)} files that are not here"
        lines = [f"{who} {count} ({total}{' in all' if len(unique) > 1 else ''}):"]
        for item in self.missing:
            label = item.reward if len(rewards) > 1 else ""
            if len(self.missing) > 1:
                label = f"{label} {item.role}".strip()
            lines.append(
                f"  - {label + ': ' if label else ''}{item.file.filename} ({item.file.size_text}) from {item.where}; "
                f"{item.reason}"
            )
        downloads = list(dict.fromkeys(item.download_spec for item in self.missing if item.file.downloadable))
        caches = sorted({"the Hugging Face cache" if item.file.url is None else "the rewardkit cache"
                         for item in self.missing if item.file.downloadable})
        lines.append("Supply them:" if len(self.missing) > 1 else "Supply it:")
        if downloads:
            lines.append(
                f"  - on a machine with internet access run `rewardkit download {' '.join(downloads)}` (it fills {' and '.join(caches)}; copy "
                f"{'them' if len(caches) > 1 else 'it'} here, or point {'HF_HOME' if len(caches) == 1 and 'Hugging' in caches[0] else 'REWARDKIT_CACHE' if len(caches) == 1 else 'HF_HOME and REWARDKIT_CACHE'} at a copy), or"
            )
        lines.append(f"  - pass the files you have: {self._paths(command)}.")
        return "\n".join(lines)

    def _paths(self, command: str | None) -> str:
        single = len({item.reward for item in self.missing}) == 1
        if command == "eval":
            return " ".join(f"`--weights {_cli_key(item)}=PATH`" for item in self.missing)
        if command == "score":
            flags = " ".join(
                "`--weights PATH`" if item.main and single else f"`--weights {_cli_key(item)}=PATH`"
                for item in self.missing
            )
            named = " ".join(f"`--weights {_cli_key(item)}=PATH`" for item in self.missing)
            return flags if flags == named else f"{flags} (scoring several rewards: {named})"
        python = ", ".join(
            f"create_reward({item.reward!r}, weights=PATH)" if item.main and len(self.missing) == 1
            else f"create_reward({item.reward!r}, weights={{{item.role!r}: PATH, ...}})"
            for item in self.missing
        )
        return f"{self._paths('score')} on the command line, or {python} in Python"


def _cli_key(item: MissingFile) -> str:
    return item.reward if item.main else f"{item.reward}.{item.role}"


class WeightsMismatchError(UserInputError):
    """A checkpoint does not fit the model: wrong keys, shapes or hash."""


class DamagedWeightsError(WeightsMismatchError):
    """A checkpoint file that cannot be read at all: empty, truncated, a lying header, not a checkpoint."""


def is_offline() -> bool:
    """True when the Hugging Face Hub must not be contacted (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``)."""
    return any(
        os.environ.get(variable, "").strip().lower() in ("1", "true", "yes", "on")
        for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


# ------------------------------------------------------------------------------------------ the builder


def build_with_weights(
    reward: str,
    weights: WeightsArgument,
    options: Mapping[str, Any],
    build: Callable[[dict[str, Path]], Module],
    *,
    locate: Callable[[str, Path], Path] | None = None,
) -> Module:
    """Resolve every file ``reward`` declares for ``options`` (all missing ones reported together), build
    the module from their paths (``build({role: path})``) and record ``weights_sha256`` on it: the sha256 of
    the files that hold weights, joined by ``+`` in role order.

    ``locate(role, folder)`` turns a folder the user gave into the file to load (for rewards whose folders
    have layouts of their own); without it a folder must hold the declared file name."""
    paths = resolve_weights(reward, weights, options, locate=locate)
    try:
        module = build(paths)
    except DamagedWeightsError as error:
        spec = _download_spec(get_reward_info(reward), options)
        raise DamagedWeightsError(
            f"{error}. The file is damaged: get it again with `rewardkit download {spec}` (or copy it again)"
        ) from None
    if not isinstance(getattr(type(module), "weights_sha256", None), property):  # a lazy digest of its own
        roles = get_reward_info(reward).weight_roles(options)
        module.weights_sha256 = "+".join(
            sha256_of(paths[role]) for role, file in roles.items() if file.holds_weights
        ) or None
    return module


def split_weights_argument(reward: str, weights: WeightsArgument, roles: Sequence[str]) -> dict[str, Path]:
    """``weights`` as ``{role: path}``: a plain path is the main (first) role's; unknown roles are errors."""
    if weights is None or weights == "":
        return {}
    if isinstance(weights, Mapping):
        unknown = sorted(set(weights) - set(roles))
        if unknown:
            known = ", ".join(roles) if roles else "none (it has no weights)"
            raise UserInputError(
                f"weights for reward {reward!r} name unknown file role(s) {', '.join(map(repr, unknown))}; "
                f"its roles are: {known}"
            )
        return {role: Path(path).expanduser() for role, path in weights.items() if path not in (None, "")}
    if not roles:
        raise UserInputError(f"reward {reward!r} has no weights; drop --weights / weights=")
    return {roles[0]: Path(weights).expanduser()}


def weights_for(reward: str, options: Mapping[str, Any], given: Mapping[str, Any]) -> WeightsArgument:
    """The ``weights`` argument for ``reward`` from the command line's ``--weights`` pairs, keyed ``NAME``
    (the main file, or a ``{role: path}`` mapping) and ``NAME.ROLE`` (one file of a multi-file reward)."""
    value = given.get(reward)
    roles = {key.partition(".")[2]: path for key, path in given.items() if key.partition(".")[0] == reward and "." in key}
    if not roles:
        return value
    if isinstance(value, Mapping):
        return {**value, **roles}
    if value not in (None, ""):
        main = next(iter(get_reward_info(reward).weight_roles(options)), None)
        if main is not None:
            roles = {main: value, **roles}
    return roles


def resolve_weights(
    reward: str,
    weights: WeightsArgument,
    options: Mapping[str, Any],
    *,
    locate: Callable[[str, Path], Path] | None = None,
) -> dict[str, Path]:
    """``{role: local path}`` for every file ``reward`` needs with ``options``; verified against its hash.

    Raises one MissingWeightsError listing every file that is missing."""
    info = get_reward_info(reward)
    roles = info.weight_roles(options)
    given = split_weights_argument(reward, weights, list(roles))
    paths: dict[str, Path] = {}
    missing: list[MissingFile] = []
    for index, (role, file) in enumerate(roles.items()):
        if role in given:
            paths[role] = _explicit(reward, role, file, given[role], locate)
            continue
        try:
            paths[role] = fetch_weight_file(file, reward=reward)
        except MissingWeightsError as error:
            missing.append(MissingFile(reward, role, index == 0, file, str(error), _download_spec(info, options)))
    if missing:
        raise MissingWeightsError(missing=missing)
    return paths


def require_weights(requests: Iterable[tuple[str, Mapping[str, Any], WeightsArgument]]) -> None:
    """Resolve the files of several rewards (``(name, options, weights)``) and report every missing file of
    all of them at once (with their total size): what ``rewardkit eval`` checks before scoring a suite."""
    missing: list[MissingFile] = []
    for name, options, weights in requests:
        try:
            resolve_weights(name, weights, options)
        except MissingWeightsError as error:
            if not error.missing:
                raise
            missing += [item for item in error.missing if item not in missing]
    if missing:
        raise MissingWeightsError(missing=missing)


def _download_spec(info: RewardInfo, options: Mapping[str, Any]) -> str:
    """``NAME[:key=value,...]`` with the options that change which files ``rewardkit download`` fetches."""
    files = info.weight_roles(options)
    chosen = {}
    for key, value in options.items():
        if key in info.options and value != info.defaults.get(key):
            without = {k: v for k, v in options.items() if k != key}
            if info.weight_roles(without) != files:
                chosen[key] = value
    return info.name + (":" + ",".join(f"{key}={value}" for key, value in chosen.items()) if chosen else "")


def _explicit(reward: str, role: str, file: WeightFile, path: Path, locate: Callable[[str, Path], Path] | None) -> Path:
    if not path.exists():
        raise MissingWeightsError(
            f"the weights path {str(path)!r} given for reward {reward!r} ({role}) does not exist; it should be "
            f"{file.filename} from {_origin(file) if file.downloadable else file.repo} or a folder holding it"
        )
    if path.is_dir():
        inside = path / file.filename
        if locate is not None:  # the reward knows its folder layouts (e.g. the latest checkpoint-N)
            path = locate(role, path)
        elif inside.is_file():
            path = inside
        else:
            raise MissingWeightsError(
                f"the folder {str(path)!r} given for reward {reward!r} ({role}) holds no {file.filename}; "
                f"give the file itself or the folder that holds it"
            )
    # Not checked against the published hash: a path is the user's choice (a fine-tuned or converted
    # checkpoint is legitimate); the strict load refuses a file of the wrong layout, and weights_sha256
    # records exactly which file was used.
    return path


# --------------------------------------------------------------------------------------------- fetching


def fetch_weight_file(file: WeightFile, *, reward: str) -> Path:
    """The local path of ``file`` (and its companions beside it): cached, else downloaded unless offline;
    verified against its pinned sha256 or the Hub's LFS hash. A file that is not available is a
    MissingWeightsError whose message is the reason (``resolve_weights`` words the advice)."""
    if not file.downloadable:
        raise MissingWeightsError("rewardkit cannot download it; pass its path")
    cached = _fetch(file, local=True)
    if cached is None:
        if is_offline():
            where = "the rewardkit cache" if file.url is not None else "the local Hugging Face cache"
            raise MissingWeightsError(f"it is not in {where} and HF_HUB_OFFLINE is set")
        reason = network.unreachable_reason(file.url or _hub_endpoint())
        if reason is not None:  # fail at once rather than after the Hub client's retries
            raise MissingWeightsError(f"the download failed before it started: {reason}")
        try:
            cached = _fetch(file, local=False)
        except WeightsMismatchError:
            raise
        except Exception as error:  # network errors come in many types; all mean "could not download"
            raise MissingWeightsError(f"the download failed ({type(error).__name__}: {error})") from error
        if cached is None:
            raise MissingWeightsError(f"the download did not produce {file.filename} and its companions")
    if file.url is None:
        for name in (file.filename, *file.extra_files):
            companion = _snapshot_root(cached, file) / name
            expected = file.sha256 if name == file.filename and file.sha256 else hub_blob_hash(companion)
            if expected:
                _verify_hash(companion, expected, reward)
    elif file.sha256:
        _verify_hash(cached, file.sha256, reward)
    return cached


def _snapshot_root(path: Path, file: WeightFile) -> Path:
    """The snapshot folder of a cached Hub file (``filename`` may contain folders)."""
    root = path
    for _ in Path(file.filename).parts:
        root = root.parent
    return root


def _hub_endpoint() -> str:
    import huggingface_hub.constants

    return huggingface_hub.constants.ENDPOINT


def _fetch(file: WeightFile, *, local: bool) -> Path | None:
    """The cached copy of ``file`` with its companions (``local``: no network, None when absent), or a download."""
    if file.url is not None:
        from torch.hub import download_url_to_file

        target = url_cache_path(file)
        if local:
            return target if target.is_file() else None
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Written to a temporary file and moved into place only when complete and matching the hash.
            download_url_to_file(file.url, str(target), hash_prefix=file.sha256, progress=True)
        except RuntimeError as error:
            if "invalid hash value" not in str(error):
                raise
            raise WeightsMismatchError(
                f"the file downloaded from {file.url} does not match ({error}): {file.filename} should have "
                f"{file.sha256} (sha256); the server sent a different or truncated file; nothing was kept"
            ) from error
        return target
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        if not file.extra_files:
            return Path(huggingface_hub.hf_hub_download(file.repo, file.filename, revision=file.revision, local_files_only=local))
        folder = Path(huggingface_hub.snapshot_download(
            file.repo, revision=file.revision, allow_patterns=[file.filename, *file.extra_files], local_files_only=local
        ))
    except LocalEntryNotFoundError:
        if local:
            return None
        raise
    # A cached snapshot may lack some of the files (another reward fetched others of the repo).
    return folder / file.filename if all((folder / name).is_file() for name in (file.filename, *file.extra_files)) else None


def cache_root() -> Path:
    """rewardkit's own cache folder: ``REWARDKIT_CACHE``, default ``~/.cache/rewardkit``."""
    return Path(os.environ.get("REWARDKIT_CACHE", Path.home() / ".cache" / "rewardkit")).expanduser()


def url_cache_path(file: WeightFile) -> Path:
    """Where a URL file lives in the rewardkit cache: ``downloads/<host>/<url path>``, named ``filename``."""
    parsed = urllib.parse.urlparse(file.url or "")
    parts = [part for part in urllib.parse.unquote(parsed.path).split("/") if part not in ("", ".", "..")]
    return cache_root().joinpath("downloads", parsed.netloc or parsed.scheme or "local", *parts[:-1], file.filename)


def cached_weight_path(file: WeightFile) -> Path | None:
    """The local copy of ``file`` if it and its companions are cached (no network), else None."""
    if not file.downloadable:
        return None
    if file.url is not None:
        path = url_cache_path(file)
        return path if path.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(file.repo, file.filename, revision=file.revision)
    if not isinstance(found, str):
        return None
    path = Path(found)
    root = _snapshot_root(path, file)
    return path if all((root / name).is_file() for name in file.extra_files) else None


def _origin(file: WeightFile) -> str:
    return file.url if file.url is not None else f"the Hugging Face repo {file.repo}"


def hub_blob_hash(path: Path) -> str | None:
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
    if path.is_dir():
        raise MissingWeightsError(f"{path} is a folder; give the checkpoint file in it")
    if path.stat().st_size == 0:
        raise DamagedWeightsError(f"cannot read checkpoint {path}: it is empty (0 bytes)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as error:  # SafetensorError, or an OSError for a header that lies about sizes
            raise DamagedWeightsError(f"cannot read checkpoint {path}: not a readable safetensors file ({error})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        if not _looks_like_torch_file(path):
            raise DamagedWeightsError(
                f"cannot read checkpoint {path}: it is neither a torch checkpoint (zip or pickle) nor safetensors "
                f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'no detail'})"
            ) from None
        if "Unsupported global" in str(error) or "GLOBAL" in str(error):
            raise WeightsMismatchError(
                f"{path} contains pickled Python objects besides tensors; rewardkit loads checkpoints with "
                f"torch.load(weights_only=True) so that a checkpoint cannot run code. Re-save it as a plain "
                f"state dict (torch.save(model.state_dict(), ...)) or as safetensors."
            ) from error
        raise DamagedWeightsError(f"cannot read checkpoint {path}: {type(error).__name__}: {error}") from None


def _looks_like_torch_file(path: Path) -> bool:
    """A torch.save file: a zip archive (the current format) or a pickle (protocol 2+, the legacy format)."""
    import zipfile

    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as handle:
        head = handle.read(2)
    return head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")


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
