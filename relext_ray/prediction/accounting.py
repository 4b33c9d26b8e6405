"""Batch prediction's accounting: sums what replicas report and checks the rules that must hold."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from relext_ray.errors import RelextError
from relext_ray.prediction.end_to_end import COUNT_KEYS as E2E_KEYS
from relext_ray.prediction.end_to_end import end_to_end_scores
from relext_ray.prediction.parts import part_rows

COUNT_KEYS = (
    "sentences_read", "sentences_predicted", "sentences_rejected", "documents_rejected",
    "annotations_rejected", "pairs_scored", "pairs_filtered", "filtered_positives",
    "gold_relations", "units", "blank_lines", "sentences_too_long",
    "sentences_failed", "records_renamed", "sentences_tagged", "mentions_tagged",
    *E2E_KEYS,
)


class Accounting:
    """Sums what replicas report, for the summary; checks the rules that must always hold."""

    def __init__(self, labels: list[str]) -> None:
        self.labels = labels
        self.counts: Counter[str] = Counter()
        self.relations: Counter[str] = Counter()
        self.confusion = np.zeros((len(labels) + 1, len(labels)), dtype=np.int64)
        self.files: dict[str, int] = {}
        self.units_per_node: Counter[str] = Counter()
        self.span = [float("inf"), float("-inf")]
        self.peak_rss_kb = 0  # the largest peak resident memory a replica reported

    @property
    def rows_written(self) -> int:
        return sum(self.files.values())

    def add(self, payload: dict[str, Any]) -> None:
        self.counts.update(payload["counts"])
        self.relations.update(payload["relations"])
        self.confusion += np.asarray(payload["confusion"], dtype=np.int64)
        if "node" in payload:
            self.units_per_node[payload["node"]] += 1
            self.span = [min(self.span[0], payload["span"][0]),
                         max(self.span[1], payload["span"][1])]
        self.peak_rss_kb = max(self.peak_rss_kb, int(payload.get("peak_rss_kb", 0)))
        if payload.get("file"):
            if payload["file"] in self.files:
                raise RelextError(f"accounting: {payload['file']} reported twice")
            self.files[payload["file"]] = int(payload["rows"])

    def check(self, out: Path | None = None, fmt: str = "parquet") -> None:
        """The sums agree; with ``out``, the part files on disk are exactly the reported ones
        and hold the reported rows (Parquet footers, or JSONL lines, are read back)."""
        if out is not None:
            on_disk = {p.name for p in out.glob(f"part-*.{fmt}")}
            if on_disk != set(self.files):
                raise RelextError(f"accounting: part files in {out} differ from those reported: "
                                  f"unexpected {sorted(on_disk - set(self.files))[:5]}, missing "
                                  f"{sorted(set(self.files) - on_disk)[:5]}")
            for name, rows in self.files.items():
                if (found := part_rows(out / name, fmt)) != rows:
                    raise RelextError(f"accounting: {out / name} holds {found} rows, "
                                      f"{rows} reported")
        c = self.counts
        if c["sentences_read"] != c["sentences_predicted"] + c["sentences_rejected"]:
            raise RelextError(f"accounting: {c['sentences_read']} sentences read but "
                              f"{c['sentences_predicted']} predicted + {c['sentences_rejected']} "
                              "rejected")
        if self.rows_written != c["pairs_scored"]:
            raise RelextError(f"accounting: {self.rows_written} rows written but "
                              f"{c['pairs_scored']} pairs scored")

    def summary(self) -> dict[str, Any]:
        from relext_ray.training.metrics import scores_from_confusion

        out: dict[str, Any] = {k: int(self.counts.get(k, 0)) for k in COUNT_KEYS}
        out["rows_written"] = self.rows_written
        out["files"] = len(self.files)
        out["units_per_node"] = dict(sorted(self.units_per_node.items()))
        # First unit started to last unit finished: throughput without the replicas' start-up.
        scoring = self.span[1] - self.span[0] if self.units_per_node else 0.0
        out["scoring_seconds"] = round(scoring, 3)
        out["scoring_pairs_per_second"] = round(self.rows_written / scoring, 1) if scoring else 0.0
        out["replica_peak_rss_mb"] = round(self.peak_rss_kb / 1024, 1)
        out["relations_predicted"] = {k: int(self.relations.get(k, 0)) for k in self.labels}
        if out["gold_relations"]:
            s = scores_from_confusion(self.confusion, self.labels, out["filtered_positives"])
            out["metrics"] = {**s.summary(), "per_class": s.per_class,
                              "error_breakdown": s.error_breakdown}
        else:
            out["metrics"] = None
        # with --entities tagger: the tagger's mentions and the relations between them against
        # the records' gold annotations
        out["end_to_end"] = end_to_end_scores(out) if out["entity_gold"] else None
        return out
