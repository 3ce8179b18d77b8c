"""Where raw data sets live, their official checksums, verification and downloads.

The data root is, in order: the ``data_dir`` argument (``--data-dir``), the ``TRAINLAB_DATA``
environment variable, then the user cache ``$XDG_CACHE_HOME/trainlab/datasets`` (default
``~/.cache/trainlab/datasets``). Each data set sits in its own folder under the root, with the
official file names (the layout of ``shared/datasets``).

Every file is checked against the digest published for it *before* it is parsed (CIFAR batches are
pickles: an unverified pickle is never opened). Verification uses a :class:`Dataset` manifest, so
tests can supply manifests for small files they generate while the real tasks use the official ones.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from trainlab.data.errors import ChecksumError, FormatError, MissingDataError

ENV_VAR = "TRAINLAB_DATA"
Status = Literal["ok", "missing", "corrupt"]
_CHUNK = 1 << 20


@dataclass(frozen=True)
class DataFile:
    """One file of a data set: its name in the folder, its published digest and where to get it."""

    name: str
    sha256: str | None = None
    md5: str | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        if not (self.sha256 or self.md5):
            raise ValueError(f"data file {self.name!r}: a sha256 or md5 digest is required")

    @property
    def digest(self) -> tuple[str, str]:
        """``(algorithm, hex digest)``; sha256 when published, md5 otherwise."""
        return ("sha256", self.sha256) if self.sha256 else ("md5", self.md5)  # type: ignore[return-value]


@dataclass(frozen=True)
class Archive:
    """An official archive holding some of a data set's files under ``prefix``/ (e.g. CIFAR-10's tarball)."""

    name: str
    url: str
    md5: str
    prefix: str


@dataclass(frozen=True)
class Dataset:
    """A manifest: the folder under the data root and the files expected in it."""

    name: str
    folder: str
    files: tuple[DataFile, ...]
    archive: Archive | None = None
    citation: str = ""

    def file(self, name: str) -> DataFile:
        for f in self.files:
            if f.name == name:
                return f
        raise KeyError(f"data set {self.name!r} has no file {name!r}")


_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FMNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_UCI = "https://archive.ics.uci.edu/ml/machine-learning-databases/"


def _idx_files(base: str, digests: dict[str, str]) -> tuple[DataFile, ...]:
    return tuple(DataFile(name, sha256=sha, url=base + name) for name, sha in digests.items())


DATASETS: dict[str, Dataset] = {
    "mnist": Dataset(
        "mnist",
        "mnist",
        _idx_files(
            _MNIST_URL,
            {
                "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            },
        ),
        citation="LeCun, Bottou, Bengio & Haffner, Proc. IEEE 86(11), 1998",
    ),
    "fashion-mnist": Dataset(
        "fashion-mnist",
        "fashion-mnist",
        _idx_files(
            _FMNIST_URL,
            {
                "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            },
        ),
        citation="Xiao, Rasul & Vollgraf, arXiv:1708.07747, 2017",
    ),
    # Only md5 digests are published for the CIFAR-10 batches and archive (Krizhevsky's page).
    "cifar-10": Dataset(
        "cifar-10",
        "cifar-10-batches-py",
        tuple(
            DataFile(name, md5=md5)
            for name, md5 in {
                "data_batch_1": "c99cafc152244af753f735de768cd75f",
                "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
                "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
                "data_batch_4": "634d18415352ddfa80567beed471001a",
                "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
                "test_batch": "40351d587109b95175f43aff81a1287e",
            }.items()
        ),
        archive=Archive(
            "cifar-10-python.tar.gz",
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            "c58f30108f718f92721af3b95e74349a",
            "cifar-10-batches-py",
        ),
        citation="Krizhevsky, Learning Multiple Layers of Features from Tiny Images, 2009",
    ),
    "boston-housing": Dataset(
        "boston-housing",
        "boston-housing",
        (
            DataFile(
                "housing.data",
                sha256="4a8425d42eb99b76feb7ee7cf0fb1d897a6cd19b72c437e4855d767cabb7e24e",
                url=_UCI + "housing/housing.data",
            ),
        ),
        citation="Harrison & Rubinfeld, J. Environ. Econ. Manag. 5, 1978",
    ),
    "wine-quality": Dataset(
        "wine-quality",
        "wine-quality",
        (
            DataFile(
                "winequality-red.csv",
                sha256="4a402cf041b025d4566d954c3b9ba8635a3a8a01e039005d97d6a710278cf05e",
                url=_UCI + "wine-quality/winequality-red.csv",
            ),
            DataFile(
                "winequality-white.csv",
                sha256="76c3f809815c17c07212622f776311faeb31e87610d52c26d87d6e361b169836",
                url=_UCI + "wine-quality/winequality-white.csv",
            ),
        ),
        citation="Cortez et al., Decision Support Systems 47(4), 2009",
    ),
}


def default_cache_dir() -> Path:
    """The user cache folder for data sets: ``$XDG_CACHE_HOME/trainlab/datasets`` or ``~/.cache/...``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trainlab" / "datasets"


def resolve_root(data_dir: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """The data root and where it came from (``"argument"``, ``"TRAINLAB_DATA"`` or ``"cache"``)."""
    if data_dir is not None:
        return Path(data_dir).expanduser(), "argument"
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser(), ENV_VAR
    return default_cache_dir(), "cache"


def data_root(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data root: ``data_dir``, else ``$TRAINLAB_DATA``, else :func:`default_cache_dir`."""
    return resolve_root(data_dir)[0]


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path: Path, spec: DataFile) -> None:
    """Raise :class:`ChecksumError` (naming file, expected and actual digest) unless ``path`` matches ``spec``."""
    algorithm, expected = spec.digest
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise ChecksumError(path, algorithm, expected, actual)


def file_status(root: Path, dataset: Dataset) -> dict[str, Status]:
    """``{file name: "ok" | "missing" | "corrupt"}`` for every file of ``dataset`` under ``root``."""
    out: dict[str, Status] = {}
    for spec in dataset.files:
        path = root / dataset.folder / spec.name
        if not path.is_file():
            out[spec.name] = "missing"
            continue
        try:
            verify_file(path, spec)
            out[spec.name] = "ok"
        except ChecksumError:
            out[spec.name] = "corrupt"
    return out


def missing_message(dataset: Dataset, folder: Path, missing: Iterable[str]) -> str:
    names = ", ".join(missing)
    where = f"the archive {dataset.archive.url}" if dataset.archive else "the official sources"
    return (
        f"data set {dataset.name!r} is not available: searched {folder}; expected files: {names}. "
        f"Copy them there, point --data-dir or {ENV_VAR} at a folder that holds {dataset.folder}/, "
        f"or run `trainlab data download {dataset.name}` where the network reaches {where}."
    )


def require(
    dataset: Dataset,
    root: Path,
    *,
    download: bool = False,
    console: Console | None = None,
) -> dict[str, Path]:
    """Verified paths of every file of ``dataset`` under ``root``; download missing ones when asked.

    Raises :class:`MissingDataError` (data set, folder searched, files expected) when files are absent
    and cannot be fetched, and :class:`ChecksumError` when a present file is corrupted.
    """
    folder = root / dataset.folder
    missing = [f.name for f in dataset.files if not (folder / f.name).is_file()]
    if missing and download:
        try:
            download_dataset(dataset, root, console=console)
        except OSError as err:
            raise MissingDataError(missing_message(dataset, folder, missing) + f" Download failed: {err}") from err
        missing = [f.name for f in dataset.files if not (folder / f.name).is_file()]
    if missing:
        raise MissingDataError(missing_message(dataset, folder, missing))
    paths = {}
    for spec in dataset.files:
        verify_file(folder / spec.name, spec)
        paths[spec.name] = folder / spec.name
    return paths


def open_url(url: str) -> Any:
    """Open ``url`` for reading (``http(s)://`` or ``file://``); replaced in tests to simulate failures."""
    return urllib.request.urlopen(url, timeout=60)  # noqa: S310 - fixed official URLs or test file URLs


def download_file(
    url: str,
    dest: Path,
    *,
    algorithm: str,
    expected: str,
    console: Console | None = None,
    progress: bool = True,
    opener: Callable[[str], Any] | None = None,
) -> Path:
    """Stream ``url`` into ``dest`` with a progress bar, checking its digest; the write is atomic.

    The bytes go to a temporary file in ``dest``'s folder, renamed onto ``dest`` only when the
    download completed and the digest matched; on any failure the temporary file is removed.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    h = hashlib.new(algorithm)
    try:
        with os.fdopen(fd, "wb") as out, (opener or open_url)(url) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=console,
                disable=not progress,
                transient=False,
            )
            with bar:
                task = bar.add_task(f"downloading {dest.name}", total=total)
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    bar.update(task, advance=len(chunk))
        actual = h.hexdigest()
        if actual != expected:
            raise ChecksumError(url, algorithm, expected, actual)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _copy_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> None:
    source = tar.extractfile(member)
    if source is None:
        raise FormatError(f"{member.name}: not a regular file")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, source:
            shutil.copyfileobj(source, out, _CHUNK)
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def download_dataset(
    dataset: Dataset,
    root: Path,
    *,
    console: Console | None = None,
    progress: bool = True,
    opener: Callable[[str], Any] | None = None,
) -> dict[str, Status]:
    """Download the missing files of ``dataset`` into ``root/<folder>`` and verify all of them.

    For a data set shipped as an archive (CIFAR-10), the archive's md5 is checked, only the expected
    members are extracted (no path from the archive is trusted), each is checked, and the archive is
    deleted.
    """
    folder = root / dataset.folder
    folder.mkdir(parents=True, exist_ok=True)
    missing = [f for f in dataset.files if not (folder / f.name).is_file()]
    if missing and dataset.archive is not None:
        archive = dataset.archive
        path = download_file(
            archive.url,
            root / archive.name,
            algorithm="md5",
            expected=archive.md5,
            console=console,
            progress=progress,
            opener=opener,
        )
        try:
            with tarfile.open(path, "r:*") as tar:
                members = {m.name: m for m in tar.getmembers()}
                for spec in missing:
                    member = members.get(f"{archive.prefix}/{spec.name}")
                    if member is None or not member.isfile():
                        raise FormatError(f"{path}: no regular file {archive.prefix}/{spec.name} in the archive")
                    _copy_member(tar, member, folder / spec.name)
        finally:
            path.unlink(missing_ok=True)
    else:
        for spec in missing:
            if spec.url is None:
                raise MissingDataError(missing_message(dataset, folder, [spec.name]))
            algorithm, expected = spec.digest
            download_file(
                spec.url,
                folder / spec.name,
                algorithm=algorithm,
                expected=expected,
                console=console,
                progress=progress,
                opener=opener,
            )
    status = file_status(root, dataset)
    for spec in dataset.files:
        if status[spec.name] == "corrupt":
            verify_file(folder / spec.name, spec)
    return status
