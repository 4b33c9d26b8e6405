"""The study's report: our numbers beside the paper's, written from the runs' results.

Pure functions of the result rows (one per run: corpus, system, seed, ratio and its test
scores) and a few facts about the study, so the report can be rebuilt from ``results.json``
without training anything.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from relext_ray.reproduce.study import (
    CORPORA,
    FIG3_SYSTEMS,
    PAPER,
    PAPER_ERRORS,
    SYSTEMS,
    TABLES,
    TUNED,
)

TABLE_TITLES = {
    "main": "Tag embeddings and multi-task learning (paper Tables 1 and 2)",
    "encoders": "Other encoders with and without tags (paper Table 3)",
    "losses": "Classification losses (paper Table 4)",
}


# What this project aims at, in test F1 % (README, "CoNLL04 results" and "Chinese Literature on
# all of its data"): per corpus, the system whose mean over seeds is held to it.
TARGETS: dict[str, tuple[tuple[str, ...], float]] = {
    "conll04": (("tuned", "tuned_pcnn"), 72.0),
    "chinese_literature": (("mtl_tag", "tuned_pcnn"), 40.0)}


def targets(g: dict, corpora: list[str]) -> list[str]:
    """One line per corpus with a target and runs of its system: reached or missed, by how
    much."""
    out = []
    for corpus in corpora:
        if corpus not in TARGETS:
            continue
        systems, aim = TARGETS[corpus]
        for system in systems:
            f1 = _f1s(g.get((corpus, system, None), []))
            if not f1:
                continue
            mean = 100 * statistics.mean(f1)
            verdict = "reached" if mean >= aim else f"missed by {aim - mean:.2f}"
            out.append(f"- {corpus}: {SYSTEMS[system][0]} {_pm(f1)} against the {aim:g} aimed "
                       f"at: {verdict}.")
    return out


def group(rows: list[dict[str, Any]]) -> dict[tuple[str, str, float | None], list[dict]]:
    out: dict[tuple[str, str, float | None], list[dict]] = defaultdict(list)
    for r in rows:
        out[(r["corpus"], r["system"], r.get("neg_ratio"))].append(r)
    return out


def mean_sd(values: list[float]) -> tuple[float, float]:
    return (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


def _pm(values: list[float]) -> str:
    if not values:
        return "–"
    m, sd = mean_sd([100 * v for v in values])
    return f"{m:.2f} ± {sd:.2f}" if len(values) > 1 else f"{m:.2f}"


def _gain(ours: float, base: float) -> str:
    rel = f" ({100 * (ours - base) / base:+.1f}%)" if base else ""
    return f"{ours - base:+.2f}{rel}"


def _f1s(runs: list[dict], key: str = "test_f1") -> list[float]:
    return [r[key] for r in runs if r.get(key) is not None]


def table(corpus: str, name: str, g: dict) -> list[str]:
    lang = CORPORA[corpus].language
    paper = PAPER[lang]
    base = _f1s(g.get((corpus, "baseline", None), []))
    lines = ["| system | F1, ours | F1, paper | gain over Baseline, ours | "
             "gain over Baseline, paper | F1 with dev-calibrated θ, ours |",
             "|---|---|---|---|---|---|"]
    for system in TABLES[name]:
        runs = g.get((corpus, system, None), [])
        f1 = _f1s(runs)
        ours_gain = _gain(100 * statistics.mean(f1), 100 * statistics.mean(base)) \
            if f1 and base and system != "baseline" else "–"
        p = paper.get(system)
        paper_gain = _gain(p, paper["baseline"]) if p is not None and system != "baseline" \
            else "–"
        lines.append(f"| {SYSTEMS[system][0]} | {_pm(f1) if f1 else 'not run'} | "
                     f"{p if p is not None else '–'} | {ours_gain} | {paper_gain} | "
                     f"{_pm(_f1s(runs, 'test_calibrated_f1'))} |")
    return lines


def _mean(runs: list[dict], key: str, fmt: str = ",.0f") -> str:
    values = [r[key] for r in runs if r.get(key) is not None]
    return format(statistics.mean(values), fmt) if values else "–"


def data_table(g: dict, corpora: list[str]) -> list[str]:
    """What the table runs actually trained and were tested on (means over runs)."""
    lines = ["Data as the table runs saw it (instances after the type filter; mean over runs):",
             "", "| corpus | train instances | train positives | train neg:pos | "
             "test instances | test positives | test neg:pos | s/epoch, Baseline |",
             "|---|---|---|---|---|---|---|---|"]
    for corpus in corpora:
        runs = [r for (c, _, ratio), rs in g.items() if c == corpus and ratio is None for r in rs]
        base = g.get((corpus, "baseline", None), [])
        cells = [_mean(runs, "train_instances"), _mean(runs, "train_positives"),
                 _mean(runs, "train_neg_per_pos", ".1f"), _mean(runs, "test_instances"),
                 _mean(runs, "test_positives"), _mean(runs, "test_neg_per_pos", ".1f"),
                 _mean(base, "seconds_per_epoch", ".1f")]
        lines.append(f"| {corpus} | " + " | ".join(cells) + " |")
    return lines


def paired_wins(g: dict, corpus: str, a: str, b: str) -> tuple[int, int, list[float]]:
    """Seeds where system ``a`` beats ``b`` in test F1, seeds compared, and the gains."""
    fa = {r["seed"]: r["test_f1"] for r in g.get((corpus, a, None), [])}
    fb = {r["seed"]: r["test_f1"] for r in g.get((corpus, b, None), [])}
    seeds = sorted(set(fa) & set(fb))
    gains = [fa[s] - fb[s] for s in seeds]
    return sum(x > 0 for x in gains), len(seeds), gains


def disagreements(g: dict, corpora: list[str]) -> list[str]:
    """Rows whose gain over Baseline has the opposite sign to the paper's."""
    out = []
    for corpus in corpora:
        paper = PAPER[CORPORA[corpus].language]
        base = _f1s(g.get((corpus, "baseline", None), []))
        for system, p in paper.items():
            f1 = _f1s(g.get((corpus, system, None), []))
            if system == "baseline" or not f1 or not base:
                continue
            ours = statistics.mean(f1) - statistics.mean(base)
            theirs = p - paper["baseline"]
            if (ours > 0) != (theirs > 0):
                out.append(f"- {corpus}: {SYSTEMS[system][0]} is {100 * ours:+.2f} F1 over "
                           f"Baseline here, {theirs:+.1f} in the paper.")
    return out


def _at_ratio(g: dict, corpus: str, system: str, ratio: float) -> list[dict]:
    """A system's runs at one neg:pos: Figure 3's own, or the table runs trained at it."""
    return g.get((corpus, system, ratio)) or [
        r for r in g.get((corpus, system, None), []) if r.get("train_ratio") == ratio]


def fig3_rows(g: dict, corpus: str) -> list[tuple[float, list[float], list[float], float]]:
    """Figure 3's points: (ratio, Baseline F1s, +MTL+Tag F1s, neg:pos reached)."""
    ratios = {k[2] for k in g if k[0] == corpus and k[2] is not None}
    if ratios:  # the table runs count as a point only beside a sweep
        ratios |= {r["train_ratio"] for (c, s, x), rs in g.items()
                   if c == corpus and x is None and s in FIG3_SYSTEMS for r in rs
                   if r.get("train_ratio") is not None}
    out = []
    for ratio in sorted(ratios):
        a, b = (_f1s(_at_ratio(g, corpus, s, ratio)) for s in FIG3_SYSTEMS)
        reached = [r["train_neg_per_pos"] for s in FIG3_SYSTEMS
                   for r in _at_ratio(g, corpus, s, ratio) if "train_neg_per_pos" in r]
        out.append((ratio, a, b, statistics.mean(reached) if reached else float("nan")))
    return out


def plot_fig3(rows: list[dict[str, Any]], path: Path) -> bool:
    """Baseline and +MTL+Tag test F1 against neg:pos, one panel per corpus; False if no data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = group(rows)
    corpora = [c for c in dict.fromkeys(r["corpus"] for r in rows) if fig3_rows(g, c)]
    if not corpora:
        return False
    fig, axes = plt.subplots(1, len(corpora), figsize=(5.5 * len(corpora), 4), squeeze=False)
    for ax, corpus in zip(axes[0], corpora, strict=True):
        data = fig3_rows(g, corpus)
        x = [d[0] for d in data]
        for i, system in enumerate(FIG3_SYSTEMS):
            ys = [d[1 + i] for d in data]
            means = [100 * statistics.mean(y) if y else float("nan") for y in ys]
            sds = [100 * statistics.stdev(y) if len(y) > 1 else 0.0 for y in ys]
            ax.errorbar(x, means, yerr=sds, marker="o", capsize=3, label=SYSTEMS[system][0])
        ax.set_xlabel("training negatives per positive (neg:pos)")
        ax.set_ylabel("test F1 (%)")
        ax.set_title(corpus)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def render(rows: list[dict[str, Any]], facts: dict[str, Any], figure: str | None) -> str:
    g = group(rows)
    corpora = list(dict.fromkeys(r["corpus"] for r in rows))
    out = ["# Reproducing Ye et al. (ACL 2019) on public data", "",
           "Generated by `jobs/reproduce.py`; do not edit by hand. F1 is micro-averaged over the "
           "relation classes (Other excluded), in %, mean ± sample sd over seeds, on the "
           "official test split (never subsampled by document or ratio; a budget's sentence "
           "cap applies to every split and is listed below). The paper's numbers are on ACE05 "
           "(English: Table 1; Chinese: Tables 2-4); ours are on CoNLL04 (English, unordered "
           "pairs) and Chinese Literature (Chinese characters, ordered pairs), so compare "
           "gains and orderings, not absolute values.", "",
           "## How this report was made", ""]
    out += [f"- {k}: " + ("; ".join(f"{c}: {w}" for c, w in v.items()) if isinstance(v, dict)
                          else str(v)) for k, v in facts.items()]
    out += ["", *data_table(g, corpora), ""]
    for corpus in corpora:
        c = CORPORA[corpus]
        for name in c.tables:
            out += [f"## {corpus}: {TABLE_TITLES[name]}", "", *table(corpus, name, g), ""]
        base = _f1s(g.get((corpus, "mtl_tag", None), []))
        for system in TUNED:
            tuned = g.get((corpus, system, None), [])
            if tuned:
                out += [f"Tuned row: {SYSTEMS[system][0]} "
                        f"({facts.get(system, {}).get(corpus, 'a search')}): F1 {_pm(_f1s(tuned))} vs "
                        f"{_pm(base)} for the paper's model with its hand-set margins; "
                        f"dev-calibrated θ {_pm(_f1s(tuned, 'test_calibrated_f1'))}.", ""]
        anchor = g.get((corpus, "anchor", None), [])
        if anchor:
            out += [f"Anchor row: {SYSTEMS['anchor'][0]}, the same tag embedding, F1 "
                    f"{_pm(_f1s(anchor))} (dev-calibrated θ "
                    f"{_pm(_f1s(anchor, 'test_calibrated_f1'))}): what the tuned row has to "
                    f"beat.", ""]
        wins, n, gains = paired_wins(g, corpus, "mtl_tag", "baseline")
        if n:
            m, sd = mean_sd([100 * x for x in gains])
            out += [f"**+MTL+Tag vs Baseline on {corpus}:** better in {wins} of {n} seeds; "
                    f"gain {m:+.2f} ± {sd:.2f} F1 (paper: "
                    f"{PAPER[c.language]['mtl_tag'] - PAPER[c.language]['baseline']:+.1f}).", ""]
    fig_corpora = [c for c in corpora if fig3_rows(g, c)]
    if fig_corpora:
        out += ["## Figure 3: imbalance", "",
                "Training negatives are subsampled (seeded, all positives kept) to each "
                "neg:pos ratio; dev and test keep their natural ratio. Where the table runs "
                "above train at a subsampled ratio themselves, they are that ratio's point. "
                "\"Reached\" is the ratio actually trained on (lower than asked when a corpus "
                "has too few negatives).", ""]
        if figure:
            out += [f"![Figure 3]({figure})", ""]
        for corpus in fig_corpora:
            out += [f"{corpus}:", "",
                    "| neg:pos | reached | Baseline F1 | +MTL+Tag F1 | gap |", "|---|---|---|---|---|"]
            for ratio, a, b, reached in fig3_rows(g, corpus):
                gap = f"{100 * (statistics.mean(b) - statistics.mean(a)):+.2f}" if a and b \
                    else "–"
                out.append(f"| {ratio:g} | {reached:.2f} | {_pm(a)} | {_pm(b)} | {gap} |")
            out.append("")
    out += ["## Error breakdown", "",
            "Shares of all test errors: false negatives (Other predicted for a relation), false "
            "positives (a relation predicted for Other), wrong class.", "",
            "| corpus | system | false negatives | false positives | wrong class |",
            "|---|---|---|---|---|"]
    for corpus in corpora:
        for system in ("baseline", "mtl_tag"):
            runs = g.get((corpus, system, None), [])
            if runs:
                cells = [_pm(_f1s(runs, f"test_{k}")) for k in PAPER_ERRORS]
                out.append(f"| {corpus} | {SYSTEMS[system][0]} | " + " | ".join(cells) + " |")
    out.append("| paper (ACE05) | Baseline | " + " | ".join(
        f"{100 * v:.1f}" for v in PAPER_ERRORS.values()) + " |")
    out.append("")
    found = disagreements(g, corpora)
    out += ["## Where we disagree with the paper", ""]
    out += found or ["- Every gain over Baseline has the paper's sign."]
    aims = targets(g, corpora)
    if aims:
        out += ["", "## Targets", "", "Test F1 (mean over seeds) of the system each corpus is "
                "held to; the README discusses what is missing and why.", "", *aims]
    if facts.get("failed runs"):
        out += ["", f"Runs that failed and are missing above: {facts['failed runs']}."]
    return "\n".join(out) + "\n"
