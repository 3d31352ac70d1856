"""`vla record --teleop leader`: a person moves the leader arms, the followers mirror them, and each control step is
recorded in the same dataset schema as in simulation (state = the followers' joints, action = the leaders' joints),
crash-safe as every recording (:class:`vla_sdk.data.writer.DatasetWriter`: an episode is committed whole or not at
all; Ctrl-C discards only the episode in progress).

Per episode, as ALOHA does it: the leaders are driven to the start pose (torque on) while the followers follow,
then the leaders are released and the episode runs for ``episode_seconds`` at the robot's control rate. On a robot
with a twin (emulated), the twin's scene starts from the episode's seed, so the episode can be replayed in simulation
(`vla record --teleop replay`), and the task's verdict on the twin is its success label; on hardware there is no
verdict (recorded as not successful) and the seed only numbers the episode.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from vla_sdk.data.record import RecordConfig, open_dataset, summarize
from vla_sdk.episode import run_episode
from vla_sdk.errors import UsageError
from vla_sdk.interrupt import StopRequest
from vla_sdk.robot import RobotSource
from vla_sdk.robots.config import open_robot
from vla_sdk.sim import get_task

START_SECONDS = 2.0  # time to bring leaders and followers to the start pose before each episode


def go_to_start(robot, leader, pose: np.ndarray, seconds: float, should_stop: Callable[[], bool]) -> None:
    """Drive the leaders (torque on) and the followers from where they stand to ``pose`` along a straight line in
    joint space, paced at the robot's rate; then release the leaders."""
    hz = robot.control_hz
    start_f = np.asarray(robot.observe()["state"], dtype=np.float64)
    start_l = np.asarray(leader.read(), dtype=np.float64)
    n = max(1, int(round(seconds * hz)))
    t_next = time.perf_counter()
    for k in range(1, n + 1):
        if should_stop():
            break
        s = k / n
        leader.hold(start_l + s * (pose - start_l))
        robot.send_action(start_f + s * (pose - start_f))
        robot.observe()  # keeps a twin in step; the clamps read the present position
        t_next += 1.0 / hz
        time.sleep(max(0.0, t_next - time.perf_counter()))
    leader.release()


class _Committer:
    """Commits episodes in a thread while the arms move on; :meth:`join` waits and raises what the commit raised."""

    def __init__(self):
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self, ep, success: bool, on_done: Callable[[], None]) -> None:
        self.join()
        self.thread = threading.Thread(target=self._run, args=(ep, success, on_done), name="commit episode")
        self.thread.start()

    def _run(self, ep, success: bool, on_done: Callable[[], None]) -> None:
        try:
            ep.commit(success=success)
            on_done()
        except BaseException as e:  # raised in the recording thread by join()
            self.error = e

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.error is not None:
            error, self.error = self.error, None
            raise error


def record_leader(cfg: RecordConfig, progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Record until the dataset holds ``cfg.episodes`` episodes from ``cfg.robot``'s leader arms."""
    task = get_task(cfg.task)
    from vla_sdk.embodiment import load_embodiment

    emb = load_embodiment(task.robot)
    cameras = tuple(cfg.cameras or emb.cameras)
    image_size = tuple(cfg.image_size or emb.image_size)
    if cfg.fps is not None and cfg.fps != emb.control_hz:
        raise UsageError(f"--fps: a robot records at its control rate ({emb.control_hz:g} Hz), got {cfg.fps}")
    hz = float(emb.control_hz)
    seconds = cfg.episode_seconds or task.max_steps / hz
    results = []
    interrupted = StopRequest().install()  # Ctrl-C: discard the episode in progress, keep the committed ones
    t0 = time.perf_counter()
    try:
        with open_robot(cfg.robot, task=cfg.task, cameras=cameras, image_size=image_size, leader=True) as setup:
            robot, leader, hand = setup.robot, setup.leader, setup.hand
            twin = getattr(robot, "world", None)  # a TwinRobot: its scene gives object positions and the verdict
            writer = open_dataset(cfg, twin, embodiment=emb, cameras=cameras, image_size=image_size, fps=hz)
            bar = tqdm(
                total=cfg.episodes,
                initial=writer.num_episodes,
                desc=f"record {cfg.task}",
                unit="ep",
                disable=not progress,
            )
            source = RobotSource(robot)
            leader.connect()
            try:
                source.reset()  # connects the robot once (a twin starts its scene from its seed)
                committer = _Committer()
                k = writer.num_episodes
                while k < cfg.episodes and not interrupted.requested:
                    seed = cfg.seed + k
                    # the last episode is written (video encoding: seconds) while the arms go to the start pose,
                    # so the buses never fall silent (their watchdog would stop the arms)
                    home = np.asarray(emb.home, np.float64)
                    go_to_start(robot, leader, home, START_SECONDS, lambda: interrupted.requested)
                    committer.join()
                    if interrupted.requested:
                        break
                    if twin is not None:
                        robot.start_episode(seed)
                    if hand is not None:
                        hand.reset()
                    ep = writer.begin_episode(
                        getattr(robot, "instruction", "") or task.name.replace("_", " "),
                        seed=seed,
                        extra={"teleop": "leader", "robot": cfg.robot},
                    )

                    def act(obs: dict) -> np.ndarray:
                        if hand is not None:
                            hand.step()  # emulation: the scripted hand moves the leaders first
                        return leader.read()

                    def frame(t: int, obs: dict, action: np.ndarray, ep=ep) -> None:
                        env_state = twin.physics.object_positions() if twin is not None else None
                        ep.add(obs.get("images", {}), obs["state"], action, env_state)

                    result = run_episode(
                        source,
                        act,
                        hz=hz,
                        max_seconds=seconds,
                        paced=True,
                        on_frame=frame,
                        should_stop=lambda: interrupted.requested,
                    )
                    if interrupted.requested:
                        ep.discard()
                        break
                    success = bool(result.success)
                    results.append({"episode_index": k, "seed": seed, "success": success, "frames": len(ep)})
                    log(f"episode {k}: {len(ep)} frames, {result.late_steps} late steps, success={success}")
                    committer.start(ep, success, lambda: bar.update(1))
                    k += 1
                committer.join()
            finally:
                bar.close()
                leader.disconnect()
                robot.disconnect()
    finally:
        interrupted.restore()
    return summarize(cfg, writer, results, t0, interrupted.requested)
