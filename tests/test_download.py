"""The download command against a fake server on loopback and a local file URL."""

from __future__ import annotations

import functools
import http.server
import io
import json
import threading
import zipfile

import pytest

from relext_ray.cli.download import main
from relext_ray.corpus.download import SOURCES, download
from relext_ray.corpus.sources import discover
from relext_ray.errors import RelextError


def _mirror(root):
    conll = root / "conll04"
    conll.mkdir(parents=True)
    rec = [{"tokens": ["Anna", "in", "Oslo"], "relations": [{"head": 0, "tail": 1, "type": "Live_In"}],
            "entities": [{"type": "Peop", "start": 0, "end": 1}, {"type": "Loc", "start": 2, "end": 3}]}]
    for name in SOURCES["conll04"]["files"]:
        (conll / name).write_text(json.dumps(rec))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("Repo-master/README.md", "readme")
        for split in ("Training", "Validation", "Testing"):
            zf.writestr(f"Repo-master/relation_extraction/{split}/1.txt", "甲在乙。")
            zf.writestr(f"Repo-master/relation_extraction/{split}/1.ann",
                        "T1\tPerson 0 1\t甲\nT2\tLocation 2 3\t乙\nR1\tLocated Arg1:T1 Arg2:T2\t\n")
    cl = root / "cl"
    cl.mkdir()
    (cl / "master.zip").write_bytes(buf.getvalue())
    return conll, cl


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "www"
    _mirror(root)
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_conll04_over_http(tmp_path, server):
    out = download("conll04", tmp_path / "data", base_url=f"{server}/conll04")
    assert sorted(p.name for p in out.iterdir()) == sorted(SOURCES["conll04"]["files"])
    assert set(discover("conll04", out)) == {"train", "dev", "test"}


def test_chinese_literature_from_a_file_url(tmp_path):
    _, cl = _mirror(tmp_path / "mirror")
    out = download("chinese_literature", tmp_path / "data", base_url=cl.as_uri())
    splits = discover("brat", out)
    assert {s: [p.name for p in ps] for s, ps in splits.items()} == {
        "train": ["1.txt"], "dev": ["1.txt"], "test": ["1.txt"]}
    assert not (out / "README.md").exists()


def test_unreachable_mirror_is_a_clear_error(tmp_path, capsys, server):
    with pytest.raises(RelextError, match=r"cannot download .*/nope/conll04_train\.json"):
        download("conll04", tmp_path, base_url=f"{server}/nope")
    assert main(["conll04", "--dest", str(tmp_path), "--base-url", f"{server}/nope"]) == 2
    assert capsys.readouterr().err.startswith("error: cannot download")
