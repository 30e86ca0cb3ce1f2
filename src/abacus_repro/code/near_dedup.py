"""Near-duplicate removal over the whole code corpus: MinHash signatures, LSH banding, verified clusters.

BigCode's method (The Stack, StarCoder), in four jobs so it scales out on a cluster:

1. ``code_minhash`` (per shard): each cleaned file's shingles -> a datasketch MinHash signature;
2. ``code_lsh`` (per group of bands): files whose signatures agree on every row of a band share that band's
   bucket; each bucket's members are candidate pairs (edges to the bucket's first member, as BigCode);
3. ``code_near_clusters`` (one job): candidate pairs whose estimated Jaccard similarity reaches the threshold are
   joined by union-find into clusters; the member with the smallest (repo, path, id) key is kept;
4. ``code_finish`` (per shard, abacus_repro.code.pipeline): drops every other member as ``near_duplicate``.

Files are numbered by their place in the signature files read in shard order (the "global index"): the LSH and
cluster jobs read the same list, so the same number names the same file in both.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasketch import MinHash

from ..errors import InputError
from ..io import doc_meta, path_list, read_docs, write_json, write_table
from ..rules import RulePaths
from ..settings import NearDedupSettings, Settings
from .settings import CLEANED_META_KEY

log = logging.getLogger(__name__)

# BigCode's tokens: runs of ASCII letters, digits and underscores (everything else separates), lower-cased.
TOKEN = re.compile(r"[A-Za-z0-9_]+")
# datasketch 2.0's default scheme, named so a datasketch upgrade cannot change the signatures unnoticed: affine
# permutations modulo 2^32 of 32-bit SHA-1 hashes (hash values are uint32).
MINHASH_SCHEME = "affine32"
HASH_DTYPE = np.dtype("<u4")

SIGNATURE_SCHEMA = pa.schema(
    [
        ("shard", pa.int64()),
        ("row", pa.int64()),  # the file's row in its shard's cleaned.parquet
        ("id", pa.string()),
        ("repo", pa.string()),
        ("path", pa.string()),
        ("bytes", pa.int64()),  # the file's size as read (UTF-8), for the bytes dropped
        ("signature", pa.binary()),  # num_perm little-endian uint32 hash values
    ]
)
CANDIDATE_SCHEMA = pa.schema([("a", pa.int64()), ("b", pa.int64())])
CLUSTER_SCHEMA = pa.schema(
    [
        ("shard", pa.int64()),
        ("row", pa.int64()),
        ("id", pa.string()),
        ("repo", pa.string()),
        ("path", pa.string()),
        ("bytes", pa.int64()),
        ("cluster", pa.int64()),
        ("kept", pa.bool_()),
        ("kept_id", pa.string()),
        ("kept_repo", pa.string()),
        ("kept_path", pa.string()),
        ("jaccard", pa.float64()),
    ]
)


class NearDedupJob(Settings):
    """What the signature and cluster jobs read: the run's seed (the MinHash permutations) and the method."""

    seed: int
    near_dedup: NearDedupSettings


# --------------------------------------------------------------------------------------------- signatures


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


def shingles(text: str, ngram: int) -> set[bytes]:
    """The set of word n-grams of ``ngram`` tokens (joined by a space); a file with fewer tokens is one shingle
    of all of them (so a two-line ``__init__.py`` still has a signature)."""
    words = tokens(text)
    if len(words) < ngram:
        return {" ".join(words).encode("utf-8")}
    return {" ".join(words[start : start + ngram]).encode("utf-8") for start in range(len(words) - ngram + 1)}


def minhash_template(job: NearDedupJob) -> MinHash:
    """An empty MinHash with the run's permutations: every signature is a copy of it, so the permutations are
    drawn once (from the seed) and shared."""
    return MinHash(num_perm=job.near_dedup.num_perm, seed=job.seed, scheme=MINHASH_SCHEME)


def signature(text: str, template: MinHash, ngram: int) -> np.ndarray:
    minhash = template.copy()
    minhash.update_batch(shingles(text, ngram))
    return np.asarray(minhash.hashvalues, dtype=HASH_DTYPE)


def as_minhash(values: np.ndarray, template: MinHash) -> MinHash:
    """A stored signature as a datasketch MinHash sharing the template's permutations (nothing is re-drawn)."""
    return MinHash(seed=template.seed, hashvalues=values, permutations=template.permutations, scheme=template.scheme)


def estimated_jaccard(a: np.ndarray, b: np.ndarray, template: MinHash) -> float:
    return as_minhash(a, template).jaccard(as_minhash(b, template))


def read_bytes_of(meta: dict, path: str | Path) -> int:
    """A cleaned file's size as code_clean read it (before ruff's fixes), from the meta code_clean wrote."""
    try:
        return int(meta[CLEANED_META_KEY]["read_bytes"])
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(
            path, f"a document's meta lacks {CLEANED_META_KEY}.read_bytes (not written by code_clean?)"
        ) from err


def file_signatures(docs: Sequence[dict], job: NearDedupJob, shard: int, path: str | Path) -> pa.Table:
    """One row per cleaned document of a shard (read from ``path``): its key fields, size and signature."""
    template = minhash_template(job)
    rows = []
    for row, doc in enumerate(docs):
        meta = doc_meta(doc)
        rows.append(
            {
                "shard": shard,
                "row": row,
                "id": doc["id"],
                "repo": str(meta.get("repo", "")),
                "path": str(meta.get("path", "")),
                "bytes": read_bytes_of(meta, path),
                "signature": signature(doc["text"], template, job.near_dedup.ngram).tobytes(),
            }
        )
    return pa.Table.from_pylist(rows, schema=SIGNATURE_SCHEMA)


def read_table(path: str | Path, schema: pa.Schema, columns: list[str] | None = None) -> pa.Table:
    try:
        table = pq.read_table(path, columns=columns)
    except FileNotFoundError as err:
        raise InputError(path, "file not found") from err
    except (pa.ArrowInvalid, OSError) as err:
        raise InputError(path, f"not a readable Parquet file ({err})") from err
    missing = set(columns or schema.names) - set(table.column_names)
    if missing:
        raise InputError(path, f"lacks columns {sorted(missing)}")
    return table


def signature_matrix(table: pa.Table, num_perm: int, path: str | Path) -> np.ndarray:
    """The signature column as an (n files, num_perm) uint32 array."""
    raw = b"".join(table.column("signature").to_pylist())
    if len(raw) != table.num_rows * num_perm * HASH_DTYPE.itemsize:
        raise InputError(path, f"signatures are not {num_perm} hash values each (num_perm changed since?)")
    return np.frombuffer(raw, dtype=HASH_DTYPE).reshape(table.num_rows, num_perm)


# --------------------------------------------------------------------------------------------- LSH


def band_groups(bands: int, jobs: int) -> list[range]:
    """Bands split into ``jobs`` contiguous groups of (nearly) equal size, the first groups one larger."""
    size, extra = divmod(bands, jobs)
    groups, start = [], 0
    for job in range(jobs):
        end = start + size + (1 if job < extra else 0)
        groups.append(range(start, end))
        start = end
    return groups


def band_candidates(band: np.ndarray) -> np.ndarray:
    """Candidate pairs (a, b), a < b, from one band's hash values ((n, rows) uint32, one row per file in global
    order): the bucket key is the bytes of the file's rows, and each bucket's members pair with its first
    member (linear in bucket size, as BigCode; union-find joins the rest)."""
    if len(band) < 2:
        return np.empty((0, 2), dtype=np.int64)
    keys = np.ascontiguousarray(band).view(np.dtype((np.void, band.shape[1] * band.itemsize))).ravel()
    _unique, bucket = np.unique(keys, return_inverse=True)
    order = np.argsort(bucket, kind="stable")  # stable: within a bucket, files stay in global order
    sorted_bucket = bucket[order]
    starts = np.flatnonzero(np.r_[True, sorted_bucket[1:] != sorted_bucket[:-1]])
    first_of_bucket = order[starts][np.searchsorted(starts, np.arange(len(order)), side="right") - 1]
    mask = first_of_bucket != order
    return np.stack([first_of_bucket[mask], order[mask]], axis=1).astype(np.int64)


def lsh_candidates(signature_paths: Sequence[str], settings: NearDedupSettings, group: int) -> np.ndarray:
    """Unique candidate pairs, sorted, from the bands of one group over every shard's signatures. Only the
    group's columns are held for the whole corpus (files x rows x bands in the group)."""
    bands = band_groups(settings.bands, settings.bucket_jobs)[group]
    columns = slice(bands.start * settings.rows, bands.stop * settings.rows)
    parts = []
    for path in signature_paths:
        table = read_table(path, SIGNATURE_SCHEMA, ["signature"])
        parts.append(signature_matrix(table, settings.num_perm, path)[:, columns].copy())
    held = np.concatenate(parts) if parts else np.empty((0, columns.stop - columns.start), dtype=HASH_DTYPE)
    pairs = [band_candidates(held[:, b * settings.rows : (b + 1) * settings.rows]) for b in range(len(bands))]
    return unique_pairs(pairs)


def unique_pairs(pairs: Iterable[np.ndarray]) -> np.ndarray:
    stacked = [p for p in pairs if len(p)]
    if not stacked:
        return np.empty((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(stacked), axis=0)


# --------------------------------------------------------------------------------------------- clusters


@dataclass(frozen=True)
class FileKey:
    """A file in the corpus: the order of these keys decides which member of a cluster is kept."""

    repo: str
    path: str
    id: str
    shard: int
    row: int
    bytes: int


class UnionFind:
    """Disjoint sets over global indices; each set's root is its member with the smallest FileKey."""

    def __init__(self, keys: dict[int, FileKey]):
        self.keys = keys
        self.parent: dict[int, int] = {}

    def find(self, item: int) -> int:
        root = item
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while item != root:  # path compression
            self.parent[item], item = root, self.parent.get(item, item)
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        low, high = sorted((ra, rb), key=lambda i: kept_order(self.keys[i]))
        self.parent[high] = low
        self.parent.setdefault(low, low)


def kept_order(key: FileKey) -> tuple:
    """The order in which a cluster's members are kept: the first by (repo, path, id), as exact dedup keeps."""
    return (key.repo, key.path, key.id, key.shard, key.row)


def involved_files(
    signature_paths: Sequence[str], wanted: set[int], num_perm: int
) -> tuple[dict[int, FileKey], dict[int, np.ndarray], int]:
    """(keys, signatures) of the files named by global index in ``wanted``, and the number of files in all."""
    keys: dict[int, FileKey] = {}
    signatures: dict[int, np.ndarray] = {}
    offset = 0
    for path in signature_paths:
        table = read_table(path, SIGNATURE_SCHEMA)
        matrix = signature_matrix(table, num_perm, path)
        columns = {name: table.column(name).to_pylist() for name in ("shard", "row", "id", "repo", "path", "bytes")}
        for local in range(table.num_rows):
            index = offset + local
            if index in wanted:
                keys[index] = FileKey(
                    *(columns[name][local] for name in ("repo", "path", "id", "shard", "row", "bytes"))
                )
                signatures[index] = matrix[local]
        offset += table.num_rows
    return keys, signatures, offset


def verified_clusters(
    pairs: np.ndarray, keys: dict[int, FileKey], signatures: dict[int, np.ndarray], template: MinHash, threshold: float
) -> tuple[dict[int, list[int]], Counter[str]]:
    """Clusters (root -> members, root first, members in key order) of the pairs whose estimated Jaccard reaches
    ``threshold``. LSH only says two files share a bucket in some band; that happens below the threshold too
    (a false positive of the banding), so each pair is verified on the two whole signatures before it joins."""
    sets = UnionFind(keys)
    counts: Counter[str] = Counter()
    for a, b in pairs.tolist():
        if estimated_jaccard(signatures[a], signatures[b], template) >= threshold:
            counts["verified_pairs"] += 1
            sets.union(a, b)
        else:
            counts["false_positive_pairs"] += 1
    members: dict[int, list[int]] = {}
    for item in sorted(sets.parent, key=lambda i: kept_order(keys[i])):
        members.setdefault(sets.find(item), []).append(item)
    return {root: group for root, group in members.items() if len(group) > 1}, counts


def cluster_rows(
    clusters: dict[int, list[int]], keys: dict[int, FileKey], signatures: dict[int, np.ndarray], template: MinHash
) -> list[dict[str, Any]]:
    """One row per member, clusters numbered in the order of their kept member's key; each member's Jaccard is
    estimated against the kept member (it may be below the threshold when the member joined through another)."""
    rows = []
    roots = sorted(clusters, key=lambda r: kept_order(keys[r]))
    for number, root in enumerate(roots):
        kept = keys[root]
        for member in clusters[root]:
            key = keys[member]
            rows.append(
                {
                    "shard": key.shard,
                    "row": key.row,
                    "id": key.id,
                    "repo": key.repo,
                    "path": key.path,
                    "bytes": key.bytes,
                    "cluster": number,
                    "kept": member == root,
                    "kept_id": kept.id,
                    "kept_repo": kept.repo,
                    "kept_path": kept.path,
                    "jaccard": 1.0
                    if member == root
                    else estimated_jaccard(signatures[member], signatures[root], template),
                }
            )
    return rows


def cluster_stats(rows: Sequence[dict], job: NearDedupJob, files: int, counts: Counter[str], candidates: int) -> dict:
    sizes = Counter(row["cluster"] for row in rows)
    histogram = Counter(sizes.values())
    dropped = [row for row in rows if not row["kept"]]
    return {
        "enabled": job.near_dedup.enabled,
        "seed": job.seed,
        "parameters": job.near_dedup.model_dump(),
        "minhash_scheme": MINHASH_SCHEME,
        "files": files,
        "candidate_pairs": candidates,
        "verified_pairs": counts["verified_pairs"],
        "false_positive_pairs": counts["false_positive_pairs"],
        "clusters": len(sizes),
        "files_in_clusters": len(rows),
        "files_dropped": len(dropped),
        "bytes_dropped": sum(row["bytes"] for row in dropped),
        # cluster size -> number of clusters of that size (JSON keys are strings; sizes in increasing order)
        "cluster_size_histogram": {str(size): histogram[size] for size in sorted(histogram)},
    }


def near_clusters(
    signature_paths: Sequence[str], candidate_paths: Sequence[str], job: NearDedupJob
) -> tuple[list[dict], dict]:
    """(cluster rows, stats) from every shard's signatures and every band group's candidate pairs."""
    pairs = unique_pairs(
        np.stack([t.column("a").to_numpy(), t.column("b").to_numpy()], axis=1)
        for t in (read_table(p, CANDIDATE_SCHEMA) for p in candidate_paths)
    )
    keys, signatures, files = involved_files(signature_paths, set(pairs.ravel().tolist()), job.near_dedup.num_perm)
    template = minhash_template(job)
    clusters, counts = verified_clusters(pairs, keys, signatures, template, job.near_dedup.threshold)
    rows = cluster_rows(clusters, keys, signatures, template)
    return rows, cluster_stats(rows, job, files, counts, len(pairs))


def near_duplicates_of_shard(clusters_path: str | Path, shard: int) -> dict[int, dict]:
    """row in the shard's cleaned.parquet -> its cluster row, for the shard's members that are not kept."""
    table = read_table(clusters_path, CLUSTER_SCHEMA)
    return {row["row"]: row for row in table.to_pylist() if row["shard"] == shard and not row["kept"]}


# --------------------------------------------------------------------------------------------- rule entries


def run_code_minhash(settings: NearDedupJob, paths: RulePaths) -> int:
    """Rule code_minhash: MinHash signatures of one shard's cleaned files."""
    docs = read_docs(paths.input["cleaned"])
    write_table(
        paths.output["signatures"],
        file_signatures(docs, settings, int(paths.wildcards["shard"]), paths.input["cleaned"]),
    )
    log.info(
        "shard %s: %d signatures of %d permutations", paths.wildcards["shard"], len(docs), settings.near_dedup.num_perm
    )
    return len(docs)


def run_code_lsh(settings: NearDedupSettings, paths: RulePaths) -> int:
    """Rule code_lsh: candidate pairs from one group of LSH bands over the whole corpus."""
    group = int(paths.wildcards["group"])
    pairs = lsh_candidates(path_list(paths.input["signatures"]), settings, group)
    write_table(paths.output["candidates"], pa.table({"a": pairs[:, 0], "b": pairs[:, 1]}, schema=CANDIDATE_SCHEMA))
    log.info("band group %d: %d candidate pairs", group, len(pairs))
    return len(pairs)


def run_code_near_clusters(settings: NearDedupJob, paths: RulePaths) -> dict:
    """Rule code_near_clusters: verified near-duplicate clusters and their stats (empty when disabled)."""
    if settings.near_dedup.enabled:
        rows, stats = near_clusters(
            path_list(paths.input["signatures"]), path_list(paths.input["candidates"]), settings
        )
    else:
        rows, stats = [], cluster_stats([], settings, 0, Counter(), 0)
    write_table(paths.output["clusters"], pa.Table.from_pylist(rows, schema=CLUSTER_SCHEMA))
    write_json(paths.output["stats"], stats)
    log.info("near duplicates: %d clusters, %d files dropped", stats["clusters"], stats["files_dropped"])
    return stats
