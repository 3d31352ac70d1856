"""The committed sample datasets in demos/ (demos/README.md): each validates, its files match their SHA-256 checksums,
it holds the task, episodes, cameras and image size its README row says, and it stays small."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vla_sdk.data import layout as L
from vla_sdk.data.checksums import changed_files, unchecked_episodes
from vla_sdk.data.reader import Dataset
from vla_sdk.data.validate import validate

DEMOS = Path(__file__).resolve().parents[2] / "demos"
ROW = re.compile(
    r"^\| `(?P<name>sample_[\w]+)` \| `(?P<task>[\w/]+)` \| (?P<episodes>\d+) \| (?P<cameras>[^|]+) \| "
    r"(?P<h>\d+)x(?P<w>\d+) \|"
)


def _rows() -> list[dict]:
    rows = [m.groupdict() for line in (DEMOS / "README.md").read_text().splitlines() if (m := ROW.match(line))]
    for r in rows:
        r["cameras"] = re.findall(r"`(\w+)`", r["cameras"])
    return rows


def test_the_readme_lists_every_sample_folder():
    listed = sorted(r["name"] for r in _rows())
    on_disk = sorted(p.name for p in DEMOS.iterdir() if p.is_dir() and p.name.startswith("sample_"))
    assert listed and listed == on_disk
    assert {r["task"].split("/")[0] for r in _rows()} == {"aloha2", "fr3"}  # one per robot


@pytest.mark.parametrize("row", _rows(), ids=lambda r: r["name"])
def test_sample_validates_matches_its_checksums_and_its_readme(row):
    root = DEMOS / row["name"]
    assert [str(p) for p in validate(root) if p.severity == "error"] == []
    episodes = L.read_episodes(root)
    assert unchecked_episodes(episodes) == []  # every episode carries checksums ...
    assert changed_files(root, episodes) == []  # ... and every file still matches them
    ds = Dataset(root)
    assert ds.info["vla"]["task"] == row["task"] and ds.num_episodes == int(row["episodes"])
    h, w = int(row["h"]), int(row["w"])
    cams = {k.removeprefix("observation.images."): f["shape"] for k, f in ds.features.items() if f["dtype"] == "video"}
    assert cams == {c: [h, w, 3] for c in row["cameras"]}
    ep = ds.episode(0)
    assert set(ep["images"]) == set(row["cameras"]) and ep["images"][row["cameras"][0]].shape[1:] == (h, w, 3)
    assert not list((root / L.STAGING).glob("*"))  # nothing staged is committed (.gitignore: .staging/)
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) < 512 * 1024  # well under 1 MB
