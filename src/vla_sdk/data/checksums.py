"""Content checksums of a dataset's committed files.

When an episode commits, the SHA-256 of its data file and of each of its mp4s is stored in its meta/episodes row
(``vla/sha256/<data | video key>`` columns, which LeRobot's reader ignores). :func:`changed_files` re-hashes them:
any flipped, zeroed, truncated or replaced byte in a committed file is found and named. Episodes recorded before
checksums existed have none; :func:`unchecked_episodes` says which.
"""

from __future__ import annotations

from pathlib import Path

from vla_sdk.data import layout as L
from vla_sdk.errors import InputError


def changed_files(root: str | Path, episodes: list[dict]) -> list[tuple[str, str]]:
    """(path relative to ``root``, what is wrong) for every checksummed file that is missing or whose bytes changed,
    given the episode rows of :func:`layout.read_episodes`."""
    root = Path(root)
    out = []
    for ep in episodes:
        hashes = ep.get("sha256") or {}
        for key, rel in L.episode_files(ep["episode_index"], [k for k in hashes if k != "data"]).items():
            want = hashes.get(key)
            if want is None:
                continue
            path = root / rel
            if not path.is_file():
                out.append((rel, f"missing (episode {ep['episode_index']} committed it)"))
                continue
            got = L.file_sha256(path)
            if got != want:
                out.append(
                    (
                        rel,
                        f"content changed since episode {ep['episode_index']} was committed: SHA-256 "
                        f"{got[:12]}..., recorded {want[:12]}...",
                    )
                )
    return out


def unchecked_episodes(episodes: list[dict]) -> list[int]:
    """Indices of episodes that carry no checksums (recorded before this SDK version stored them)."""
    return [ep["episode_index"] for ep in episodes if not ep.get("sha256")]


def require_intact(root: str | Path, episodes: list[dict], flag: str = "--ignore-checksums") -> None:
    """Raise :class:`InputError` naming every changed file; ``flag`` is the option that skips this check."""
    bad = changed_files(root, episodes)
    if bad:
        listed = "; ".join(f"{rel}: {why}" for rel, why in bad[:5]) + (
            f"; ... ({len(bad)} in all)" if len(bad) > 5 else ""
        )
        raise InputError(
            f"{root}: {len(bad)} committed file(s) fail their checksums ({listed}). The data is not what was "
            f"recorded; restore it from a copy, or pass {flag} to use it as it is"
        )
