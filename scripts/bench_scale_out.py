"""Rows per second of the same classification four ways, in one run on the same data: the
`xinsheng predict` CLI (one process, all cores), the Python package in-process, and
`xinsheng.ray_predict`'s pipeline on a local Ray cluster with 1 and 2 actors (one core
thread each), plus Ray's overhead per batch. Run by scripts/bench-scale-out; prints a
Markdown table and one JSON line.

    python scripts/bench_scale_out.py XINSHENG_BIN [ROWS]
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
FILES = 8
REPEATS = 3


def reviews(rows):
    lines = (ROOT / "data" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    texts = [t for t in (line.split("\t", 1)[1].strip() for line in lines) if t]
    return [texts[i % len(texts)] for i in range(rows)]


def median_seconds(run):
    """The median wall-clock seconds of REPEATS runs of `run()`."""
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main():
    binary, rows = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 40_000
    texts = reviews(rows)
    tmp = Path(tempfile.mkdtemp(prefix="xinsheng-scale-"))
    (tmp / "reviews.txt").write_text("\n".join(texts), encoding="utf-8")
    (tmp / "parquet").mkdir()
    size = rows // FILES
    for i in range(FILES):
        part = pd.DataFrame({"id": range(i * size, (i + 1) * size), "text": texts[i * size:(i + 1) * size]})
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), tmp / "parquet" / f"part-{i}.parquet")
    results = {"rows": rows, "mean_chars": round(sum(map(len, texts)) / rows, 1), "cores": os.cpu_count()}

    cli = lambda: subprocess.run([binary, "predict", "--input", str(tmp / "reviews.txt")], check=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    results["cli"] = rows / median_seconds(cli)

    import xinsheng

    clf = xinsheng.Classifier.load()
    results["python"] = rows / median_seconds(lambda: clf.predict_proba(texts))
    # Cores kept busy: process CPU time over wall time for 10,000 reviews (the GIL is released).
    wall, cpu = time.perf_counter(), time.process_time()
    clf.predict_proba(texts[:10_000])
    results["python_cores_busy"] = (time.process_time() - cpu) / (time.perf_counter() - wall)
    del clf

    import ray

    from xinsheng.ray_predict import IO_TASK, actor_plan, classify_dataset, read_dataset

    started = time.perf_counter()
    ray.init(logging_level="error", log_to_driver=False, include_dashboard=False)
    results["ray_start_s"] = time.perf_counter() - started
    ray.data.DataContext.get_current().enable_progress_bars = False
    paths = sorted(str(p) for p in (tmp / "parquet").glob("*.parquet"))
    runs = 0

    def job(actors, batch):
        nonlocal runs
        runs += 1
        n, reserve = actor_plan(ray.cluster_resources()["CPU"], actors, 1.0)
        ds = classify_dataset(read_dataset(paths, "parquet"), num_actors=n, batch_size=batch, reserve_cpus=reserve)
        ds.write_parquet(str(tmp / f"out-{runs}"), ray_remote_args=IO_TASK)

    for actors in (1, 2):
        results[f"ray_{actors}"] = rows / median_seconds(lambda: job(actors, 1024))
    # Overhead per batch: the same rows in batches of 256 and of 4,096 with one actor;
    # t = rows · per_row + batches · per_batch.
    small, large = median_seconds(lambda: job(1, 256)), median_seconds(lambda: job(1, 4096))
    results["ray_batch_overhead_ms"] = 1e3 * (small - large) / (rows / 256 - rows / 4096)
    ray.shutdown()

    print(f"| measure | rows/s |\n|---|---|")
    print(f"| `xinsheng predict` (CLI, one process, {results['cores']} cores) | {results['cli']:,.0f} |")
    print(f"| Python `predict_proba`, in-process ({results['python_cores_busy']:.2f} cores busy) | "
          f"{results['python']:,.0f} |")
    print(f"| `ray_predict`, 1 actor (1 core thread) | {results['ray_1']:,.0f} |")
    print(f"| `ray_predict`, 2 actors (1 core thread each) | {results['ray_2']:,.0f} |")
    print(f"\nRay start {results['ray_start_s']:.1f} s (not in the rates); overhead per batch "
          f"{results['ray_batch_overhead_ms']:.1f} ms")
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in results.items()}))


if __name__ == "__main__":
    main()
