"""Benchmark: StackExchange ingest speed on the real dumps, and memory against the dump's size.

Speed (same process, same dumps, ratios): the streaming row parse (``iter_rows``: iterparse, rows cleared)
against a full DOM parse (``ElementTree.parse``) as the baseline, and the whole ingest (parse, SQLite thread
store, HTML -> Markdown, documents) from the plain ``Posts.xml`` against the same dump inside a site ``.7z``.

Memory (``--memory``): synthetic dumps of several sizes (default 20, 100 and 400 MB, seeded, written to a
temporary directory), each step run in a fresh subprocess that reports the peak RSS it added on top of its
imports: constant for a flat step, proportional to the file for one that is not (the DOM baseline).

    .venv/bin/python benchmarks/bench_text_ingest.py [--shared-data ../shared/data] [--memory] [--sizes-mb 20 200]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import quoteattr

from abacus_repro.ingest.stackexchange import ingest_stackexchange_to_files, iter_rows
from abacus_repro.settings import StackExchangeSettings

REPO = Path(__file__).resolve().parents[1]
WORDS = [
    "python",
    "list",
    "dict",
    "function",
    "return",
    "value",
    "error",
    "import",
    "module",
    "class",
    "object",
    "string",
    "file",
    "path",
    "loop",
    "index",
    "numpy",
    "pandas",
    "array",
    "frame",
    "column",
    "thread",
    "process",
    "memory",
    "speed",
    "test",
    "case",
    "install",
    "version",
    "package",
    "data",
    "the",
    "a",
    "of",
    "to",
    "is",
    "in",
    "it",
    "you",
    "that",
    "this",
    "with",
    "for",
    "not",
    "but",
    "can",
    "use",
    "when",
    "how",
    "why",
    "what",
]


def rss_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak since the last reset) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets VmHWM, so the peak measured next is the step's own."""
    Path("/proc/self/clear_refs").write_text("5")


def make_7z(xml: Path, archive: Path) -> Path:
    import py7zr

    with py7zr.SevenZipFile(archive, "w", filters=[{"id": py7zr.FILTER_LZMA2, "preset": 1}]) as z:
        z.writestr(b'<?xml version="1.0" encoding="utf-8"?>\n<users />\n', "Users.xml")
        z.write(xml, "Posts.xml")
    return archive


def _body(rng: random.Random) -> str:
    prose = " ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 160)))
    html = f"<p>{prose}</p>\n"
    if rng.random() < 0.6:
        code = "\n".join(f"    x{i} = f({i}) + {rng.randint(0, 99)}" for i in range(rng.randint(2, 15)))
        html += f'<pre class="lang-py"><code>def f(a):\n{code}\n    return a &lt; 3\n</code></pre>\n'
    return html


def synthetic_dump(path: Path, size_mb: float, seed: int = 0) -> dict:
    """A Posts.xml of about ``size_mb`` MB: questions, 0-4 answers each (some arriving much later), seeded."""
    rng = random.Random(seed)
    target = int(size_mb * 1_000_000)
    post_id, questions, answers = 0, 0, 0
    late: list[str] = []  # answers written far after their question, as in real dumps
    with path.open("w", encoding="utf-8") as out:
        out.write('\ufeff<?xml version="1.0" encoding="utf-8"?>\n<posts>\n')
        while out.tell() < target:
            post_id += 1
            qid = post_id
            n_answers = rng.choice([0, 1, 1, 2, 2, 3, 4])
            accepted = qid + 1 if n_answers and rng.random() < 0.5 else None
            attrs = {
                "Id": qid,
                "PostTypeId": 1,
                "CreationDate": "2020-01-01T00:00:00.000",
                "Score": rng.randint(-2, 40),
                "ViewCount": rng.randint(1, 9999),
                "Body": _body(rng),
                "Title": " ".join(rng.choice(WORDS) for _ in range(8)),
                "Tags": "|python|" + rng.choice(WORDS) + "|",
                "AnswerCount": n_answers,
                "CommentCount": 0,
            }
            if accepted:
                attrs["AcceptedAnswerId"] = accepted
            out.write(_row(attrs))
            questions += 1
            for _ in range(n_answers):
                post_id += 1
                row = _row(
                    {"Id": post_id, "PostTypeId": 2, "ParentId": qid, "Score": rng.randint(-1, 50), "Body": _body(rng)}
                )
                answers += 1
                if rng.random() < 0.1:
                    late.append(row)
                else:
                    out.write(row)
            if len(late) > 500:
                out.writelines(late)
                late = []
        out.writelines(late)
        out.write("</posts>\n")
    return {"path": str(path), "mb": round(path.stat().st_size / 1e6, 1), "questions": questions, "answers": answers}


def _row(attrs: dict) -> str:
    return "  <row " + " ".join(f"{k}={quoteattr(str(v))}" for k, v in attrs.items()) + " />\n"


def run_step(step: str, path: str) -> dict:
    """One measured step, in this (fresh) process; ``growth_mb`` is the peak RSS the step added to the imports."""
    reset_peak_rss()
    before = rss_mb("VmRSS")
    start = time.perf_counter()
    if step == "dom":
        tree = ET.parse(path)
        rows = sum(1 for _ in tree.getroot().iter("row"))
    elif step == "iterparse":
        rows = sum(1 for _ in iter_rows(path))
    elif step == "ingest":
        with tempfile.TemporaryDirectory() as out:
            settings = StackExchangeSettings(dumps=[str(path)])
            stats = ingest_stackexchange_to_files(settings, Path(out) / "qa.parquet", Path(out) / "dropped.parquet")
        rows = next(iter(stats["sites"].values()))["rows"]["read"]
    else:
        raise SystemExit(f"unknown step {step}")
    seconds = round(time.perf_counter() - start, 3)
    peak = rss_mb("VmHWM")
    return {
        "step": step,
        "rows": rows,
        "seconds": seconds,
        "peak_rss_mb": round(peak),
        "growth_mb": round(peak - before),
    }


def in_subprocess(step: str, path: Path) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", step, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def speed(shared: Path) -> dict:
    dumps = sorted((shared / "stackexchange").glob("*.Posts.xml"))
    if not dumps:
        raise SystemExit(f"no *.Posts.xml under {shared / 'stackexchange'} (set --shared-data)")
    out: dict = {"dumps": [p.name for p in dumps]}
    with tempfile.TemporaryDirectory() as tmp:
        archives = [make_7z(p, Path(tmp) / (p.name.removesuffix(".Posts.xml") + ".7z")) for p in dumps]
        timings = {}
        for name, fn in {
            "dom": lambda: [run_step("dom", str(p)) for p in dumps],
            "iterparse": lambda: [run_step("iterparse", str(p)) for p in dumps],
            "ingest_xml": lambda: [run_step("ingest", str(p)) for p in dumps],
            "ingest_7z": lambda: [run_step("ingest", str(a)) for a in archives],
        }.items():
            best = None
            for _ in range(3):  # best of three: the dumps are small, the first run warms the page cache
                runs = fn()
                seconds = sum(r["seconds"] for r in runs)
                best = seconds if best is None else min(best, seconds)
            rows = sum(r["rows"] for r in runs)
            timings[name] = {"rows": rows, "seconds": round(best, 3), "posts_per_s": round(rows / best)}
    out["timings"] = timings
    out["iterparse_over_dom_speed"] = round(timings["dom"]["seconds"] / timings["iterparse"]["seconds"], 2)
    out["ingest_7z_over_xml_time"] = round(timings["ingest_7z"]["seconds"] / timings["ingest_xml"]["seconds"], 2)
    return out


def memory(sizes_mb: list[float]) -> dict:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes_mb:
            xml = Path(tmp) / f"synthetic{int(size)}.stackexchange.com.Posts.xml"
            info = synthetic_dump(xml, size)
            archive = make_7z(xml, Path(tmp) / f"synthetic{int(size)}.stackexchange.com.7z")
            info["7z_mb"] = round(archive.stat().st_size / 1e6, 1)
            for step, path in (("iterparse", xml), ("ingest", xml), ("ingest", archive), ("dom", xml)):
                run = in_subprocess(step, path)
                run["input"] = "7z" if path == archive else "xml"
                results.append(info | run)
            xml.unlink()
            archive.unlink()
    growth: dict[str, dict[str, int]] = {}
    for run in results:
        key = f"{run['step']}_{run['input']}"
        growth.setdefault(key, {})[f"{run['mb']:g}MB"] = run["growth_mb"]
    return {
        "runs": results,
        # Peak RSS each step added (imports excluded), per dump size: flat for the streaming steps.
        "rss_growth_mb": growth,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared-data", type=Path, default=Path(os.environ.get("ABACUS_SHARED_DATA", REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--memory", action="store_true", help="also measure peak RSS on synthetic dumps")
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[20, 100, 400])
    parser.add_argument("--child", nargs=2, metavar=("STEP", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_step(*args.child)))
        return
    result = {"benchmark": "text_ingest", "speed": speed(args.shared_data)}
    if args.memory:
        result["memory"] = memory(args.sizes_mb)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
