"""Batch prediction throughput: a plain PyTorch loop vs relext_ray.predict with 1 and 2 replicas.

    python benchmarks/predict_throughput.py --model out/bench/conll04_model --sentences 60000

Same model, same synthetic corpus (written once, from the model's vocabulary and the real
corpus's sentence shapes), same output (Parquet). Each way runs in a fresh process; its wall
time is measured from the call (Ray already started, as on a running cluster), and its peak
memory is the largest summed RSS of its whole process tree (driver, Ray's daemons and workers).

* plain: one process, one torch thread (the CPU one replica gets): read the JSONL files,
  featurise and score 1,000 sentences at a time, write Parquet. What a user would write
  with this project's functions and no Ray. With ``--plain per-pair`` (the default) it scores
  every pair on its own, as per-pair toolkits do (the model's reference path); with
  ``--plain factored`` it encodes each sentence once, as ``relext_ray.predict`` does.
* plain-x2: two such processes at once, each on half of the files: what two cores of this
  machine give two independent processes, without Ray (the ceiling for ray-2 / ray-1).
* ray-1 / ray-2: ``relext_ray.predict`` with 1 or 2 replicas of 1 CPU each on a local Ray
  of 2 CPUs.

Besides end-to-end rates, the Ray ways report their scoring rate (first unit started to last
unit finished, from the job's own accounting): the rate once replicas have started.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


WAYS = ("plain", "plain-x2", "ray-1", "ray-2")


def tree_rss(pid: int) -> int:
    """Summed resident memory (bytes) of ``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                parts = fh.read().rsplit(")", 1)[1].split()
            ppid, pages = int(parts[1]), int(parts[21])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack.extend(children.get(p, []))
    return total


def plain(model: Path, corpus: Path, out: Path, part: str = "0/1",
          path: str = "per-pair") -> dict:
    """``part`` ``k/n``: only every n-th file from the k-th (for two processes at once);
    ``path``: ``per-pair`` (each pair encoded on its own) or ``factored``."""
    import pyarrow.parquet as pq
    import torch

    from relext_ray.corpus.jsonl import read_jsonl
    from relext_ray.prediction.predictor import Predictor

    torch.set_num_threads(1)
    k, n = map(int, part.split("/"))
    t0 = time.perf_counter()
    predictor = Predictor.load(model)
    predictor.checkpoint.model.reference = path == "per-pair"
    writer, pairs = None, 0
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(corpus.glob("*.jsonl"))[k::n]:
        sentences = read_jsonl(path).sentences
        for i in range(0, len(sentences), 1000):
            table = predictor.score(sentences[i:i + 1000]).table
            if writer is None:
                writer = pq.ParquetWriter(out / f"part-{k:05d}.parquet", table.schema)
            writer.write_table(table)
            pairs += table.num_rows
    if writer is not None:
        writer.close()
    return {"pairs": pairs, "seconds": time.perf_counter() - t0}


def with_ray(model: Path, corpus: Path, out: Path, replicas: int,
             chunk_size: int | None) -> dict:
    from relext_ray.cluster.connect import init_ray
    from relext_ray.tracking.runs import predict_tracked as predict

    init_ray(num_cpus=2)
    t0 = time.perf_counter()
    # No record-length limit: the plain loop scores every record, so must the job.
    s = predict(str(corpus), str(model), out, concurrency=replicas, overwrite=True,
                progress=False, track=False, max_tokens=0, chunk_size=chunk_size)
    return {"pairs": s["pairs_scored"], "seconds": time.perf_counter() - t0,
            "scoring_seconds": s["scoring_seconds"]}


def run_one(way: str, model: Path, corpus: Path, out: Path, plain_path: str,
            chunk_size: int | None) -> dict:
    """Run one way in fresh processes (two for plain-x2) while sampling their memory."""
    parts = ["0/2", "1/2"] if way == "plain-x2" else ["0/1"]
    child = "plain" if way.startswith("plain") else way
    procs = [subprocess.Popen([sys.executable, __file__, "--child", child, "--part", part,
                               "--model", str(model), "--corpus", str(corpus), "--out", str(out),
                               "--plain", plain_path,
                               *(["--chunk-size", str(chunk_size)] if chunk_size else [])],
                              stdout=subprocess.PIPE, text=True) for part in parts]
    peak = 0

    def sample() -> None:
        nonlocal peak
        while any(p.poll() is None for p in procs):
            peak = max(peak, sum(tree_rss(p.pid) for p in procs))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    outputs = [p.communicate()[0] for p in procs]
    sampler.join()
    if any(p.returncode != 0 for p in procs):
        raise SystemExit(f"{way} failed ({[p.returncode for p in procs]})")
    results = [json.loads(o.strip().splitlines()[-1]) for o in outputs]
    result = {"pairs": sum(r["pairs"] for r in results),
              # Two processes started together: the way took as long as its slower half.
              "seconds": max(r["seconds"] for r in results),
              "peak_rss_mb": peak / 2**20}
    if "scoring_seconds" in results[0]:
        result["scoring_seconds"] = results[0]["scoring_seconds"]
    return result


def write_real(model: Path, like: str | None, split: str, n: int, out: Path) -> None:
    """The first ``n`` sentences of a real corpus's split as canonical JSONL, in four files."""
    from relext_ray.corpus.jsonl import write_jsonl
    from relext_ray.corpus.sources import Unit, discover, read_unit
    from relext_ray.data.synth import Source

    source = Source.load(str(model))
    sentences = []
    for path in discover(source.corpus, like or source.data_dir)[split]:
        sentences += read_unit(Unit(split, source.corpus, str(path))).sentences
        if len(sentences) >= n:
            break
    sentences = sentences[:n]
    out.mkdir(parents=True, exist_ok=True)
    step = -(-len(sentences) // 4)
    for k in range(4):
        write_jsonl(sentences[k * step:(k + 1) * step], out / f"real-{k:05d}.jsonl")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="checkpoint directory")
    p.add_argument("--sentences", type=int, default=60000)
    p.add_argument("--corpus", type=Path, default=Path("out/bench/synth"))
    p.add_argument("--out", type=Path, default=Path("out/bench/predictions"))
    p.add_argument("--like", default=None, help="real corpus for sentence shapes")
    p.add_argument("--ways", nargs="+", default=list(WAYS), choices=WAYS,
                   help="which ways to run (default: all four)")
    p.add_argument("--real", default=None, metavar="SPLIT",
                   help="score the first --sentences sentences of this split of the real corpus "
                        "(--like, else the model's) instead of a synthetic corpus")
    p.add_argument("--plain", choices=("per-pair", "factored"), default="per-pair",
                   help="how the plain loop encodes (default: each pair on its own)")
    p.add_argument("--chunk-size", type=int, default=None,
                   help="records per unit of work of the Ray ways (default: predict's own)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--part", default="0/1", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.child:
        if args.child == "plain":
            r = plain(args.model, args.corpus, args.out, args.part, args.plain)
        else:
            r = with_ray(args.model, args.corpus, args.out, int(args.child.split("-")[1]),
                         args.chunk_size)
        print(json.dumps(r))
        return

    from relext_ray.data.synth import Shape, Source, write

    if not any(args.corpus.glob("*.jsonl")) and args.real:
        write_real(args.model, args.like, args.real, args.sentences, args.corpus)
    if not any(args.corpus.glob("*.jsonl")):
        source = Source.load(str(args.model))
        # at least four files, so that two processes (plain-x2) share them evenly
        write(args.sentences, args.corpus, source,
              Shape.of_corpus(source.corpus, args.like or source.data_dir),
              per_file=min(100_000, -(-args.sentences // 4)))
    if len(list(args.corpus.glob("*.jsonl"))) < 2:
        raise SystemExit(f"{args.corpus}: plain-x2 needs at least two .jsonl files")
    results = {}
    for way in args.ways:
        results[way] = run_one(way, args.model, args.corpus, args.out / way, args.plain,
                               args.chunk_size)
        r = results[way]
        print(f"{way}: {r['pairs']:,} pairs in {r['seconds']:.1f} s "
              f"({r['pairs'] / r['seconds']:,.0f} pairs/s), peak {r['peak_rss_mb']:,.0f} MiB",
              flush=True)
    pairs = {r["pairs"] for r in results.values()}
    assert len(pairs) == 1, f"the ways scored different numbers of pairs: {results}"
    rate = {w: r["pairs"] / r["seconds"] for w, r in results.items()}
    scoring = {w: r["pairs"] / r["scoring_seconds"] for w, r in results.items()
               if r.get("scoring_seconds")}
    print("\n| way | pairs | seconds | pairs/s | scoring pairs/s | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|")
    for w, r in results.items():
        sc = f"{scoring[w]:,.0f}" if w in scoring else "-"
        print(f"| {w} | {r['pairs']:,} | {r['seconds']:.1f} | {rate[w]:,.0f} | {sc} | "
              f"{r['peak_rss_mb']:,.0f} |")
    print(f"\nplain loop: {args.plain}")
    ratios = []
    if {"ray-1", "plain"} <= set(rate):
        ratios.append(f"ray-1 / plain = {rate['ray-1'] / rate['plain']:.2f}")
    if {"ray-1", "ray-2"} <= set(rate):
        ratios.append(f"ray-2 / ray-1 = {rate['ray-2'] / rate['ray-1']:.2f} "
                      f"(scoring {scoring['ray-2'] / scoring['ray-1']:.2f})")
    if {"plain", "plain-x2"} <= set(rate):
        ratios.append(f"plain-x2 / plain = {rate['plain-x2'] / rate['plain']:.2f} "
                      "(this machine's ceiling)")
    print("   ".join(ratios))


if __name__ == "__main__":
    main()
