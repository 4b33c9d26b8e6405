"""Typed, validated configuration. Configs are data: YAML or CLI flags in, typed objects out."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from relext_ray.corpus.brat import BratOptions
from relext_ray.errors import RelextError


class PrepareConfig(BaseModel):
    """How a corpus becomes prepared instance shards (``python -m relext_ray.prepare``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    corpus: Literal["conll04", "brat", "jsonl"]
    data_dir: Path
    out: Path
    mode: Literal["unordered", "ordered"] = "unordered"
    num_shards: int = Field(4, ge=1, description="input blocks processed in parallel")
    max_distance: int = Field(60, ge=1, le=127,
                              description="relative positions are clipped to ±this (int8)")
    min_freq: int = Field(1, ge=1, description="tokens seen fewer times in training are <unk>")
    lowercase: bool = False
    chunk_size: int = Field(256, ge=1, description="records per unit of work")
    concurrency: int | None = Field(None, ge=1, description="parallel Ray tasks (default: all CPUs)")
    # brat only
    terminators: str = "。！？"
    wrap_width: int | Literal["auto"] | None = "auto"
    ignore_relation_types: tuple[str, ...] = ("Coreference",)

    @field_validator("terminators")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v:
            raise ValueError("needs at least one sentence terminator")
        return v

    def brat_options(self) -> BratOptions:
        return BratOptions(
            terminators=self.terminators,
            wrap_width=self.wrap_width,
            ignore_relation_types=frozenset(self.ignore_relation_types),
        )


def readable(exc: ValidationError, what: str) -> RelextError:
    """One line per bad field: ``mode: Input should be 'unordered' or 'ordered'``."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {loc}: {err['msg']}")
    return RelextError(f"invalid {what}:\n" + "\n".join(lines))
