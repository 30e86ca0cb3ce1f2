# Code cleaning (recipe steps 1-4), one job per repository shard; near-duplicate removal over the whole corpus
# (MinHash signatures per shard, LSH per group of bands, clusters in one job); then per shard the near duplicates
# are dropped and the kept files ordered; the funnel last.


rule code_clean:
    input:
        shard=from_run("results/ingest/code/shard-{shard}.parquet"),
    output:
        cleaned="results/{exp}code/shards/{shard}/cleaned.parquet",
        dropped="results/{exp}code/shards/{shard}/dropped.parquet",
        stats="results/{exp}code/shards/{shard}/clean_stats.json",
    log:
        "logs/{exp}code/clean_{shard}.log",
    benchmark:
        "benchmarks/rules/{exp}code_clean_{shard}.tsv"
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("code_clean")
    resources:
        **get_rule_resources("code_clean"),
    params:
        code=get_code_fingerprint("code_clean"),
        settings=run_settings(get_code_clean_settings),
    script:
        "../scripts/code_clean.py"


rule code_minhash:
    input:
        cleaned=from_run("results/code/shards/{shard}/cleaned.parquet"),
    output:
        signatures="results/{exp}code/near_dedup/signatures/{shard}.parquet",
    log:
        "logs/{exp}code/minhash_{shard}.log",
    benchmark:
        "benchmarks/rules/{exp}code_minhash_{shard}.tsv"
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("code_minhash")
    resources:
        **get_rule_resources("code_minhash"),
    params:
        code=get_code_fingerprint("code_minhash"),
        settings=get_settings("seed", "code.near_dedup"),
    script:
        "../scripts/code_minhash.py"


rule code_lsh:
    input:
        signatures=from_run(expand("results/code/near_dedup/signatures/{shard}.parquet", shard=SHARDS)),
    output:
        candidates="results/{exp}code/near_dedup/candidates/{group}.parquet",
    log:
        "logs/{exp}code/lsh_{group}.log",
    benchmark:
        "benchmarks/rules/{exp}code_lsh_{group}.tsv"
    wildcard_constraints:
        group=r"\d+",
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("code_lsh")
    resources:
        **get_rule_resources("code_lsh"),
    params:
        code=get_code_fingerprint("code_lsh"),
        settings=get_settings("code.near_dedup"),
    script:
        "../scripts/code_lsh.py"


rule code_near_clusters:
    input:
        unpack(from_run(get_near_dedup_inputs)),
    output:
        clusters="results/{exp}code/near_dedup/clusters.parquet",
        stats="results/{exp}code/near_dedup/stats.json",
    log:
        "logs/{exp}code/near_clusters.log",
    benchmark:
        "benchmarks/rules/{exp}code_near_clusters.tsv"
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("code_near_clusters")
    resources:
        **get_rule_resources("code_near_clusters"),
    params:
        code=get_code_fingerprint("code_near_clusters"),
        settings=get_settings("seed", "code.near_dedup"),
    script:
        "../scripts/code_near_clusters.py"


rule code_finish:
    input:
        cleaned=from_run("results/code/shards/{shard}/cleaned.parquet"),
        stats=from_run("results/code/shards/{shard}/clean_stats.json"),
        clusters=from_run("results/code/near_dedup/clusters.parquet"),
    output:
        kept="results/{exp}code/shards/{shard}/kept.parquet",
        near_dropped="results/{exp}code/shards/{shard}/near_dropped.parquet",
        stats="results/{exp}code/shards/{shard}/stats.json",
    log:
        "logs/{exp}code/finish_{shard}.log",
    benchmark:
        "benchmarks/rules/{exp}code_finish_{shard}.tsv"
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("code_finish")
    resources:
        **get_rule_resources("code_finish"),
    params:
        code=get_code_fingerprint("code_finish"),
        settings=get_settings("code"),
    script:
        "../scripts/code_finish.py"


rule code_funnel:
    input:
        stats=from_run(expand("results/code/shards/{shard}/stats.json", shard=SHARDS)),
        near_dedup=from_run("results/code/near_dedup/stats.json"),
    output:
        stats="results/{exp}code/stats.json",
        table=report(
            "results/{exp}code/funnel.md",
            caption="../report/code_funnel.rst",
            category="Data",
        ),
        plot=report(
            "results/{exp}code/funnel.png",
            caption="../report/code_funnel.rst",
            category="Data",
        ),
        clusters_plot=report(
            "results/{exp}code/near_dedup/cluster_sizes.png",
            caption="../report/code_near_dedup.rst",
            category="Data",
        ),
    log:
        "logs/{exp}code/funnel.log",
    benchmark:
        "benchmarks/rules/{exp}code_funnel.tsv"
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("code_funnel")
    resources:
        **get_rule_resources("code_funnel"),
    params:
        code=get_code_fingerprint("code_funnel"),
        settings=get_settings(),
    script:
        "../scripts/code_funnel.py"
