"""A digital twin for robots with no cameras attached here: the task's MuJoCo scene, its arms driven by the joint
positions the robot measures, rendered as the robot's cameras.

An emulated robot (:mod:`vla_sdk.robots.aloha2_emulated`) has servos but no world: :class:`TwinRobot` wraps any
:class:`vla_sdk.protocols.Robot` so that each ``observe()`` reads the robot, steps the twin one control period with
the measured state as its joint targets (the twin's objects move when its arms push or grasp them), and returns the
robot's state with the twin's camera images and the task's instruction; ``status()`` is the task's verdict on the
twin. A policy run on it sees what it would see on the robot, if the robot's world were the simulated scene.

    with EmulatedAloha2(workdir) as config:
        robot = TwinRobot(Aloha2Robot(config), "aloha2/transfer_cube", cameras=("cam_high",), image_size=(240, 320))
        robot.connect()           # the robot connects, the twin resets to its seed, its camera thread starts
        obs = robot.observe()     # {"images": {"cam_high": newest frame}, "state": the servos', "instruction": ...}

The twin's cameras run as cameras do, asynchronously at their own rate (software rendering here gives 240x320 at
~20-60 frames/s, below the 50 Hz control rate): ``observe()`` returns the newest frame, as a camera driver would.

:class:`ScriptedHand` is the person at the leader arms, for emulated teleoperation: each control step it asks the
task's scripted expert (on the twin) for the next pose and pushes the emulated leader servos there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from vla_sdk.episode import tile
from vla_sdk.errors import InputError, RuntimeFailure
from vla_sdk.model.config import image_hw
from vla_sdk.protocols import Robot, robot_features
from vla_sdk.sim.env import VlaEnv
from vla_sdk.sim.render import CameraRenderer


class TwinCameras:
    """The twin's cameras as a camera device: a thread renders ``cameras`` of ``physics`` at up to ``hz`` frames per
    second (as fast as this machine allows below that), :meth:`latest` returns the newest images. Rendering holds
    ``lock`` only while it reads the scene, so the control loop steps the physics meanwhile."""

    def __init__(self, physics, cameras: tuple[str, ...], image_size: tuple[int, int], hz: float, lock):
        self.physics, self.cameras, self.image_size, self.hz, self.lock = physics, cameras, image_size, hz, lock
        self.frames = 0  # frames rendered so far
        self._images: dict | None = None
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="twin cameras", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            renderer = CameraRenderer(self.physics.model, self.cameras, self.image_size)  # its GL context: this thread
        except BaseException as e:  # shown by latest(), in the caller's thread
            self._error = e
            self._ready.set()
            return
        try:
            while not self._stop.is_set():
                t = time.perf_counter()
                self._images = renderer.render(self.physics.data, self.lock)
                self.frames += 1
                self._ready.set()
                self._stop.wait(max(0.0, 1.0 / self.hz - (time.perf_counter() - t)))
        except BaseException as e:
            self._error = e
            self._ready.set()
        finally:
            renderer.close()

    def latest(self, timeout_s: float = 30.0) -> dict:
        """The newest images {camera: uint8[h, w, 3]} (waits for the first frame)."""
        if not self._ready.wait(timeout_s):
            raise RuntimeFailure(f"the twin's cameras gave no frame in {timeout_s:g} s")
        if self._error is not None:
            raise self._error
        return self._images

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class TwinRobot:
    """``robot`` (a :class:`vla_sdk.protocols.Robot`) seen through the twin of ``task`` (a ROBOT/TASK for the same
    embodiment), whose ``cameras`` are rendered at ``image_size`` (height, width) by :class:`TwinCameras` at up to
    ``camera_hz``. Satisfies the Robot protocol itself; ``status()``, ``frame()`` and ``instruction`` come from the
    twin. Each ``observe()`` steps the twin one control period toward the state the robot measured."""

    def __init__(
        self,
        robot: Robot,
        task: str,
        cameras: tuple[str, ...],
        image_size: tuple[int, int] | int,
        seed: int = 0,
        camera_hz: float = 30.0,
    ):
        self.robot = robot
        self.world = VlaEnv(task, cameras=(), control_hz=robot.control_hz)  # the images come from TwinCameras
        if self.world.embodiment.name != robot.embodiment.name:
            raise InputError(f"--task {task} is for {self.world.embodiment.name}, the robot is {robot.embodiment.name}")
        unknown = [c for c in cameras if c not in self.world.embodiment.cameras]
        if unknown:
            raise InputError(
                f"{task}: unknown camera(s) {unknown}; {robot.embodiment.name} has "
                f"{list(self.world.embodiment.cameras)}"
            )
        self.embodiment = robot.embodiment
        self.control_hz = robot.control_hz
        self.seed = seed
        self.instruction = ""
        self.cameras = tuple(cameras)
        self._lock = threading.Lock()
        self._camera = TwinCameras(self.world.physics, self.cameras, image_hw(image_size), camera_hz, self._lock)
        self._success = False
        self.observation_features, self.action_features = robot_features(
            self.embodiment, self.cameras, image_hw(image_size)
        )

    @property
    def is_connected(self) -> bool:
        return self.robot.is_connected

    def connect(self) -> None:
        """Connect the robot, start the twin's episode from ``seed`` (its objects where that seed puts them) with the
        twin's arms where the robot stands, and its cameras."""
        with self._lock:
            self.world.reset(seed=self.seed)
        if self.cameras:  # the first frame comes before the robot's bus watchdog is armed (it takes ~1 s here)
            self._camera.start()
            self._camera.latest()
        self.robot.connect()
        self.start_episode(self.seed)

    def start_episode(self, seed: int) -> None:
        """Reset the twin's scene to ``seed`` (objects where that seed puts them, arms at home), then step it to the
        robot's measured state (bring the robot home first, or the twin's arms jump to where it stands)."""
        self.seed = seed
        with self._lock:
            self.world.reset(seed=seed)
            self.instruction = self.world.instruction
        self._success = False
        self.follow(self.robot.observe()["state"])

    def disconnect(self) -> None:
        self._camera.stop()
        try:
            self.robot.disconnect()
        finally:
            self.world.close()

    def observe(self) -> dict:
        """The robot's observation, with the twin stepped toward its measured state and the newest twin images."""
        obs = self.robot.observe()
        self.follow(obs["state"])
        images = self._camera.latest() if self.cameras else {}
        return {**obs, "images": {**obs.get("images", {}), **images}, "instruction": self.instruction}

    def follow(self, state: np.ndarray) -> None:
        """Step the twin one control period with ``state`` [A] as its joint targets."""
        with self._lock:
            _, _, success, _, _ = self.world.step(np.asarray(state, dtype=np.float64))
        self._success = self._success or bool(success)

    def send_action(self, action: np.ndarray) -> np.ndarray:
        return self.robot.send_action(action)

    def status(self) -> dict:
        """The task's verdict on the twin (success at any step); a twin never ends an episode by itself."""
        return {"success": self._success, "done": False}

    def frame(self) -> np.ndarray:
        """The twin's newest camera images, tiled (for `vla run --video`)."""
        images = self._camera.latest()
        return tile([images[c] for c in self.cameras])


class ScriptedHand:
    """The task's scripted expert moving emulated leader arms: ``step()`` computes the expert's next pose on
    ``twin`` (built after the twin's reset, on its first call) and calls ``push(pose)`` with it, as a person's hand
    would move the leaders. Only for emulation: the expert reads the twin's privileged state."""

    def __init__(self, twin: TwinRobot, push: Callable[[np.ndarray], None]):
        self.twin, self.push = twin, push
        self.expert = None

    def reset(self) -> None:
        self.expert = None

    def step(self) -> np.ndarray:
        if self.expert is None:
            self.expert = self.twin.world.make_expert()
        pose = np.asarray(self.expert.act(), dtype=np.float64)
        self.push(pose)
        return pose
