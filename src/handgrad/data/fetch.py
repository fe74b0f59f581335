"""Where dataset files live, how they are verified, and how missing ones are downloaded.

A data root holds one folder per dataset (``ROOT/mnist/train-images-idx3-ubyte.gz``); the roots
searched are, in order, the ``data_dir`` argument (CLI ``--data-dir``), the ``HANDGRAD_DATA``
environment variable, and the user's cache folder. Every file is checked against its SHA-256
every time it is used, whoever put it there. Missing files are downloaded with pooch (the
``download`` extra), which writes to a temporary name, verifies the hash and only then renames,
so an interrupted download never leaves a file that passes for complete.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DataFile", "RemoteDataset", "cache_dir", "search_roots", "locate", "sha256_of", "DataError"]


class DataError(RuntimeError):
    """A dataset file is missing, corrupt, or could not be downloaded."""


@dataclass(frozen=True)
class DataFile:
    name: str          # file name as published, e.g. "train-images-idx3-ubyte.gz"
    sha256: str        # of the file exactly as published (compressed)
    sha256_raw: str    # of its decompressed content, for users who keep the files unpacked


@dataclass(frozen=True)
class RemoteDataset:
    name: str
    files: dict        # role ("train_images", ...) -> DataFile
    mirrors: tuple     # base URLs, tried in order
    credit: str


def cache_dir() -> Path:
    """The user's cache folder for handgrad (``$XDG_CACHE_HOME/handgrad``, ``~/.cache/handgrad``;
    ``%LOCALAPPDATA%\\handgrad`` on Windows)."""
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "handgrad"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "handgrad"


def search_roots(data_dir=None) -> list[Path]:
    roots = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    if os.environ.get("HANDGRAD_DATA"):
        roots.append(Path(os.environ["HANDGRAD_DATA"]).expanduser())
    roots.append(cache_dir())
    return roots


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(path: Path, expected: str) -> Path:
    actual = sha256_of(path)
    if actual != expected:
        raise DataError(f"{path}: checksum mismatch (sha256 {actual}, expected {expected}); the file is "
                        "corrupt, truncated or not the published one. Delete it so that it can be fetched again.")
    return path


def _check_is_folder(path: Path, what: str) -> None:
    if path.exists() and not path.is_dir():
        raise DataError(f"{what} {path} is a file, not a folder (a data root holds one folder per dataset, "
                        "e.g. ROOT/mnist/train-images-idx3-ubyte.gz)")


def locate(dataset: RemoteDataset, file: DataFile, data_dir=None, download: bool = True) -> Path:
    """The verified path of one dataset file: found under a search root (compressed or not), or
    downloaded into the first root. Raises :class:`DataError` with what to do otherwise."""
    roots = search_roots(data_dir)
    raw_name = file.name[:-3] if file.name.endswith(".gz") else None
    for root in roots:
        _check_is_folder(root, "the data root")
        folder = root / dataset.name
        _check_is_folder(folder, f"the {dataset.name} entry of the data root:")
        if (folder / file.name).is_file():
            return _verified(folder / file.name, file.sha256)
        if raw_name and (folder / raw_name).is_file():
            return _verified(folder / raw_name, file.sha256_raw)
    target = roots[0] / dataset.name
    where = ", ".join(str(root / dataset.name) for root in roots)
    if not download:
        raise DataError(f"{dataset.name}: {file.name} not found in {where}. Put the published files there "
                        f"({', '.join(f.name for f in dataset.files.values())}), point {_DATA_DIR_HINT} at a "
                        f"folder holding a {dataset.name}/ folder with them, or allow downloading.")
    return _download(dataset, file, target, where)


#: Where a user can say where their data is: the library's argument, the command's option, the
#: environment variable (README's "Data" section).
_DATA_DIR_HINT = "data_dir (--data-dir) or HANDGRAD_DATA"


def _download(dataset: RemoteDataset, file: DataFile, target: Path, where: str) -> Path:
    try:
        import pooch
    except ImportError:
        raise DataError(
            f"{dataset.name}: {file.name} not found in {where}, and downloading needs the 'download' extra "
            f"(pip install 'handgrad[download]'). Or copy the files {', '.join(f.name for f in dataset.files.values())} "
            f"into {target}, or point {_DATA_DIR_HINT} at a folder holding a {dataset.name}/ folder with them."
        ) from None
    # Remember which folders the download creates, so that a failed one (offline, a mistyped
    # --data-dir) leaves nothing behind.
    created = [folder for folder in (target, *target.parents) if not folder.exists()]
    target.mkdir(parents=True, exist_ok=True)
    failures = []
    for mirror in dataset.mirrors:
        url = mirror.rstrip("/") + "/" + file.name
        try:
            # pooch downloads to a temporary file beside the target, checks the hash, then renames.
            path = pooch.retrieve(url, known_hash=f"sha256:{file.sha256}", fname=file.name, path=target,
                                  progressbar=_want_progress())
            return _verified(Path(path), file.sha256)
        except Exception as error:  # noqa: BLE001 - every mirror's failure is reported below
            failures.append(f"{url}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
    for folder in created:  # deepest first
        try:
            folder.rmdir()
        except OSError:  # not empty (another file arrived meanwhile): keep it
            break
    # One line, as every error the command line prints: each mirror's failure, then what to do.
    raise DataError(f"{dataset.name}: could not download {file.name} from any mirror ({'; '.join(failures)}); "
                    f"copy the published file into {target} instead (offline use), or point {_DATA_DIR_HINT} "
                    f"at a folder holding a {dataset.name}/ folder with it")


def _want_progress() -> bool:
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return sys.stderr.isatty()
