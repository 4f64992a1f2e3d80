"""Distributed batch classification on Ray Data.

    python -m xinsheng.ray_predict --input 'reviews/*.parquet' --output out/ \\
        [--text-column text] [--num-actors N] [--batch-size B] [--model PATH] [--address ray://...]

reads Parquet, JSONL or CSV files with Ray Data, classifies them with ``map_batches`` over a
pool of actors (each loads the model once, from bytes the driver ships through Ray's object
store, so the model file need only be readable where the driver runs), and writes Parquet:
the original columns, then ``label``, ``score``, one ``p_<label>`` column per label and
``error``. A row whose text is missing (null), not text, or not valid UTF-8 gets its reason in
``error`` (and nulls in the prediction columns); the other rows are classified as usual, so a
bad row neither stops the job nor disappears from the output.

Locally it starts its own Ray instance (or joins the one ``ray start`` started on this machine);
``--address`` (or ``RAY_ADDRESS``) joins a cluster, where every node needs this package
installed (``pip install xinsheng[ray]``, or a ``runtime_env``).
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import sys
import time
from typing import Any, Optional, Sequence

# The [ray] extra's data libraries; Ray itself is imported where a job starts, so that --help
# and bad arguments answer without starting it.
import numpy as np
import pandas as pd
import pyarrow as pa

# Results go in these columns; an input column with one of these names must be renamed with
# --prefix rather than silently overwritten.
LABEL, SCORE, ERROR = "label", "score", "error"
FORMATS = {".parquet": "parquet", ".jsonl": "json", ".csv": "csv"}


def text_or_error(value: Any) -> tuple[Optional[str], Optional[str]]:
    """The review text of one cell, or why it has none (``(None, reason)``)."""
    if isinstance(value, str):
        return value, None
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8"), None
        except UnicodeDecodeError as e:
            return None, f"text is not valid UTF-8 (byte {e.start}: {raw[e.start:e.start + 4]!r})"
    if is_missing(value):
        return None, "text is missing (null)"
    return None, f"text is a {type(value).__name__}, not a string: {value!r:.80}"


def is_missing(value: Any) -> bool:
    """None, NaN or pandas' NA: how the readers hand over a null cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return value is pd.NA or value is pd.NaT


def output_columns(labels: Sequence[str], prefix: str = "") -> list[str]:
    """Names of the columns classification adds, in order."""
    return [prefix + LABEL, prefix + SCORE] + [f"{prefix}p_{label}" for label in labels] + [prefix + ERROR]


def classify_frame(classifier, frame, text_column: str, prefix: str = ""):
    """``frame`` (a pandas DataFrame) with the prediction columns added (see the module
    docstring). Rows keep their order; every row gets exactly one output row."""

    if text_column not in frame.columns:
        raise ValueError(f"no column {text_column!r} (columns: {', '.join(map(str, frame.columns))}); "
                         "name the text column with --text-column")
    labels = classifier.labels
    texts, errors, good = [], [], []
    for i, value in enumerate(frame[text_column].tolist()):
        text, error = text_or_error(value)
        errors.append(error)
        if error is None:
            texts.append(text)
            good.append(i)
    n = len(frame)
    probs = np.full((n, len(labels)), np.nan, dtype=np.float32)
    if good:
        try:
            probs[good] = classifier.predict_proba(texts)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # noqa: BLE001 - a panic in one row must not cost the batch
            # Classify row by row so that only the rows that fail carry the error.
            for row, text in zip(good, texts):
                try:
                    probs[row] = classifier.predict_proba([text])[0]
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException as e:  # noqa: BLE001
                    errors[row] = f"classification failed: {e}"
    # Typed columns (Arrow strings even when every value is null), so that every output file
    # of a job has the same schema.
    text_type = pd.ArrowDtype(pa.string())
    out = frame.copy()
    valid = ~np.isnan(probs).any(axis=1)
    best = probs.argmax(axis=1) if len(labels) else np.zeros(n, dtype=int)
    names = output_columns(labels, prefix)
    out[names[0]] = pd.array([labels[b] if ok else None for b, ok in zip(best, valid)], dtype=text_type)
    out[names[1]] = np.where(valid, probs.max(axis=1, initial=0.0), np.nan)
    for j, name in enumerate(names[2:-1]):
        out[name] = probs[:, j]
    out[names[-1]] = pd.array(errors, dtype=text_type)
    return out


class Predictor:
    """The Ray Data actor: loads the model once, then classifies batches (pandas)."""

    def __init__(self, model_bytes: Optional[bytes], model_name: str, text_column: str, prefix: str):
        import xinsheng

        self.classifier = (xinsheng.Classifier.from_bytes(model_bytes, model_name)
                           if model_bytes is not None else xinsheng.Classifier.load())
        self.text_column = text_column
        self.prefix = prefix

    def __call__(self, batch):
        return classify_frame(self.classifier, batch, self.text_column, self.prefix)


def expand_inputs(patterns: Sequence[str]) -> list[str]:
    """Local globs expanded (sorted); URIs (``s3://…``) passed through. No match is an error."""
    paths: list[str] = []
    for pattern in patterns:
        if "://" in pattern:
            paths.append(pattern)
            continue
        matches = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
        if os.path.isdir(pattern):
            matches = sorted(p for p in glob.glob(os.path.join(pattern, "**", "*"), recursive=True)
                             if os.path.splitext(p)[1].lower() in FORMATS)
        if not matches:
            raise FileNotFoundError(f"--input {pattern!r}: no file matches")
        paths.extend(matches)
    return paths


def input_format(paths: Sequence[str], given: Optional[str]) -> str:
    if given:
        return given
    kinds = {FORMATS.get(os.path.splitext(p)[1].lower()) for p in paths}
    if None in kinds or len(kinds) != 1:
        raise ValueError("--input: give files of one format, named .parquet, .jsonl or .csv "
                         "(or name the format with --format)")
    return kinds.pop()


# Reading and writing files is I/O: their tasks reserve a fraction of a CPU, so that they run
# beside actors that hold the cluster's other CPUs (see actor_plan).
IO_TASK = {"num_cpus": 0.1}


def read_dataset(paths: Sequence[str], fmt: str):
    import ray.data

    readers = {"parquet": ray.data.read_parquet, "csv": ray.data.read_csv,
               "json": lambda p, **kw: ray.data.read_json(p, lines=True, **kw)}
    return readers[fmt](list(paths), **IO_TASK)


def classify_dataset(ds, *, model: Optional[str] = None, text_column: str = "text", num_actors: int = 1,
                     batch_size: int = 1024, cpus_per_actor: float = 1.0, reserve_cpus: Optional[float] = None,
                     prefix: str = ""):
    """``ds`` (a Ray Dataset) with the prediction columns added, classified by ``num_actors``
    actors each holding the model (``model``: a bundle path on the driver; ``None`` for the
    packaged default) and running ``cpus_per_actor`` threads. ``reserve_cpus`` is what each
    actor reserves from Ray's scheduler (default ``cpus_per_actor``); less lets the actors share
    CPUs with Ray Data's own tasks on a small cluster. Lazy, as Ray Datasets are: nothing runs
    until it is written or read."""
    from ray.data import ActorPoolStrategy

    model_bytes, model_name = None, "default"
    if model is not None:
        path = os.path.join(model, "model.bpk") if os.path.isdir(model) else model
        with open(path, "rb") as f:
            model_bytes, model_name = f.read(), path
    threads = str(max(1, round(cpus_per_actor)))
    # Blocks of about one batch, so that every actor gets work even from a few small files.
    ds = ds.repartition(target_num_rows_per_block=batch_size)
    return ds.map_batches(
        Predictor,
        fn_constructor_kwargs={"model_bytes": model_bytes, "model_name": model_name,
                               "text_column": text_column, "prefix": prefix},
        batch_size=batch_size,
        batch_format="pandas",
        compute=ActorPoolStrategy(size=num_actors),
        num_cpus=cpus_per_actor if reserve_cpus is None else reserve_cpus,
        # The core's threads (rayon) match the CPUs each actor computes with.
        runtime_env={"env_vars": {"RAYON_NUM_THREADS": threads}},
    )


def actor_plan(cluster_cpus: float, num_actors: Optional[int], cpus_per_actor: float) -> tuple[int, float]:
    """How many actors, and how many CPUs each reserves. Ray Data's own tasks (listing files)
    need one CPU beside the actors: by default the actors fill the rest; when more are asked for
    than fit, they reserve a share of it each (and share the CPUs), rather than wait forever."""
    free = max(cluster_cpus - 1.0, 0.1)
    if num_actors is None:
        num_actors = max(1, int(free // cpus_per_actor))
    return num_actors, min(cpus_per_actor, free / num_actors)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m xinsheng.ray_predict",
        description="Classify Parquet/JSONL/CSV review files on a Ray cluster and write Parquet with "
                    "label, score, p_<label> and error columns added.")
    p.add_argument("--input", required=True, nargs="+",
                   help="files, globs (quote them: 'reviews/*.parquet') or directories")
    p.add_argument("--output", required=True, help="directory for the Parquet output (must be empty or new)")
    p.add_argument("--text-column", default="text", help="column holding the review text [default: text]")
    p.add_argument("--model", help="bundle directory or .bpk file [default: the packaged model]")
    p.add_argument("--num-actors", type=int, help="classifying actors [default: (the cluster's CPUs - 1) / --cpus-per-actor]")
    p.add_argument("--cpus-per-actor", type=float, default=1.0, help="CPUs (and core threads) per actor [default: 1]")
    p.add_argument("--batch-size", type=int, default=1024, help="rows per batch an actor classifies [default: 1024]")
    p.add_argument("--format", choices=["parquet", "json", "csv"], help="input format [default: from the extension]")
    p.add_argument("--prefix", default="", help="prefix for the added columns, when the input already has a 'label' …")
    p.add_argument("--address", help="Ray cluster to join (ray://host:10001, or auto) [default: RAY_ADDRESS, else a "
                                     "local instance]")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --output")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    import ray

    import xinsheng

    if args.batch_size < 1 or (args.num_actors is not None and args.num_actors < 1):
        raise ValueError("--batch-size and --num-actors must be at least 1")
    if os.path.isdir(args.output) and os.listdir(args.output) and not args.overwrite:
        raise ValueError(f"--output {args.output!r} is not empty: choose a new directory (or pass --overwrite), "
                         "so that no earlier results are mixed in")
    paths = expand_inputs(args.input)
    fmt = input_format(paths, args.format)
    labels = (xinsheng.Classifier.load(args.model) if args.model else xinsheng.Classifier.load()).labels

    started = time.perf_counter()
    ray.init(address=args.address, logging_level="warning", log_to_driver=False)
    ds = read_dataset(paths, fmt)
    columns = ds.columns()
    if args.text_column not in columns:
        raise ValueError(f"--text-column {args.text_column!r}: the input has no such column "
                         f"(columns: {', '.join(columns)})")
    clash = [c for c in output_columns(labels, args.prefix) if c in columns]
    if clash:
        raise ValueError(f"the input already has column(s) {', '.join(clash)}: pass --prefix (e.g. --prefix pred_) "
                         "so that they are kept")
    num_actors, reserve = actor_plan(ray.cluster_resources().get("CPU", 1), args.num_actors, args.cpus_per_actor)
    out = classify_dataset(ds, model=args.model, text_column=args.text_column, num_actors=num_actors,
                           batch_size=args.batch_size, cpus_per_actor=args.cpus_per_actor, reserve_cpus=reserve,
                           prefix=args.prefix)
    out.write_parquet(args.output, ray_remote_args=IO_TASK)
    seconds = time.perf_counter() - started
    # Count what was written (one column), so the summary reports the output, not the plan.
    error_column = args.prefix + ERROR
    rows = errors = 0
    written = ray.data.read_parquet(args.output, **IO_TASK).select_columns([error_column])
    for batch in written.iter_batches(batch_format="pandas"):
        rows += len(batch)
        errors += int(batch[error_column].notna().sum())
    print(f"classified {rows - errors} rows, {errors} with errors (see the {args.prefix}{ERROR} column), "
          f"from {len(paths)} files with {num_actors} actors in {seconds:.1f}s -> {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
