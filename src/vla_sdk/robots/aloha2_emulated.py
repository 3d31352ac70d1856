"""An emulated ALOHA 2: one :class:`~vla_sdk.robots.dynamixel_emulator.EmulatorProcess` per follower arm, with the
arm's servo IDs and models, standing at a given pose, and a calibration file for them; the robot config it returns
points at the emulators' pseudo-terminals, so the whole :class:`~vla_sdk.robots.aloha2.Aloha2Robot` runs with no
hardware (tests, dry runs, `vla run --robot aloha2-emulated`).

    with EmulatedAloha2(workdir) as config:          # workdir receives aloha2_calibration.json
        with Aloha2Robot(config) as robot:
            robot.observe()["state"]                  # the embodiment's home pose
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from vla_sdk.embodiment import load_embodiment
from vla_sdk.robots.aloha2 import ARMS, ROBOT, VX300S_LAYOUT, Aloha2Config, Calibration, default_calibration
from vla_sdk.robots.dynamixel_emulator import EmulatorProcess, ServoConfig

CALIBRATION_FILE = "aloha2_calibration.json"


class EmulatedAloha2:
    """Start both arms' emulators (:meth:`start` or ``with``): the servos stand at ``pose`` [14] (default: the
    embodiment's home) under ``calibration`` (default: :func:`~vla_sdk.robots.aloha2.default_calibration`), which
    is written to ``workdir``. :attr:`config` (also what ``with`` gives) is an :class:`Aloha2Config` for them;
    ``config_overrides`` set its other fields (e.g. ``watchdog_s``)."""

    def __init__(
        self,
        workdir: str | Path,
        *,
        pose: np.ndarray | None = None,
        calibration: Calibration | None = None,
        **config_overrides,
    ):
        self.workdir = Path(workdir)
        self.embodiment = load_embodiment(ROBOT)
        self.pose = np.asarray(self.embodiment.home if pose is None else pose, dtype=np.float64)
        self.calibration = calibration or default_calibration()
        self.config_overrides = config_overrides
        self.layout = config_overrides.get("layout", VX300S_LAYOUT)
        self.emulators: dict[str, EmulatorProcess] = {}
        self.config: Aloha2Config | None = None

    def servo_configs(self, arm: str) -> list[ServoConfig]:
        """The emulated servos of ``arm``: layout IDs and models, each at its ticks for ``pose``."""
        ticks = {}
        for d, value in zip(self.embodiment.dims, self.pose, strict=True):
            a, _, joint = d.name.partition("/")
            if a != arm:
                continue
            for s in self.layout:
                if s.joint == joint:
                    ticks[s.name] = int(np.clip(np.rint(self.calibration.arms[arm][s.name].to_ticks(value)), 0, 4095))
        return [ServoConfig(s.id, s.model, position=ticks.get(s.name, 2048)) for s in self.layout]

    def start(self) -> Aloha2Config:
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.calibration.save(self.workdir / CALIBRATION_FILE)
        try:
            for arm in ARMS:
                self.emulators[arm] = EmulatorProcess(self.servo_configs(arm)).start()
        except BaseException:
            self.stop()
            raise
        ports = {arm: emu.port for arm, emu in self.emulators.items()}
        # the emulators share the host's CPUs: an answer can come late (the SDK alone waits ~34 ms); the floor costs
        # nothing while answers come, since a wait ends when its answer arrives
        fields = {"timeout_s": 0.5} | self.config_overrides
        self.config = dataclasses.replace(Aloha2Config(ports=ports, calibration=path), **fields)
        return self.config

    def stop(self) -> None:
        for emu in self.emulators.values():
            emu.stop()
        self.emulators = {}

    def __enter__(self) -> Aloha2Config:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
