"""What earlier attempts at a unit of input left behind, so that a poison record is isolated.

A replica that dies (killed for memory, a crash in native code) cannot say why, and Ray Data
then restarts it and runs the unit again, forever if the same record kills it each time. So an
attempt writes down what it is doing before it does it, in ``OUTPUT/.attempts/`` (the output
is on storage every replica sees):

* the first ``WHOLE_ATTEMPTS`` attempts score the unit as a whole (a replica lost with its
  node, or killed once, succeeds the second time);
* later attempts score it record by record, writing the record's number first; the record an
  attempt died on is rejected by the next one (``replica died while scoring this record``),
  which carries on after it. Each death rejects one record, so a unit of n records is tried at
  most ``WHOLE_ATTEMPTS + n + 1`` times, and the records that do not crash are all scored.

A record whose scoring raises is rejected at once with the exception text; the rest of its unit
is scored record by record in the same attempt.
"""

from __future__ import annotations

import json
from pathlib import Path

from relext_ray.files import write_text_atomically

WHOLE_ATTEMPTS = 2
FOLDER = ".attempts"


class Attempts:
    """The journal of one unit's attempts.

    Args:
        output: The job's output directory.
        unit: The unit's index.
    """

    def __init__(self, output: Path, unit: int) -> None:
        self.dir = output / FOLDER
        self.unit = unit
        self.dir.mkdir(parents=True, exist_ok=True)
        self._state = self.dir / f"unit-{unit:08d}.json"

    def _read(self) -> dict[str, object]:
        try:
            return json.loads(self._state.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {"attempts": 0, "current": None, "died_on": []}

    def _write(self, state: dict[str, object]) -> None:
        write_text_atomically(self._state, json.dumps(state))

    def begin(self) -> int:
        """Record a new attempt; return how many earlier attempts did not finish. A record
        that was being scored when the last one died joins ``died_on``."""
        state = self._read()
        earlier = int(state["attempts"])
        died = list(state["died_on"])  # type: ignore[arg-type]
        if state["current"] is not None:
            died.append(int(state["current"]))  # type: ignore[arg-type]
        self._write({"attempts": earlier + 1, "current": None, "died_on": died})
        self.died_on = set(died)
        return earlier

    def scoring(self, record: int | None) -> None:
        """About to score record ``record`` of the unit (None: done with records)."""
        state = self._read()
        state["current"] = record
        self._write(state)

    def done(self) -> None:
        """The unit finished: nothing of it needs remembering."""
        self._state.unlink(missing_ok=True)
