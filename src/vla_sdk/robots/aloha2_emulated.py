"""An emulated ALOHA 2: one :class:`~vla_sdk.robots.dynamixel_emulator.EmulatorProcess` per follower arm, with the
arm's servo IDs and models, standing at a given pose, and a calibration file for them; the robot config it returns
points at the emulators' pseudo-terminals, so the whole :class:`~vla_sdk.robots.aloha2.Aloha2Robot` runs with no
hardware (tests, dry runs, `vla run --robot aloha2-emulated`).

    with EmulatedAloha2(workdir) as config:          # workdir receives aloha2_calibration.json
        with Aloha2Robot(config) as robot:
            robot.observe()["state"]                  # the embodiment's home pose

    emu = EmulatedAloha2(workdir, leaders=True)       # also the two leader arms (WidowX 250 servos, torque off)
    config = emu.start()
    emu.push_leaders(pose)                            # a hand moves the leaders to ``pose`` [14]
    Aloha2Leader(emu.leader_config).read()            # ~ pose (to the tick)
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from vla_sdk.embodiment import load_embodiment
from vla_sdk.robots.aloha2 import (
    ARMS,
    ROBOT,
    VX300S_LAYOUT,
    WX250S_LAYOUT,
    Aloha2Config,
    Aloha2LeaderConfig,
    ArmUnits,
    Calibration,
    default_calibration,
)
from vla_sdk.robots.dynamixel_emulator import EmulatorProcess, ServoConfig

CALIBRATION_FILE = "aloha2_calibration.json"
LEADER_CALIBRATION_FILE = "aloha2_leader_calibration.json"


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
        leaders: bool = False,
        **config_overrides,
    ):
        self.workdir = Path(workdir)
        self.embodiment = load_embodiment(ROBOT)
        self.pose = np.asarray(self.embodiment.home if pose is None else pose, dtype=np.float64)
        self.calibration = calibration or default_calibration()
        self.config_overrides = config_overrides
        self.layout = config_overrides.get("layout", VX300S_LAYOUT)
        self.leaders = leaders
        self.leader_calibration = default_calibration(WX250S_LAYOUT)
        self.leader_units = ArmUnits(self.embodiment, WX250S_LAYOUT, self.leader_calibration)
        self.emulators: dict[str, EmulatorProcess] = {}  # "left", "right" (followers), "leader_left", "leader_right"
        self.config: Aloha2Config | None = None
        self.leader_config: Aloha2LeaderConfig | None = None

    def servo_configs(self, arm: str, leader: bool = False) -> list[ServoConfig]:
        """The emulated servos of ``arm`` (a follower's, or a leader's): layout IDs and models, each at its ticks
        for ``pose``."""
        layout = WX250S_LAYOUT if leader else self.layout
        units = self.leader_units if leader else ArmUnits(self.embodiment, layout, self.calibration)
        ticks = units.to_ticks(self.pose)[arm]
        return [ServoConfig(s.id, s.model, position=int(t)) for s, t in zip(layout, ticks, strict=True)]

    def push_leaders(self, pose: np.ndarray) -> None:
        """A hand moves both leader arms to ``pose`` [A] (the embodiment's units; the leaders' torque is off)."""
        ids = [s.id for s in WX250S_LAYOUT]
        for arm, ticks in self.leader_units.to_ticks(pose).items():
            self.emulators[f"leader_{arm}"].push(dict(zip(ids, ticks.tolist(), strict=True)))

    def start(self) -> Aloha2Config:
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.calibration.save(self.workdir / CALIBRATION_FILE)
        try:
            for arm in ARMS:
                self.emulators[arm] = EmulatorProcess(self.servo_configs(arm)).start()
                if self.leaders:
                    self.emulators[f"leader_{arm}"] = EmulatorProcess(self.servo_configs(arm, leader=True)).start()
        except BaseException:
            self.stop()
            raise
        ports = {arm: self.emulators[arm].port for arm in ARMS}
        if self.leaders:
            leader_path = self.leader_calibration.save(self.workdir / LEADER_CALIBRATION_FILE)
            leader_ports = {arm: self.emulators[f"leader_{arm}"].port for arm in ARMS}
            self.leader_config = Aloha2LeaderConfig(leader_ports, leader_path, timeout_s=0.5)
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


ROBOT_CONFIG_FILE = "robot.json"


def write_robot_config(emu: EmulatedAloha2) -> Path:
    """A robot config file (:mod:`vla_sdk.robots.config`) in ``emu.workdir`` for its running emulators: the ports,
    the calibration files and ``"cameras": "twin"``; `vla run --robot FILE` then drives them."""
    cfg = emu.config
    raw = {
        "format_version": 1,
        "driver": ROBOT,
        "followers": {
            "ports": dict(cfg.ports),
            "calibration": Path(cfg.calibration).name,
            "timeout_s": cfg.timeout_s,
            "watchdog_s": cfg.watchdog_s,
        },
        "cameras": "twin",
    }
    if emu.leader_config is not None:
        lead = emu.leader_config
        raw["leaders"] = {"ports": dict(lead.ports), "calibration": Path(lead.calibration).name, "timeout_s": 0.5}
    path = emu.workdir / ROBOT_CONFIG_FILE
    path.write_text(json.dumps(raw, indent=2) + "\n")
    return path


def serve_emulated(emu: EmulatedAloha2, log, should_stop, poll_s: float = 0.05) -> list[dict]:
    """Run ``emu`` (started) until ``should_stop()``: each watchdog trip is logged as it comes (arm, servo ID, the
    silence before it in ms) and returned, with ``"arm"`` added, as the emulators report them."""
    events = []

    def collect():
        for arm, proc in emu.emulators.items():
            for e in proc.events(timeout_s=0):
                e["arm"] = arm
                events.append(e)
                log(f"{arm} servo {e['id']}: bus watchdog stopped it after {e['silent_ms']:.0f} ms without packets")

    while not should_stop():
        collect()
        time.sleep(poll_s)
    time.sleep(poll_s)
    collect()  # what came in meanwhile
    return events
