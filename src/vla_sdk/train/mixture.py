"""Training data of several robots and datasets in one run: who is which robot, and batches that mix them.

``vla train --data A --data B ...`` groups its datasets by robot (what each declares, else ``--robot``, else its
``robot_type``). Each robot gets its own embodiment binding, normalization statistics, delta mask and camera slots
(:class:`RobotData`), and its own :class:`~vla_sdk.transforms.PolicyTransform`. A batch draws its frames over every
robot's frames at once (each dataset's share set by ``--data-weights``, else by its frame count), and each sample is
made by its own robot's transform: its state/action dims masked to its robot's, its cameras in their slots, the
slots of cameras its robot lacks masked out (zero pixels the model never attends to).

Within one robot every dataset must share the frame rate (an action chunk is a span of time); camera images of
another size or aspect ratio than the model's are resized, and the run's log says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vla_sdk.data import layout as L
from vla_sdk.data.reader import Dataset
from vla_sdk.errors import InputError
from vla_sdk.train.bind import bind_embodiment
from vla_sdk.train.loader import FrameStore
from vla_sdk.transforms import PolicyTransform


@dataclass
class RobotData:
    """One robot's share of a run: its datasets (indexes into the run's ``--data``), binding and training parts."""

    name: str
    dataset_ids: list[int]
    embodiment: dict
    action_names: list[str]
    cameras: tuple[str, ...]  # the model camera slots this robot fills, in the data's order
    stats: dict = field(default_factory=dict)
    delta_mask: list[bool] | None = None
    store: FrameStore | None = None
    val_store: FrameStore | None = None
    transform: PolicyTransform | None = None

    def parts(self) -> dict:
        """What a checkpoint keeps of this robot (see :mod:`vla_sdk.multi_robot`)."""
        return {
            "embodiment": self.embodiment,
            "action_names": self.action_names,
            "stats": self.stats,
            "delta_mask": self.delta_mask,
            "cameras": list(self.cameras),
        }


def _declared_robot(ds: Dataset, robot: str | None) -> str:
    """The robot a dataset is of: what it declares, else ``--robot``'s (a name or a file), else its robot_type."""
    recorded = (ds.info.get("vla") or {}).get("embodiment") or {}
    return recorded.get("name") or robot or ds.info.get("robot_type") or "?"


def group_by_robot(datasets: list[Dataset], robot: str | None) -> list[RobotData]:
    """The run's robots, in the order their first dataset comes, each bound (:func:`bind_embodiment`) and checked:
    one frame rate and one set of cameras per robot."""
    groups: dict[str, list[int]] = {}
    for i, ds in enumerate(datasets):
        groups.setdefault(_declared_robot(ds, robot), []).append(i)
    out = []
    for ids in groups.values():
        mine = [datasets[i] for i in ids]
        first = mine[0]
        for ds in mine[1:]:
            if ds.fps != first.fps:
                raise InputError(
                    f"{ds.root} is recorded at {ds.fps} fps, {first.root} at {first.fps} fps: datasets of one robot "
                    "must share the frame rate (an action chunk is a span of time); record or convert them at one"
                )
            if sorted(ds.cameras) != sorted(first.cameras):
                raise InputError(
                    f"{ds.root} has cameras {ds.cameras}, {first.root} has {first.cameras}: datasets of one robot "
                    "must have the same cameras"
                )
        declares = bool(((first.info.get("vla") or {}).get("embodiment") or {}).get("name"))
        emb = bind_embodiment(mine, None if declares and len(groups) > 1 else robot)
        out.append(
            RobotData(
                name=emb["name"],
                dataset_ids=ids,
                embodiment=emb,
                action_names=list(first.features["action"]["names"]),
                cameras=tuple(first.cameras),
            )
        )
    names = [r.name for r in out]
    if len(set(names)) != len(names):
        raise InputError(f"--data: datasets bind to the robots {names}; give each robot's datasets one declaration")
    return out


def union_cameras(robots: list[RobotData]) -> tuple[str, ...]:
    """Every robot's cameras as the model's slots, bound by name (a camera two robots share is one slot)."""
    slots: list[str] = []
    for r in robots:
        slots += [c for c in r.cameras if c not in slots]
    return tuple(slots)


def image_size_notes(datasets: list[Dataset], robots: list[RobotData], size: tuple[int, int]) -> list[str]:
    """One line per dataset camera whose images the frame cache resizes to the model's ``size`` (H, W): said in
    the run's log, never done silently; a different aspect ratio is stretched."""
    notes = []
    for r in robots:
        for i in r.dataset_ids:
            ds = datasets[i]
            for cam in ds.cameras:
                if cam not in r.cameras:
                    continue
                h, w = ds.features[L.IMAGE_PREFIX + cam]["shape"][:2]
                if (h, w) == tuple(size):
                    continue
                how = "stretched to" if abs(w / h - size[1] / size[0]) > 0.01 else "resized to"
                notes.append(f"{ds.root}: camera {cam!r} {h}x{w} is {how} the model's {size[0]}x{size[1]}")
    return notes


class Mixture:
    """Batches drawn over the frames of several robots' stores (``stores[i]`` made by ``transforms[i]``).

    ``weights``: one per dataset of the run (None: every frame equally likely, the one-store case exactly as
    :meth:`FrameStore.batch` draws it, so a one-robot run's batches do not change)."""

    def __init__(self, stores: list[FrameStore], transforms: list[PolicyTransform], weights: list[float] | None):
        self.stores, self.transforms = stores, transforms
        self.config = transforms[0].config
        sizes = [len(s) for s in stores]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)])
        self.p = None
        if weights is not None:
            frame_ds = np.concatenate([s.frame_datasets() for s in stores])
            w = np.asarray(weights, np.float64)
            per_frame = w[frame_ds] / np.bincount(frame_ds, minlength=len(w))[frame_ds]
            self.p = per_frame / per_frame.sum()

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def share(self) -> list[float]:
        """Each store's expected share of a batch."""
        if self.p is None:
            return [len(s) / len(self) for s in self.stores]
        return [float(self.p[a:b].sum()) for a, b in zip(self.offsets[:-1], self.offsets[1:], strict=True)]

    def batch(self, batch_size: int, horizon: int, rng: np.random.Generator, part: tuple[int, int] = (0, 1)) -> dict:
        """A training batch as :meth:`FrameStore.batch` makes one, its rows from every store."""
        if len(self.stores) == 1 and self.p is None:
            return self.stores[0].batch(self.transforms[0], batch_size, horizon, rng, part)
        i, n = part
        if batch_size % n:
            raise InputError(f"batch size {batch_size} does not split into {n} parts")
        b = batch_size // n
        idx = np.sort(rng.choice(len(self), size=batch_size, p=self.p))[i * b : (i + 1) * b]
        pieces = []
        for j, (store, transform) in enumerate(zip(self.stores, self.transforms, strict=True)):
            mine = idx[(idx >= self.offsets[j]) & (idx < self.offsets[j + 1])] - self.offsets[j]
            if len(mine):
                pieces.append(self._all_slots(store.rows(transform, mine, horizon)))
        return _concat(pieces)

    def _all_slots(self, batch: dict) -> dict:
        """Every model camera slot in the batch: one the robot lacks as zero uint8 pixels, masked out."""
        n = len(batch["state"])
        images, masks = dict(batch["images"]), dict(batch["image_masks"])
        for cam in self.config.cameras:
            if cam not in images:
                images[cam] = np.zeros((n, *self.config.image_size, 3), np.uint8)
                masks[cam] = np.zeros((n,), bool)
        return {**batch, "images": images, "image_masks": masks}


def _concat(pieces: list[dict]) -> dict:
    out = {}
    for key, first in pieces[0].items():
        if isinstance(first, dict):
            out[key] = {k: np.concatenate([p[key][k] for p in pieces]) for k in first}
        else:
            out[key] = np.concatenate([p[key] for p in pieces])
    return out
