"""Content hashes: a file's sha256, and one digest for a set of files (a model directory, a code closure)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..io import sha256_file

__all__ = ["digest_of_hashes", "files_of", "hash_tree", "output_digest", "sha256_file"]


def digest_of_hashes(hashes: dict[str, str]) -> str:
    """One sha256 for named hashes: order-independent, and renaming a file changes it."""
    digest = hashlib.sha256()
    for name in sorted(hashes):
        digest.update(f"{name}\0{hashes[name]}\n".encode())
    return digest.hexdigest()


def files_of(path: Path) -> list[Path]:
    """A file is itself; a directory output (a model) is every file under it, sorted.

    Snakemake's ``.snakemake_timestamp`` marker inside directory outputs is bookkeeping, not content.
    """
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.name != ".snakemake_timestamp")
    return [path]


def hash_tree(path: Path, relative_to: Path) -> dict[str, str]:
    """``{relative path: sha256}`` for every file of an output (one entry for a plain file)."""
    return {f.relative_to(relative_to).as_posix(): sha256_file(f) for f in files_of(path)}


def output_digest(path: Path, relative_to: Path) -> tuple[str, dict[str, str]]:
    """The sha256 of a file, or for a directory one digest of its files' names and hashes."""
    files = hash_tree(path, relative_to)
    if path.is_file():
        return next(iter(files.values())), files
    # Named relative to the directory itself, so the same model in another run directory has the same digest.
    prefix = path.relative_to(relative_to).as_posix() + "/"
    return digest_of_hashes({name.removeprefix(prefix): sha for name, sha in files.items()}), files
