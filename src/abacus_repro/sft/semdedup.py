"""SemDeDup (Abbas et al. 2023, arXiv 2303.09540): remove semantic near-duplicates from the whole SFT set.

Steps: embed every instruction pair (all-MiniLM-L6-v2 by default, the text stage's encoder), cluster the
L2-normalised embeddings with seeded k-means, and inside each cluster compare every pair by cosine similarity;
pairs above ``1 - eps`` are semantic duplicates. Only pairs inside one cluster are compared, which is what makes
the method scale (and what a brute-force check over all same-cluster pairs must reproduce exactly).

Which member of a duplicate set survives is a setting, because the paper and its reference code differ:

- ``rule: paper`` (paper, section 3): "from each group of semantic duplicates within a cluster, we keep the
  [item] with the lowest cosine similarity to the cluster centroid and remove the rest". A group is a connected
  component of the graph whose edges are the same-cluster pairs with similarity > 1 - eps; exactly one member of
  each group is kept.
- ``rule: reference`` (facebookresearch/SemDeDup, semdedup.py with clustering/sort_clusters.py): the members of
  a cluster are ordered by their similarity to the centroid, and an item is removed when its largest similarity
  to any item EARLIER in that order exceeds 1 - eps (the column maximum of the upper-triangular similarity
  matrix), whether or not that earlier item is itself removed. The first item of every group is kept, but so
  is any later one that is only similar to items after it: in a chain a~c, c~b ordered a, b, c the reference
  code keeps a and b, the paper's rule keeps a alone. The reference rule never removes more than the paper's.

``prefer`` sets the order both rules use: ``hard`` (the default of both; lowest similarity to the centroid
first, i.e. the least prototypical item is kept), ``easy`` (the reverse) or ``random`` (seeded shuffle), as the
reference code's ``which_to_keep``. Ties are broken by input position, so the result is deterministic.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import Funnel, doc_meta, read_docs, write_docs, write_json
from ..rules import RulePaths
from ..settings import SemDeDupSettings, Settings
from .nl_data import read_nl_source

log = logging.getLogger(__name__)

RULES = ("reference", "paper")
PREFER = ("hard", "easy", "random")
REASON = "semantic_duplicate"
# A set too small for the configured clusters gets at most one cluster per this many items.
MIN_ITEMS_PER_CLUSTER = 10
# Similarity entries computed at once (rows x columns of one block): bounds memory for large clusters.
BLOCK_ENTRIES = 8_000_000


@dataclass
class Clustering:
    labels: np.ndarray  # int (n,): cluster of each item
    centroids: np.ndarray  # float64 (k, d), unit length


@dataclass
class Decision:
    """The outcome for one eps: which items go, and for each removed item the kept item it duplicates."""

    removed: np.ndarray  # bool (n,)
    kept_for: np.ndarray  # int (n,): index of the kept item a removed item duplicates; -1 for kept items
    similarity: np.ndarray  # float64 (n,): cosine to kept_for; nan for kept items
    extra: dict = field(default_factory=dict)


def normalise(embeddings: np.ndarray) -> np.ndarray:
    """float64 rows of unit length (all-zero rows stay zero): cosine similarity is then a dot product."""
    x = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def kmeans(embeddings: np.ndarray, clusters: int, seed: int, iterations: int) -> Clustering:
    """Seeded spherical k-means: Lloyd's k-means (k-means++ start, scikit-learn) on unit vectors, centroids
    projected back onto the sphere. ``clusters`` is capped by the number of distinct items."""
    x = normalise(embeddings)
    n = len(x)
    if n == 0:
        return Clustering(np.zeros(0, dtype=np.int64), np.zeros((0, x.shape[1] if x.ndim == 2 else 0)))
    distinct = len(np.unique(x, axis=0))
    k = max(1, min(int(clusters), distinct))
    if k == 1:
        return Clustering(np.zeros(n, dtype=np.int64), normalise(x.mean(axis=0, keepdims=True)))
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=k, init="k-means++", n_init=1, max_iter=int(iterations), random_state=int(seed))
    labels = model.fit_predict(x).astype(np.int64)
    return Clustering(labels, normalise(model.cluster_centers_))


def keep_order(embeddings: np.ndarray, clustering: Clustering, prefer: str, seed: int = 0) -> list[np.ndarray]:
    """Per cluster, its members (input indices) in keep order: the first is the one both rules keep first."""
    x = normalise(embeddings)
    if len(x) == 0:
        return []
    centroid_similarity = np.einsum("ij,ij->i", x, clustering.centroids[clustering.labels])
    rng = np.random.Generator(np.random.PCG64(seed))
    orders = []
    for cluster in range(len(clustering.centroids)):
        members = np.flatnonzero(clustering.labels == cluster)
        if prefer == "hard":
            key = centroid_similarity[members]  # least similar to the centroid first
        elif prefer == "easy":
            key = -centroid_similarity[members]
        elif prefer == "random":
            key = rng.permutation(len(members)).astype(np.float64)
        else:
            raise ValueError(f"prefer must be one of {PREFER}, got {prefer!r}")
        orders.append(members[np.lexsort((members, key))])
    return orders


def _blocks(x: np.ndarray, order: np.ndarray):
    """(start, end, S) with S[i, j - start] = cos(order[i], order[j]) for i < end, j in [start, end): every
    same-cluster pair i < j, a block of columns at a time."""
    m = len(order)
    width = max(1, min(m, BLOCK_ENTRIES // max(m, 1)))
    members = x[order]
    for start in range(0, m, width):
        end = min(m, start + width)
        yield start, end, members[:end] @ members[start:end].T


def earlier_max(x: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each position j of ``order``: the largest cosine to a position i < j, and that i (-inf/-1 at j=0)."""
    m = len(order)
    best = np.full(m, -np.inf)
    where = np.full(m, -1, dtype=np.int64)
    for start, end, sims in _blocks(x, order):
        rows = np.arange(end)[:, None]
        cols = np.arange(start, end)[None, :]
        sims = np.where(rows < cols, sims, -np.inf)  # only earlier items count
        if end > 1:
            where[start:end] = np.argmax(sims, axis=0)
            best[start:end] = sims[where[start:end], np.arange(end - start)]
    where[best == -np.inf] = -1
    return best, where


def similar_pairs(x: np.ndarray, order: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions (i, j), i < j, of ``order`` whose cosine exceeds ``threshold``, with that cosine."""
    found_i, found_j, found_s = [], [], []
    for start, end, sims in _blocks(x, order):
        rows, cols = np.nonzero(sims > threshold)
        cols = cols + start
        earlier = rows < cols
        found_i.append(rows[earlier])
        found_j.append(cols[earlier])
        found_s.append(sims[rows[earlier], cols[earlier] - start])
    if not found_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_s)


def _components(m: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(m, m))
    return connected_components(graph, directed=False)[1]


def decide(
    embeddings: np.ndarray,
    clustering: Clustering,
    eps: float,
    rule: str,
    prefer: str,
    seed: int = 0,
    orders: Sequence[np.ndarray] | None = None,
) -> Decision:
    """Which items SemDeDup removes at ``eps`` under ``rule`` (see the module docstring)."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    x = normalise(embeddings)
    n = len(x)
    removed = np.zeros(n, dtype=bool)
    kept_for = np.full(n, -1, dtype=np.int64)
    similarity = np.full(n, np.nan)
    threshold = 1.0 - eps
    for order in orders if orders is not None else keep_order(x, clustering, prefer, seed):
        if len(order) < 2:
            continue
        if rule == "reference":
            best, where = earlier_max(x, order)
            gone = best > threshold
            removed[order[gone]] = True
            kept_for[order[gone]] = order[where[gone]]
            similarity[order[gone]] = best[gone]
        else:
            i, j, _ = similar_pairs(x, order, threshold)
            component = _components(len(order), i, j)
            # The first position of each component in keep order is its survivor.
            first = np.full(component.max() + 1, len(order))
            np.minimum.at(first, component, np.arange(len(order)))
            survivor = first[component]
            gone = survivor != np.arange(len(order))
            removed[order[gone]] = True
            kept_for[order[gone]] = order[survivor[gone]]
            similarity[order[gone]] = np.einsum("ij,ij->i", x[order[gone]], x[order[survivor[gone]]])
    return Decision(removed, kept_for, similarity)


def removed_fractions(
    embeddings: np.ndarray,
    clustering: Clustering,
    eps_list: Iterable[float],
    rule: str,
    prefer: str,
    seed: int = 0,
) -> dict[float, float]:
    """Fraction of all items removed at each eps (the paper's "% of data removed" against eps)."""
    x = normalise(embeddings)
    n = len(x)
    orders = keep_order(x, clustering, prefer, seed)
    eps_list = sorted({float(e) for e in eps_list})
    if n == 0:
        return dict.fromkeys(eps_list, 0.0)
    counts = dict.fromkeys(eps_list, 0)
    for order in orders:
        if len(order) < 2:
            continue
        if rule == "reference":
            best, _ = earlier_max(x, order)
            for eps in eps_list:
                counts[eps] += int((best > 1.0 - eps).sum())
        else:
            # Pairs above the loosest threshold once; each eps keeps its own subset of them.
            i, j, s = similar_pairs(x, order, 1.0 - max(eps_list))
            for eps in eps_list:
                above = s > 1.0 - eps
                components = _components(len(order), i[above], j[above])
                counts[eps] += int(len(order) - (components.max() + 1))
    return {eps: counts[eps] / n for eps in eps_list}


# --- documents -----------------------------------------------------------------------------------------------


def pair_text(instruction: str, response: str) -> str:
    """What is embedded for one pair: the instruction and the response (the encoder reads its first 256
    word pieces, so mostly the instruction and the start of the answer)."""
    return f"{instruction.strip()}\n\n{response.strip()}"


def semdedup_docs(
    docs: Sequence[dict],
    pairs: Sequence[tuple[str, str] | None],
    embed_texts,
    settings: SemDeDupSettings,
    seed: int,
):
    """SemDeDup over documents. ``pairs[i]`` is document i's (instruction, response), or None for a document
    that is no pair (it is passed on untouched: the next step accounts for it). ``embed_texts(texts)`` returns
    one embedding row per text.

    Returns (kept documents in input order, dropped records, stats, fractions by eps for both rules).
    """
    funnel = Funnel("sft_semdedup")
    paired = [i for i, pair in enumerate(pairs) if pair is not None]
    by_rule: dict[str, dict[float, float]] = {}
    removed_index: dict[int, tuple[int, float, int]] = {}
    clusters_used = 0
    sizes: list[int] = []
    if settings.enabled and len(paired) > 1:
        embeddings = normalise(embed_texts([pair_text(*pairs[i]) for i in paired]))
        # Singleton clusters compare nothing: a small set gets fewer clusters than configured.
        clusters = min(settings.clusters, max(1, len(paired) // MIN_ITEMS_PER_CLUSTER))
        clustering = kmeans(embeddings, clusters, seed, settings.kmeans_iterations)
        clusters_used = len(clustering.centroids)
        sizes = np.bincount(clustering.labels, minlength=clusters_used).tolist()
        decision = decide(embeddings, clustering, settings.eps, settings.rule, settings.prefer, seed)
        for position in np.flatnonzero(decision.removed):
            removed_index[paired[position]] = (
                paired[decision.kept_for[position]],
                float(decision.similarity[position]),
                int(clustering.labels[position]),
            )
        eps_grid = sorted(set(settings.eps_list) | {settings.eps})
        for rule in RULES:
            fractions = removed_fractions(embeddings, clustering, eps_grid, rule, settings.prefer, seed)
            by_rule[rule] = {eps: fractions[eps] * len(paired) / len(docs) for eps in eps_grid}
    kept, dropped = [], []
    removed_kinds: dict[str, int] = {}
    for index, doc in enumerate(docs):
        if index not in removed_index:
            funnel.keep()
            kept.append(doc)
            continue
        survivor, cosine, cluster = removed_index[index]
        funnel.drop(REASON)
        meta = doc_meta(doc)
        kind = meta["kind"] if "kind" in meta else doc.get("source", "")  # a pair's kind (code/nl), else its source
        removed_kinds[kind] = removed_kinds.get(kind, 0) + 1
        detail = {"kept": docs[survivor]["id"], "cosine": round(cosine, 6), "cluster": cluster}
        dropped.append({**doc, "reason": REASON, "detail": json.dumps(detail, sort_keys=True)})
    funnel.extra.update(
        enabled=settings.enabled,
        embedding_model=settings.embedding_model,
        eps=settings.eps,
        rule=settings.rule,
        prefer=settings.prefer,
        clusters=clusters_used,
        cluster_sizes=sizes,
        examined=len(paired) if settings.enabled else 0,
        not_pairs=len(docs) - len(paired),
        removed_by_kind=dict(sorted(removed_kinds.items())),
        removed_fraction_by_eps={_eps_key(e): round(f, 6) for e, f in by_rule.get(settings.rule, {}).items()},
        removed_fraction_by_eps_and_rule={
            rule: {_eps_key(e): round(f, 6) for e, f in fractions.items()} for rule, fractions in by_rule.items()
        },
    )
    return kept, dropped, funnel.to_dict()


def split_semdedup(
    code_docs: Sequence[dict], nl_docs: Sequence[dict], embed_texts, settings: SemDeDupSettings, seed: int
):
    """SemDeDup over the whole SFT pool, code and NL pairs together (duplicates across sources go too).

    Returns (kept code documents, kept NL documents, dropped records, stats); each side keeps its input order
    (the code side is in curriculum order)."""
    from .dataset import nl_pair

    docs = list(code_docs) + list(nl_docs)
    pairs = [code_pair(doc) for doc in code_docs] + [nl_pair(doc) for doc in nl_docs]
    kept, dropped, stats = semdedup_docs(docs, pairs, embed_texts, settings, seed)
    kept_ids = {id(doc) for doc in kept}
    code_kept = [doc for doc in code_docs if id(doc) in kept_ids]
    nl_kept = [doc for doc in nl_docs if id(doc) in kept_ids]
    stats.update(code_read=len(code_docs), nl_read=len(nl_docs), code_kept=len(code_kept), nl_kept=len(nl_kept))
    return code_kept, nl_kept, dropped, stats


def code_pair(doc: Mapping) -> tuple[str, str] | None:
    meta = doc_meta(doc)
    instruction, response = meta.get("instruction"), meta.get("response")
    if isinstance(instruction, str) and isinstance(response, str) and instruction.strip() and response.strip():
        return instruction, response
    return None


def sentence_embedder(settings: SemDeDupSettings, threads: int | None):
    """``embed_texts`` for :func:`semdedup_docs`: the text stage's sentence encoder (its loader, strictly
    offline), loaded on first use (a run with nothing to compare never loads it). ``settings.max_tokens`` lowers
    the encoder's sequence length: the cost of embedding is about linear in it."""
    loaded = {}

    def embed_texts(texts: list[str]) -> np.ndarray:
        from ..text.classifier import embed, load_encoder

        if "encoder" not in loaded:
            encoder = load_encoder(settings.embedding_model, threads, settings.device)
            # max_tokens is at least 8 (its schema), so it always applies.
            encoder.max_seq_length = min(settings.max_tokens, encoder.max_seq_length or settings.max_tokens)
            loaded["encoder"] = encoder
        # ~4 characters per word piece is generous for prose and code alike; the encoder truncates anyway.
        max_chars = 4 * (loaded["encoder"].max_seq_length or 512)
        return embed(loaded["encoder"], list(texts), batch_size=settings.batch_size, max_chars=max_chars)

    return embed_texts


def _eps_key(eps: float) -> str:
    return f"{eps:g}"


def plot_removed_fractions(stats: Mapping, path: str | Path) -> None:
    """Fraction of the SFT set removed against eps, one line per keep rule, the applied eps marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    curves = stats.get("removed_fraction_by_eps_and_rule") or {}
    for rule, fractions in sorted(curves.items()):
        eps = sorted(fractions, key=float)
        style = "-o" if rule == stats.get("rule") else "--x"
        axis.plot([float(e) for e in eps], [100 * fractions[e] for e in eps], style, label=f"{rule} rule")
    if stats.get("eps") is not None and curves:
        axis.axvline(float(stats["eps"]), color="grey", linestyle=":", label=f"applied eps = {stats['eps']:g}")
    axis.set_xlabel("eps (pairs with cosine > 1 - eps are duplicates)")
    axis.set_ylabel("% of SFT pairs removed")
    title = f"SemDeDup: {stats.get('read', 0)} pairs, {stats.get('clusters', 0)} clusters"
    if not curves:
        title += " (not run)"
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3)
    if curves:
        axis.legend(fontsize=8)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # No timestamp in the file: same data, same bytes.
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)


class SemDeDupJob(Settings):
    """What rule sft_semdedup reads: the seed and ``sft.semdedup``."""

    seed: int
    semdedup: SemDeDupSettings


def run_sft_semdedup(settings: SemDeDupJob, paths: RulePaths) -> dict:
    """Rule sft_semdedup: SemDeDup over the whole SFT pool (verified code pairs and NL pairs together)."""
    semdedup = settings.semdedup
    code, nl, dropped, stats = split_semdedup(
        read_docs(paths.input["code"]),
        read_nl_source(paths.input["nl"]),
        sentence_embedder(semdedup, paths.threads),
        semdedup,
        settings.seed,
    )
    log.info("semdedup (eps %s, %s rule): kept %d of %d (%s)", semdedup.eps, semdedup.rule, stats["kept"],
             stats["read"], stats["dropped"])  # fmt: skip
    write_docs(paths.output["code"], code)
    write_docs(paths.output["nl"], nl)
    write_docs(paths.output["dropped"], dropped, dropped=True)
    write_json(paths.output["stats"], stats)
    plot_removed_fractions(stats, paths.output["plot"])
    return stats
