"""``relext-download``: fetch the public corpora for users with network access.

* ``conll04``: the SpERT split (``conll04_{train,dev,test,types}.json``, entity spans as
  ``entities: [{type,start,end}]``) from the SpERT data server;
* ``chinese_literature``: the ``relation_extraction/`` folder of the
  lancopku/Chinese-Literature-NER-RE-Dataset repository, from GitHub's archive of it.

``--base-url`` points either at a mirror (tests use a server on loopback or a ``file://`` URL).
"""

from __future__ import annotations

import io
import shutil
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from relext_ray.errors import RelextError

SOURCES = {
    "conll04": {
        "base_url": "https://lavis.cs.hs-rm.de/storage/spert/public/datasets/conll04",
        "files": ["conll04_train.json", "conll04_dev.json", "conll04_test.json",
                  "conll04_types.json"],
    },
    "chinese_literature": {
        "base_url": "https://github.com/lancopku/Chinese-Literature-NER-RE-Dataset/archive/refs/heads",
        "files": ["master.zip"],
    },
}


def _fetch(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.read()
    except OSError as exc:
        raise RelextError(f"cannot download {url}: {exc}") from None


def _extract_relation_extraction(archive: bytes, dest: Path) -> int:
    """Unpack ``*/relation_extraction/**`` from the repository archive; return files written."""
    n = 0
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        for info in zf.infolist():
            parts = PurePosixPath(info.filename).parts
            if info.is_dir() or "relation_extraction" not in parts or ".." in parts:
                continue
            rel = Path(*parts[parts.index("relation_extraction"):])
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            n += 1
    if n == 0:
        raise RelextError("the archive has no relation_extraction/ folder")
    return n


def download(corpus: str, dest: str | Path, base_url: str | None = None,
             timeout: float = 60.0) -> Path:
    """Download ``corpus`` into ``dest/<corpus>/`` and return that directory."""
    if corpus not in SOURCES:
        raise RelextError(f"unknown corpus {corpus!r}; choose one of {', '.join(SOURCES)}")
    src = SOURCES[corpus]
    base = (base_url or src["base_url"]).rstrip("/")
    out = Path(dest) / corpus
    out.mkdir(parents=True, exist_ok=True)
    for name in src["files"]:
        data = _fetch(f"{base}/{name}", timeout)
        if corpus == "chinese_literature":
            n = _extract_relation_extraction(data, out)
            print(f"{name}: {n} files → {out / 'relation_extraction'}")
        else:
            (out / name).write_bytes(data)
            print(f"{name}: {len(data):,} bytes → {out / name}")
    return out
