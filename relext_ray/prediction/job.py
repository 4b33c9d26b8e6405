"""Batch prediction on Ray Data: every entity pair of a corpus of any size, streamed to disk.

    python -m relext_ray.predict --input corpus/ --model models:/relext-conll04/1 --output preds/

``--input``: a file, directory or glob of canonical JSONL, CoNLL04 JSON or brat (.txt + .ann).
``--model``: a checkpoint directory, ``runs:/<run_id>/model`` or ``models:/<name>/<version>``.
Replicas (Ray Data's actor pool) load the model once, then read, featurise and score units of
input and write each unit's pairs to ``OUTPUT/part-<unit>.parquet`` (or ``.jsonl``); the driver
only sums their accounting into ``OUTPUT/summary.json`` and writes bad records to
``OUTPUT/rejects.jsonl``. On a multi-node cluster ``OUTPUT`` must be on storage every node
shares (NFS or similar), as for any Ray Data write.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa

from relext_ray import console
from relext_ray.cluster.connect import assigned_cpus
from relext_ray.corpus.brat import BratOptions
from relext_ray.corpus.duplicates import ID_SCHEMA, plan_renames, rename
from relext_ray.corpus.records import ReadResult, Reject, Sentence, reject_long
from relext_ray.corpus.sources import Unit, read_unit
from relext_ray.data.transforms import rows_of
from relext_ray.errors import RelextError
from relext_ray.prediction.accounting import Accounting
from relext_ray.prediction.attempts import FOLDER, WHOLE_ATTEMPTS, Attempts
from relext_ray.prediction.end_to_end import end_to_end_counts, untag
from relext_ray.prediction.inputs import plan_input
from relext_ray.prediction.limits import resolve_max_tokens
from relext_ray.prediction.parts import (
    ACCOUNT_SCHEMA,
    pack_directory,
    part_name,
    unit_ids,
    unpack_directory,
    write_part,
)
from relext_ray.registry import ENTITY_SOURCES, OUTPUT_FORMATS

OUTPUT_FILES = ("summary.json", "rejects.jsonl")


def _leftovers(out: Path) -> list[Path]:
    """Temporary files of attempts that died before renaming their part."""
    return list(out.glob(".part-*.tmp"))


def _prepare_output(out: Path, overwrite: bool) -> None:
    if (out / FOLDER).is_dir():  # the journal of an earlier job that did not finish
        shutil.rmtree(out / FOLDER)
    if out.exists() and any(out.iterdir()):
        old = [p for p in out.iterdir() if p.name.startswith("part-") or p.name in OUTPUT_FILES]
        old += _leftovers(out)
        if not overwrite:
            raise RelextError(f"--output {out} already holds files: pass --overwrite to replace "
                              "earlier predictions, or choose another directory")
        for p in old:
            p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def predict(input_spec: str, checkpoint: str | Path, output: str | Path, *,
            fmt: str | None = None, out_format: str = "parquet", batch_size: int = 1024,
            chunk_size: int | None = None, concurrency: int = 1, cpus_per_replica: float = 1.0,
            gpus_per_replica: float = 0.0, theta: float | None = None, all_scores: bool = False,
            overwrite: bool = False, progress: bool = True,
            model_name: str | None = None, max_tokens: int | None = None,
            entities: str = "given") -> dict[str, Any]:
    """Run batch prediction; return the summary (also written to ``OUTPUT/summary.json``).

    Args:
        input_spec: A file, directory (searched recursively) or glob of input records.
        checkpoint: A checkpoint directory (``tracking.runs.resolve_model`` turns ``runs:/``
            and ``models:/`` URIs into one).
        output: The directory for part files, ``summary.json`` and ``rejects.jsonl``; on a
            multi-node cluster on storage every node shares.
        model_name: How the summary names the model (default: the checkpoint's path).
        max_tokens: Records of more tokens go to ``rejects.jsonl`` (0: no limit; default:
            twice the longest training sentence, ``prediction.limits``).
        entities: ``given``: use the records' mentions (the tagger finds those of raw text);
            ``tagger``: the tagger finds every record's mentions, and the given ones (with the
            gold relations) are what the end-to-end scores compare with.

    Returns:
        The summary: counts that account for every sentence, relations predicted, scores
        against gold relations where the input has them, throughput.
    """
    import ray

    from relext_ray.cluster.connect import init_ray

    if concurrency < 1 or batch_size < 1:
        raise RelextError("--concurrency and --batch-size must be at least 1")
    if entities not in ENTITY_SOURCES:
        raise RelextError(f"--entities must be one of {', '.join(ENTITY_SOURCES)}, got "
                          f"{entities!r}")
    if out_format not in OUTPUT_FORMATS:
        raise RelextError(f"--output-format must be parquet or jsonl, got {out_format!r}")
    t0 = time.perf_counter()
    checkpoint_dir = Path(checkpoint)
    # The driver needs only labels and threshold; the replicas load the weights.
    meta = json.loads((checkpoint_dir / "meta.json").read_text(encoding="utf-8"))
    labels = list(meta["labels"])
    used_theta = float(meta["theta"]) if theta is None else float(theta)
    limit = resolve_max_tokens(max_tokens, meta)
    units, chunk_size = plan_input(input_spec, fmt, chunk_size, concurrency)
    out = Path(output).resolve()
    _prepare_output(out, overwrite)

    init_ray()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress
    # Ray Data restarts a replica that died (process killed, node lost) and reruns its unit;
    # the rerun replaces the unit's part file, and the unit's accounting reaches the driver
    # once, from the attempt that finished. A record that kills its replica again and again is
    # found and rejected (``prediction.attempts``), which bounds the reruns of a unit; a unit
    # that fails in our code otherwise fails the job: nothing is dropped silently.
    ctx.max_errored_blocks = 0
    items = [{"index": i, **asdict(u)} for i, u in enumerate(units)]
    # Sentence ids made unique first: output rows are keyed by them (``duplicates``).
    id_rows = ray.data.from_items(items, override_num_blocks=len(units)).map_batches(
        unit_ids, batch_size=1, batch_format="pyarrow", fn_kwargs={"brat": BratOptions()})
    renames, duplicated = plan_renames(pa.concat_tables(
        [ID_SCHEMA.empty_table(), *(t.cast(ID_SCHEMA) for t in id_rows.iter_batches(
            batch_size=None, batch_format="pyarrow"))]))
    ds = ray.data.from_items(
        [{**item, "renames": json.dumps(renames.get(item["index"], {}))} for item in items],
        override_num_blocks=len(units))
    accounted = ds.map_batches(
        UnitScorer, batch_size=1, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=cpus_per_replica, num_gpus=gpus_per_replica or None,
        fn_constructor_kwargs={"checkpoint": [ray.put(pack_directory(checkpoint_dir))],
                               "output": str(out), "units": len(units),
                               "out_format": out_format, "theta": theta,
                               "all_scores": all_scores, "batch_size": batch_size,
                               "max_tokens": limit, "retag": entities == "tagger",
                               "poison": os.environ.get("RELEXT_TEST_POISON_RECORD")},
    )
    account = Accounting(labels)
    # (Ray's core notes on stderr that the replica pool is restartable: not for the user)
    with console.native_lines_dropped(), open(out / "rejects.jsonl", "w",
                                              encoding="utf-8") as rejects:
        for batch in accounted.iter_batches(batch_size=None, batch_format="pyarrow"):
            for kind, payload in zip(batch.column("kind").to_pylist(),
                                     batch.column("payload").to_pylist(), strict=True):
                if kind == "counts":
                    account.add(json.loads(payload))
                else:
                    rejects.write(payload + "\n")
    for tmp in _leftovers(out):
        tmp.unlink(missing_ok=True)
    shutil.rmtree(out / FOLDER, ignore_errors=True)
    account.check(out, out_format)
    seconds = time.perf_counter() - t0
    summary = {
        "model": model_name or str(checkpoint_dir), "input": str(input_spec), "output": str(out),
        "output_format": out_format, "theta": used_theta, "replicas": concurrency,
        "cpus_per_replica": cpus_per_replica, "gpus_per_replica": gpus_per_replica,
        "max_tokens": limit, "chunk_size": chunk_size, "entities": entities,
        "directed": meta["mode"] == "ordered",
        **account.summary(),
        "duplicate_ids": len(duplicated),
        "duplicate_id_examples": dict(sorted(duplicated.items())[:10]),
        "seconds": round(seconds, 3),
        "pairs_per_second": round(account.rows_written / seconds, 1) if seconds else 0.0,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    return summary


class UnitScorer:
    """One replica: loads the model once, then reads, featurises, scores and writes units."""

    def __init__(self, checkpoint: bytes | list[Any], output: str | Path, units: int,
                 out_format: str = "parquet", theta: float | None = None,
                 all_scores: bool = False, batch_size: int = 1024,
                 brat: BratOptions | None = None, device: str = "auto",
                 max_tokens: int | None = None, poison: str | None = None,
                 retag: bool = False) -> None:
        """``checkpoint``: packed bytes, or ``[ObjectRef]`` to them (the driver puts the model in
        the object store once; a restarted replica fetches it again from there). ``output``
        must be reachable from every node that runs a replica (a shared filesystem)."""
        import torch

        if not isinstance(checkpoint, bytes):
            import ray

            checkpoint = ray.get(checkpoint[0])

        from relext_ray.prediction.predictor import Predictor, prediction_schema
        from relext_ray.training.device import configure_threads, resolve_device

        configure_threads(assigned_cpus())
        self.predictor = Predictor.load(unpack_directory(checkpoint), resolve_device(device))
        cfg = self.predictor.checkpoint.config
        self.predictor.checkpoint.config = cfg.model_copy(update={"train": cfg.train.model_copy(
            update={"eval_batch_size": batch_size})})
        self.output, self.units, self.fmt = Path(output), units, out_format
        self.theta, self.all_scores, self.max_tokens = theta, all_scores, max_tokens
        self.poison, self.retag = poison, retag
        self.directed = self.predictor.checkpoint.meta["mode"] == "ordered"
        self.brat = brat or BratOptions()
        self.schema = prediction_schema(self.predictor.labels, all_scores)
        self.node = _node_address()
        torch.set_grad_enabled(False)

    def __call__(self, batch: Mapping[str, Any]) -> pa.Table:
        rows: list[tuple[str, str]] = []
        for index, split, corpus, path, start, stop, renames in rows_of(
                batch, ("index", "split", "corpus", "path", "start", "stop", "renames")):
            unit = Unit(split, corpus, path, int(start), None if stop is None else int(stop))
            rows += self.score_unit(int(index), unit,
                                    {int(k): v for k, v in json.loads(renames).items()})
        return pa.Table.from_arrays([pa.array([k for k, _ in rows], pa.string()),
                                     pa.array([p for _, p in rows], pa.string())],
                                    schema=ACCOUNT_SCHEMA)

    def score_unit(self, index: int, unit: Unit, renames: dict[int, str] | None = None
                   ) -> list[tuple[str, str]]:
        """Score one unit and write its part file; return its accounting and reject rows.
        ``renames``: new ids of this unit's records by line (``duplicates``)."""
        began = time.time()
        attempts = Attempts(self.output, index)
        earlier = attempts.begin()
        result = read_unit(unit, self.brat, self.predictor.tokenization)
        rename(result, renames or {})
        too_long = reject_long(result, unit.path, self.max_tokens)
        gold = {s.id: s for s in result.sentences} if self.retag else {}
        if self.retag:
            result.sentences = [untag(s) for s in result.sentences]
        scored, failed = None, []
        if earlier < WHOLE_ATTEMPTS:
            try:
                self._poisoned(result.sentences)
                result.sentences = self.predictor.tag(result.sentences)
                scored = self.predictor.score(result.sentences, self.theta, self.all_scores)
            except Exception:  # a record our code cannot score: find it, reject it, go on
                scored = None
        if scored is None:
            scored, failed = self._score_each(result, unit.path, attempts)
        pairs = scored.table.cast(self.schema)
        name = None
        if pairs.num_rows:
            name = part_name(index, self.units, self.fmt)
            write_part(pairs, self.output / name, self.fmt)
        sentence_rejects = ([] if unit.corpus == "brat" else result.rejects) + too_long + failed
        counts: Counter[str] = Counter(
            units=1,
            sentences_read=len(result.sentences) + len(sentence_rejects),
            sentences_predicted=len(result.sentences),
            sentences_rejected=len(sentence_rejects),
            documents_rejected=sum(r.field == "file" for r in result.rejects)
            if unit.corpus == "brat" else 0,
            annotations_rejected=sum(r.field != "file" for r in result.rejects)
            if unit.corpus == "brat" else 0,
            pairs_scored=pairs.num_rows,
            pairs_filtered=scored.pairs_filtered,
            filtered_positives=scored.filtered_positives,
            gold_relations=sum(len(s.relations) for s in result.sentences),
            blank_lines=result.counts.get("blank_lines", 0),
            sentences_too_long=len(too_long),
            sentences_failed=len(failed),
            records_renamed=len(renames or {}),
            sentences_tagged=sum(s.tagged for s in result.sentences),
            mentions_tagged=sum(len(s.entities) for s in result.sentences if s.tagged),
        )
        if self.retag:
            counts.update(end_to_end_counts(
                [gold[s.id] for s in result.sentences], result.sentences,
                pairs.select(["sentence_id", "head", "tail", "relation"]).to_pylist(),
                self.directed))
        per_class = Counter(pairs.column("relation").to_pylist())
        payload = {"counts": dict(counts), "relations": dict(per_class),
                   "confusion": scored.confusion.tolist(), "file": name,
                   "rows": pairs.num_rows, "node": self.node, "span": [began, time.time()],
                   "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
        attempts.done()
        return [("counts", json.dumps(payload))] + [
            ("reject", json.dumps(r.to_dict(), ensure_ascii=False))
            for r in [*result.rejects, *too_long, *failed]]

    def _score_each(self, result: ReadResult, path: str, attempts: Attempts
                    ) -> tuple[Any, list[Reject]]:
        """Score a unit record by record (``prediction.attempts``): a record an earlier attempt
        died on, or whose scoring raises, is rejected with the reason; the rest are scored.
        ``result`` keeps the scored sentences only."""
        from relext_ray.prediction.predictor import Scored

        parts, failed, keep, lines = [], [], [], []
        for k, (sentence, line) in enumerate(zip(result.sentences, result.lines, strict=True)):
            reason = None
            if k in attempts.died_on:
                reason = "replica died while scoring this record (out of memory, or a crash)"
            else:
                attempts.scoring(k)
                try:
                    self._poisoned([sentence])
                    sentence = self.predictor.tag([sentence])[0]
                    parts.append(self.predictor.score([sentence], self.theta, self.all_scores))
                except Exception as exc:
                    reason = f"scoring failed: {type(exc).__name__}: {exc}"
            if reason is None:
                keep.append(sentence)
                lines.append(line)
            else:
                failed.append(Reject(path, line, reason, field="record"))
        attempts.scoring(None)
        result.sentences, result.lines = keep, lines
        return Scored.concat(parts, self.schema, len(self.predictor.labels)), failed

    def _poisoned(self, sentences: list[Sentence]) -> None:
        """Test-only: die, as a replica killed for memory would, on the record named by the
        driver's ``RELEXT_TEST_POISON_RECORD`` (unset in normal use)."""
        if self.poison is not None and any(s.id == self.poison for s in sentences):
            os._exit(137)


def _node_address() -> str:
    """The Ray node this replica runs on (its IP), for the summary's per-node unit counts."""
    import ray

    return ray.util.get_node_ip_address() if ray.is_initialized() else "local"
