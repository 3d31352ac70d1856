"""`vla dataset info`: a summary of a dataset folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vla_sdk.data.reader import Dataset


def dataset_info(root: str | Path) -> dict:
    ds = Dataset(root)  # refuses a damaged dataset naming the file (InputError / NotFound)
    vla = ds.info["vla"]
    notes = vla.get("timing_notes")
    labels = [e["success"] for e in ds.episodes if e["success"] is not None]
    lengths = [e["length"] for e in ds.episodes]
    return {
        "path": str(ds.root),
        "codebase_version": ds.info["codebase_version"],
        "robot": ds.info.get("robot_type"),
        "task": vla.get("task"),
        "episodes": ds.num_episodes,
        "frames": ds.num_frames,
        "fps": ds.fps,
        "seconds": round(ds.num_frames / ds.fps, 2),
        "episode_length": {"min": min(lengths), "mean": float(np.mean(lengths)), "max": max(lengths)}
        if lengths
        else None,
        "features": {k: {"dtype": f["dtype"], "shape": f["shape"]} for k, f in ds.features.items()},
        "cameras": ds.cameras,
        "tasks": ds.tasks,
        "success_rate": float(np.mean(labels)) if labels else None,
        "labelled_episodes": len(labels),
        "size_bytes": ds.size_bytes(),
        "timing_notes": [str(n) for n in notes] if isinstance(notes, list) else [],
    }


def format_info(i: dict) -> str:
    lines = [
        f"{i['path']}  (LeRobot {i['codebase_version']}, robot {i['robot']}, task {i['task']})",
        f"  episodes  {i['episodes']}   frames {i['frames']}   fps {i['fps']}   ({i['seconds']:.1f} s of data)",
    ]
    if i["episode_length"]:
        el = i["episode_length"]
        lines.append(f"  length    min {el['min']}  mean {el['mean']:.1f}  max {el['max']} frames")
    sr = "n/a" if i["success_rate"] is None else f"{i['success_rate']:.2f} over {i['labelled_episodes']} episodes"
    lines.append(f"  success   {sr}")
    lines.append(f"  size      {i['size_bytes'] / 1e6:.1f} MB")
    lines.append("  features")
    lines += [f"    {k:<34} {f['dtype']:<8} {tuple(f['shape'])}" for k, f in i["features"].items()]
    lines.append(f"  tasks ({len(i['tasks'])})")
    lines += [f"    {t}" for t in i["tasks"]]
    lines += [f"  note: {n}" for n in i["timing_notes"]]
    return "\n".join(lines)
