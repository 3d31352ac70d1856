"""`vla record --teleop keyboard`: a person drives the end effector from a terminal, in real time.

The terminal is put in cbreak mode (keys arrive one at a time, unechoed; Ctrl-C still sends SIGINT) and restored on
every way out. Episodes run through the one episode loop, :func:`vla_sdk.episode.run_episode`, paced at the env's
control rate: before each step the pending keys are read (its ``should_stop``: a save, discard, redo or quit key
ends the episode before another step), moving the Cartesian target of the active end effector; the step's action
is IK's joint targets (one :class:`EndEffectorIK` for the robot, reset from the state at episode start) plus the
gripper openings. Each key press moves the target one increment (a held key repeats at the terminal's auto-repeat
rate). The episode stops stepping at the task's time limit or on success and is held, keys still read, until the
operator saves, discards or re-records it. The success label is the task's predicate when the episode is saved.
The UI goes to stderr, so ``--json`` output on stdout stays clean.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from collections import deque

import numpy as np

from vla_sdk.data.record import RecordConfig, object_positions, open_dataset, summarize
from vla_sdk.episode import GymSource, run_episode
from vla_sdk.errors import InputError
from vla_sdk.interrupt import StopRequest
from vla_sdk.sim.env import VlaEnv
from vla_sdk.sim.ik import EndEffectorIK

STEP = 0.005  # m per key press
YAW_STEP = np.deg2rad(5.0)  # rad per key press
MAX_LEAD = 0.03  # m: the target stays this close to the IK's pose (no wind-up against joint limits)
MIN_Z = 0.01  # m: lowest tool-site height (table tops are at z = 0 in every scene)
GRIP_SECONDS = 0.4  # a full gripper stroke takes this long
MOVES = {"w": (0, 1), "s": (0, -1), "a": (1, 1), "d": (1, -1), "r": (2, 1), "f": (2, -1)}  # key: (axis, sign)
SAVE, DISCARD, REDO, QUIT = ("n", "\r", "\n"), ("x",), ("z",), ("\x1b", "Q", "\x04")

HELP = """\
keyboard teleop: {task} ({episodes} episodes to {out})
  w/s  +x/-x     a/d  +y/-y     r/f  up/down     ({step:g} mm per press, world frame)
  q/e  yaw the tool left/right ({yaw:g} deg per press)
  space  open/close the gripper{tab}
  n/Enter  save the episode (success = the task's check now)
  x  discard it, next seed    z  discard it, same seed again    Esc/Q  quit (Ctrl-C too)
"""


def split_keys(text: str) -> list[str]:
    """Keys in a chunk of terminal input; escape sequences (arrow keys, F-keys) are dropped, a lone ESC kept."""
    keys, i = [], 0
    while i < len(text):
        if text[i] == "\x1b" and i + 1 < len(text) and text[i + 1] in "[O":
            i += 2
            while i < len(text) and not "@" <= text[i] <= "~":
                i += 1
        else:
            keys.append(text[i])
        i += 1
    return keys


class _Terminal:
    """stdin in cbreak mode for the ``with`` block; its settings are restored however the block ends."""

    def __init__(self, stream=None):
        stream = sys.stdin if stream is None else stream
        if not stream.isatty():
            raise InputError(
                "keyboard teleop needs an interactive terminal (stdin is not a TTY); "
                "record unattended with --teleop scripted"
            )
        self.fd = stream.fileno()
        self.pending: deque[str] = deque()

    def __enter__(self):
        self.saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)  # TCSAFLUSH: keys typed while loading are dropped
        return self

    def __exit__(self, *exc):
        termios.tcsetattr(self.fd, termios.TCSAFLUSH, self.saved)  # unread keys do not spill into the shell

    def poll(self) -> None:
        """Queue every key pressed since the last poll (non-blocking)."""
        data = b""
        while select.select([self.fd], [], [], 0.03 if data.endswith(b"\x1b") else 0)[0]:  # ESC: a sequence?
            chunk = os.read(self.fd, 1024)
            if not chunk:
                break
            data += chunk
        self.pending.extend(split_keys(data.decode(errors="ignore")))


def record_keyboard(cfg: RecordConfig, stream=None, out=None) -> dict:
    """Record until the dataset holds ``cfg.episodes`` episodes; returns the same summary as :func:`record`."""
    term = _Terminal(stream)  # fail before any work when there is no terminal
    out = sys.stderr if out is None else out
    env = VlaEnv(cfg.task, cameras=cfg.cameras, image_size=cfg.image_size, control_hz=cfg.fps)
    writer = open_dataset(cfg, env)
    start = writer.num_episodes
    results, quit_ = [], False
    attempt = start
    interrupted = StopRequest().install()
    t0 = time.perf_counter()
    try:
        if start >= cfg.episodes:
            out.write(f"{cfg.out} already holds {start} episodes (>= {cfg.episodes}); nothing to record\n")
        else:
            with term:
                session = _Session(env, writer, term, interrupted, cfg, out)
                tab = "    tab  switch the arm" if len(env.embodiment.end_effectors) > 1 else ""
                out.write(
                    HELP.format(
                        task=cfg.task,
                        episodes=cfg.episodes,
                        out=cfg.out,
                        step=STEP * 1e3,
                        yaw=np.rad2deg(YAW_STEP),
                        tab=tab,
                    )
                )
                out.flush()
                while writer.num_episodes < cfg.episodes and not quit_ and not interrupted.requested:
                    seed = cfg.seed + attempt
                    outcome, result = session.episode(seed)
                    out.write("\n")
                    if outcome == "save":
                        results.append(result)
                        ok = "success" if result["success"] else "failure"
                        out.write(f"saved episode {result['episode_index']} (seed {seed}, {ok})\n")
                    elif outcome in ("discard", "redo"):
                        out.write(f"discarded seed {seed}" + (", again" if outcome == "redo" else "") + "\n")
                    quit_ = outcome == "quit"
                    if outcome != "redo":
                        attempt += 1
                if quit_ and writer.num_episodes < cfg.episodes:
                    out.write(f"quit: {writer.num_episodes} episodes kept; add more with --resume\n")
                out.flush()
    finally:
        interrupted.restore()
        env.close()
    return summarize(cfg, writer, results, t0, interrupted.requested)


class _Session:
    """One operator's episodes: the keys, the IK and the grippers around :func:`vla_sdk.episode.run_episode`."""

    def __init__(self, env: VlaEnv, writer, term: _Terminal, interrupted: StopRequest, cfg: RecordConfig, out):
        self.env, self.writer, self.term, self.cfg, self.out = env, writer, term, cfg, out
        self.interrupted = interrupted
        emb = env.embodiment
        self.ik = EndEffectorIK(emb)
        self.ees = [e.name for e in emb.end_effectors]
        self.grip_index = {e.name: emb.index(e.gripper) for e in emb.end_effectors}
        self.open = {n: emb.open_gripper for n in self.ees}
        self.closed = {}
        for n, i in self.grip_index.items():
            d = emb.dims[i]
            self.closed[n] = d.low if emb.open_gripper == d.high else d.high
        self.dt = 1.0 / env.control_hz
        self.status_every = max(1, round(env.control_hz / 5))
        self.active = 0

    def episode(self, seed: int) -> tuple[str, dict | None]:
        """One episode through :func:`vla_sdk.episode.run_episode`, paced at the control rate: the keys are read
        before every step (its ``should_stop``), so a save, discard, redo or quit key ends the episode there, before
        another step. When the env ends it (success or the time limit) the episode is held, no longer stepped, until
        the operator's key. Returns ("save", result) | ("discard" | "redo" | "quit" | "interrupt", None)."""
        self.seed, self.ep, self.outcome, self.result = seed, None, None, None
        self.msg, self.done, self.tick = self.env.instruction, False, 0
        try:
            res = run_episode(
                GymSource(self.env, seed),
                self._act,
                hz=self.env.control_hz,
                paced=True,
                on_start=self._start,
                on_frame=self._frame,
                should_stop=self._keys,
            )
            if self.outcome is None:  # the env ended it: hold the episode until the operator decides
                self.done = True
                why = {"success": "task solved", "done": "time limit"}.get(res.reason, res.stopped or res.reason)
                self.msg = f"{why}: n save, x discard, z redo"
                while not self._keys():
                    time.sleep(self.dt)
            return self.outcome, self.result
        finally:
            if self.ep is not None and not self.ep.closed:
                self.ep.discard()

    def _start(self, obs: dict) -> None:
        """The episode's start (after the env's reset): its dataset episode, the IK, targets and grippers."""
        self.ep = self.writer.begin_episode(
            self.env.instruction, seed=self.seed, extra={"teleop": "keyboard", "paced": True}
        )
        self.ik.reset(obs["state"])
        self.targets = {n: self.ik.pose(n) for n in self.ees}
        self.grip = {n: float(obs["state"][i]) for n, i in self.grip_index.items()}
        self.goal = {n: self.open[n] if self._is_open(n, g) else self.closed[n] for n, g in self.grip.items()}

    def _keys(self) -> bool:
        """Apply the keys pressed since the last tick and refresh the status line; True once the episode is over
        (saved, discarded, to redo, quit, or Ctrl-C), ``self.outcome`` saying which. Moves are ignored once the
        env has ended the episode (``self.done``)."""
        if self.interrupted.requested:
            self.outcome = "interrupt"
            return True
        self.term.poll()
        pressed = bool(self.term.pending)
        targets = self.targets
        while self.term.pending:
            key = self.term.pending.popleft()
            ee = self.ees[self.active]
            if key in SAVE:
                if len(self.ep) == 0:
                    self.msg = "nothing recorded yet"
                    continue
                success = self.env.success()
                idx = self.ep.commit(success=success)
                self.outcome = "save"
                self.result = {"episode_index": idx, "seed": self.seed, "success": success, "frames": len(self.ep)}
                return True
            if key in DISCARD + REDO + QUIT:
                self.ep.discard()
                self.outcome = {"x": "discard", "z": "redo"}.get(key, "quit")
                return True
            if key == "\t" and len(self.ees) > 1:
                self.active = (self.active + 1) % len(self.ees)
            elif key == " ":
                self.goal[ee] = self.closed[ee] if self.goal[ee] == self.open[ee] else self.open[ee]
            elif self.done:
                continue
            elif key in MOVES:
                axis, sign = MOVES[key]
                pos = targets[ee][0].copy()
                pos[axis] += sign * STEP
                pos[2] = max(pos[2], MIN_Z)
                targets[ee] = (pos, targets[ee][1])
            elif key in "qe":
                a = YAW_STEP if key == "q" else -YAW_STEP
                rz = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
                targets[ee] = (targets[ee][0], rz @ targets[ee][1])
        self.tick += 1
        if pressed or self.tick % self.status_every == 0:
            self._status(self.seed, self.grip, len(self.ep), self.msg)
        return False

    def _act(self, obs: dict) -> np.ndarray:
        """This step's action: the joint targets IK finds for the end-effector targets, and each gripper moved
        towards its goal (a full stroke per GRIP_SECONDS); a target the arm cannot follow is pulled back to it."""
        action = self.ik.solve(self.targets, self.dt)
        for n, i in self.grip_index.items():
            rate = abs(self.open[n] - self.closed[n]) * self.dt / GRIP_SECONDS
            self.grip[n] += float(np.clip(self.goal[n] - self.grip[n], -rate, rate))
            action[i] = self.grip[n]
            lead = self.targets[n][0] - self.ik.pose(n)[0]
            if np.linalg.norm(lead) > MAX_LEAD:  # unreachable: pull the target back
                self.targets[n] = (self.ik.pose(n)[0] + lead * MAX_LEAD / np.linalg.norm(lead), self.targets[n][1])
        return action

    def _frame(self, t: int, obs: dict, action: np.ndarray) -> None:
        self.ep.add(obs.get("images", {}), obs["state"], action, object_positions(self.writer, self.env))

    def _is_open(self, ee: str, value: float) -> bool:
        return abs(value - self.open[ee]) <= abs(value - self.closed[ee])

    def _status(self, seed: int, grip: dict, steps: int, msg: str) -> None:
        ee = self.ees[self.active]
        g = "open" if self._is_open(ee, grip[ee]) else "closed"
        ok = "yes" if self.env.success() else "no"
        k, n = self.writer.num_episodes + 1, self.cfg.episodes
        line = f"ep {k}/{n} seed {seed} | {ee} {g} | step {steps}/{self.env.max_steps} | success {ok} | {msg}"
        self.out.write("\r" + line[:120] + "\x1b[K")
        self.out.flush()
