"""An emulated Dynamixel Protocol 2.0 bus on a pseudo-terminal: a stand-in for a U2D2 with X-series servos on it.

The host opens :attr:`DynamixelEmulator.port` (e.g. ``/dev/pts/5``) exactly as it would open ``/dev/ttyUSB0``; the
emulator answers PING, READ, WRITE, SYNC READ, SYNC WRITE and REBOOT like the servos would, with the real error
status for anything else (unknown instruction, undefined or read-only address, EEPROM write while torque is on, a
value out of range, a goal beyond the position limits). Baud rate and return delay are ignored (a pty has neither).

Servo model, per servo, advanced in real time:
  - in a position mode (3, 4, 5) with Torque Enable = 1, Present Position moves toward Goal Position at most at the
    model's no-load speed, or at Profile Velocity (x 0.229 rev/min) when that is set and slower; with torque off
    the servo holds still (nobody pushes it here) and Goal Position follows nothing.
  - the Bus Watchdog (98): while torque is on and the value is 1..127, a gap of more than value x 20 ms between
    instruction packets stops the servo as the real one does: Goal Position := Present Position, Bus Watchdog := -1,
    and the goal items become read-only (a write answers Data Range Error) until 0 is written to Bus Watchdog.
    Any valid instruction packet on the bus counts as communication.
  - a hand (:meth:`DynamixelEmulator.push`): a torque-off servo goes where it is pushed (a person moving a leader
    arm); a servo with torque on resists and stays where its model puts it.

Events: each watchdog trip is recorded in :attr:`DynamixelEmulator.events` as {"event": "watchdog", "id", "t" (s,
monotonic), "silent_ms" (since the last instruction packet), "position" (ticks, where it stopped)}; the process form
also prints each one as a JSON line on stdout.

Run it in a thread (:class:`DynamixelEmulator`, ``with`` or start/stop) or in its own process, which keeps its
timing away from the host's GIL (:class:`EmulatorProcess`, or ``python -m vla_sdk.robots.dynamixel_emulator
--servo 1:XM430-W350 --servo 2:XL430-W250``, which prints the port path and runs until stdin closes; each stdin line
``{"push": {"ID": ticks, ...}}`` is the hand).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import select
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from vla_sdk.robots import dynamixel_protocol as dxl

TICKS_PER_REV = 4096  # position resolution: 0.088 degrees per tick
RPM_UNIT = 0.229  # rev/min per unit of Profile Velocity / Present Velocity


@dataclass(frozen=True)
class ServoConfig:
    """One emulated servo."""

    id: int  # bus ID, 0..252
    model: str = "XM430-W350"  # a key of dynamixel_protocol.MODELS
    position: int = 2048  # initial Present Position (ticks)
    model_number: int | None = None  # report this model number instead of the model's (a "wrong servo" on the bus)
    firmware: int = 45

    def __post_init__(self):
        if self.model not in dxl.MODELS:
            raise ValueError(f"unknown Dynamixel model {self.model!r}; known: {', '.join(dxl.MODELS)}")
        if not 0 <= self.id <= dxl.MAX_ID:
            raise ValueError(f"servo ID must be 0..{dxl.MAX_ID}, got {self.id}")

    @staticmethod
    def parse(text: str) -> ServoConfig:
        """``ID[:MODEL[:POSITION]]``, e.g. ``3:XM540-W270:1024``."""
        parts = text.split(":")
        return ServoConfig(int(parts[0]), *(parts[1:2] or ["XM430-W350"]), *([int(parts[2])] if len(parts) > 2 else []))


def _items_for(model: dxl.Model) -> dict[str, dxl.Item]:
    items = dict(dxl.X_SERIES)
    if not model.current_control:
        del items["current_limit"], items["goal_current"]
    return items


class EmulatedServo:
    """One servo's control table and motion state. Touch it only under the owning emulator's lock."""

    def __init__(self, config: ServoConfig, now: float):
        self.config = config
        self.model = dxl.MODELS[config.model]
        self.items = _items_for(self.model)
        self.table = bytearray(dxl.TABLE_SIZE)
        self._owner = bytearray(dxl.TABLE_SIZE)  # per byte: 1 + index of the item it belongs to, 0 for none
        self._by_start = {}
        for k, (name, item) in enumerate(self.items.items()):
            self._owner[item.address : item.address + item.size] = bytes([k + 1]) * item.size
            self._by_start[item.address] = name
        self._names = list(self.items)
        number = config.model_number if config.model_number is not None else self.model.number
        defaults = {
            "model_number": number,
            "firmware_version": config.firmware,
            "id": config.id,
            "baud_rate": 3,  # 1 Mbps, as ALOHA runs its buses
            "return_delay_time": 0,
            "operating_mode": 3,
            "protocol_type": 2,
            "moving_threshold": 10,
            "temperature_limit": 80,
            "max_voltage_limit": 160,
            "min_voltage_limit": 95,
            "pwm_limit": 885,
            "current_limit": 1193,
            "velocity_limit": round(self.model.no_load_rpm / RPM_UNIT),
            "max_position_limit": TICKS_PER_REV - 1,
            "min_position_limit": 0,
            "shutdown": 52,
            "status_return_level": 2,
            "velocity_i_gain": 1920,
            "velocity_p_gain": 100,
            "position_p_gain": 800,
            "present_input_voltage": 120,
            "present_temperature": 30,
            "present_position": config.position,
            "goal_position": config.position,
            "position_trajectory": config.position,
        }
        for name, value in defaults.items():
            if name in self.items:
                self.set(name, value)
        self.position = float(config.position)
        self.last_seen = now  # the last instruction packet on the bus (the watchdog's clock)
        self.t0 = now

    # -- the control table ------------------------------------------------------------------------------------
    def get(self, name: str) -> int:
        item = self.items[name]
        return int.from_bytes(self.table[item.address : item.address + item.size], "little", signed=item.signed)

    def set(self, name: str, value: int) -> None:
        item = self.items[name]
        mask = (1 << (8 * item.size)) - 1
        self.table[item.address : item.address + item.size] = (value & mask).to_bytes(item.size, "little")

    @property
    def id(self) -> int:
        return self.get("id")

    def read(self, address: int, length: int) -> tuple[int, bytes]:
        """(error, data) for READ: Access Error when the range leaves the table or touches no defined item."""
        end = address + length
        if length < 1 or end > dxl.TABLE_SIZE or not any(self._owner[address:end]):
            return dxl.ERR_ACCESS, b""
        return 0, bytes(self.table[address:end])

    def write(self, address: int, data: bytes) -> int:
        """WRITE ``data`` at ``address`` with the real servo's checks; returns the status error number (0 = done).
        Nothing is written unless everything is valid."""
        end = address + len(data)
        if not data or end > dxl.TABLE_SIZE:
            return dxl.ERR_ACCESS
        names, i = [], address
        while i < end:
            owner = self._owner[i]
            if not owner:
                return dxl.ERR_ACCESS  # an undefined (reserved) byte
            name = self._names[owner - 1]
            item = self.items[name]
            if item.address != i:
                return dxl.ERR_DATA_LENGTH  # starts inside an item
            if item.address + item.size > end:
                return dxl.ERR_DATA_LENGTH  # ends inside an item
            names.append(name)
            i += item.size
        values = {}
        for name in names:
            item = self.items[name]
            raw = data[item.address - address : item.address - address + item.size]
            values[name] = int.from_bytes(raw, "little", signed=item.signed)
        torque = self.get("torque_enable")
        for name, value in values.items():
            item = self.items[name]
            if not item.writable:
                return dxl.ERR_ACCESS
            if item.eeprom and torque and name != "torque_enable":
                return dxl.ERR_ACCESS  # EEPROM is locked while torque is on
            error = self._check(name, value)
            if error:
                return error
        for name, value in values.items():
            self._apply(name, value)
        return 0

    def _check(self, name: str, value: int) -> int:
        if name in dxl.GOAL_ITEMS and self.get("bus_watchdog") == -1:
            return dxl.ERR_DATA_RANGE  # goal values are read-only after a bus watchdog error
        if name == "operating_mode" and value not in self.model.operating_modes:
            return dxl.ERR_DATA_RANGE
        if name in ("torque_enable", "led") and value not in (0, 1):
            return dxl.ERR_DATA_RANGE
        if name == "bus_watchdog" and not -1 <= value <= 127:
            return dxl.ERR_DATA_RANGE
        if name == "bus_watchdog" and value == -1:
            return dxl.ERR_DATA_RANGE  # only the servo sets -1
        if name == "status_return_level" and value not in (0, 1, 2):
            return dxl.ERR_DATA_RANGE
        if name == "id" and not 0 <= value <= dxl.MAX_ID:
            return dxl.ERR_DATA_RANGE
        if name == "goal_position" and self.get("operating_mode") == 3:
            if not self.get("min_position_limit") <= value <= self.get("max_position_limit"):
                return dxl.ERR_DATA_LIMIT
        if name == "profile_velocity" and not 0 <= value <= 32767:
            return dxl.ERR_DATA_RANGE
        return 0

    def _apply(self, name: str, value: int) -> None:
        if name == "torque_enable" and value and not self.get("torque_enable"):
            self.set("goal_position", round(self.position))  # the real servo takes its goal from where it stands
        self.set(name, value)

    # -- motion ---------------------------------------------------------------------------------------------------
    def max_speed(self) -> float:
        """Ticks per second: the model's no-load speed, or Profile Velocity when that is set and slower."""
        rpm = self.model.no_load_rpm
        profile = self.get("profile_velocity")
        if profile:
            rpm = min(rpm, profile * RPM_UNIT)
        return rpm / 60.0 * TICKS_PER_REV

    def push(self, ticks: float) -> None:
        """A hand moves the horn to ``ticks``: a torque-off servo follows, one with torque on does not move."""
        if self.get("torque_enable") != 1:
            self.position = float(min(max(ticks, 0), TICKS_PER_REV - 1))

    def advance(self, now: float, dt: float) -> dict | None:
        """Move the servo model on by ``dt`` s; returns the watchdog event when the watchdog trips now."""
        torque = self.get("torque_enable") == 1
        watchdog = self.get("bus_watchdog")
        event = None
        if torque and watchdog > 0 and now - self.last_seen > watchdog * dxl.WATCHDOG_UNIT_S:
            self.set("goal_position", round(self.position))
            self.set("bus_watchdog", -1)
            silent_ms = round(1000 * (now - self.last_seen), 1)
            event = {"event": "watchdog", "id": self.id, "t": now, "silent_ms": silent_ms, "position": self.position}
        velocity = 0.0
        if torque and self.get("operating_mode") in (3, 4, 5):
            error = self.get("goal_position") - self.position
            step = min(abs(error), self.max_speed() * dt)
            if step > 0:
                self.position += step if error > 0 else -step
                velocity = step / dt if dt > 0 else 0.0
        present = round(self.position)
        self.set("present_position", present)
        self.set("position_trajectory", self.get("goal_position") if torque else present)
        self.set("present_velocity", round(velocity * 60.0 / TICKS_PER_REV / RPM_UNIT))
        moving = abs(self.get("goal_position") - present) > self.get("moving_threshold") if torque else False
        self.set("moving", int(moving or velocity > 0))
        self.set("realtime_tick", int((now - self.t0) * 1000) % 32768)
        return event

    def reboot(self, now: float) -> None:
        """Torque off, watchdog off and cleared, hardware error cleared; the position stays where it is."""
        self.set("torque_enable", 0)
        self.set("bus_watchdog", 0)
        self.set("hardware_error_status", 0)
        self.set("goal_position", round(self.position))
        self.last_seen = now


class DynamixelEmulator:
    """A bus of emulated servos behind a pseudo-terminal, served by a background thread.

    ``port`` is the path a host opens; it stays valid from :meth:`start` to :meth:`stop`, across any number of
    hosts opening and closing it. :meth:`servo` gives the servo with that ID for inspection; hold :attr:`lock`
    while reading or changing it."""

    def __init__(self, servos: Iterable[ServoConfig], *, tick_s: float = 0.002):
        self.configs = list(servos)
        ids = [c.id for c in self.configs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate servo IDs in {ids}")
        self.tick_s = tick_s  # how often the servo models advance when the bus is quiet
        self.lock = threading.Lock()
        self.servos: list[EmulatedServo] = []
        self.port: str | None = None
        self.packets = 0  # instruction packets handled (for tests and debugging)
        self.events: list[dict] = []  # watchdog trips, in order (see the module docstring)
        self.on_event = None  # called with each event as it happens (the process form prints it)
        self._master = self._slave = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> DynamixelEmulator:
        now = time.monotonic()
        self.servos = [EmulatedServo(c, now) for c in self.configs]
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing, until the host configures the port itself
        self.port = os.ttyname(self._slave)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name=f"dynamixel-emulator {self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def __enter__(self) -> DynamixelEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def servo(self, dxl_id: int) -> EmulatedServo:
        for s in self.servos:
            if s.id == dxl_id:
                return s
        raise KeyError(f"no emulated servo with ID {dxl_id} (IDs: {[s.id for s in self.servos]})")

    # -- the serving thread ---------------------------------------------------------------------------------------
    def _serve(self) -> None:
        buffer = bytearray()
        last = time.monotonic()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], self.tick_s)
            now = time.monotonic()
            if ready:
                try:
                    chunk = os.read(self._master, 4096)
                except OSError:  # no host has the slave open (EIO): nothing to read
                    chunk = b""
                    time.sleep(self.tick_s)
                buffer += chunk
            with self.lock:
                events = [e for s in self.servos if (e := s.advance(now, now - last)) is not None]
                self.events += events
                last = now
                out = bytearray()
                while (packet := dxl.parse(buffer)) is not None:
                    out += self._handle(packet, now)
            if out:
                os.write(self._master, bytes(out))
            for e in events:
                if self.on_event is not None:
                    self.on_event(e)

    def push(self, positions: dict[int, float]) -> None:
        """The hand: move each torque-off servo ID to its ticks (see :meth:`EmulatedServo.push`)."""
        with self.lock:
            for dxl_id, ticks in positions.items():
                self.servo(int(dxl_id)).push(ticks)

    def _handle(self, packet: dxl.Packet, now: float) -> bytes:
        """The status packets the bus sends back for one instruction packet (b"" when none)."""
        if packet.instruction == dxl.STATUS:
            return b""  # another device's status: not for the servos
        targets = [s for s in self.servos if packet.id in (s.id, dxl.BROADCAST_ID)]
        if not packet.crc_ok:
            # a servo answers a corrupted packet addressed to it with CRC Error; broadcast ones stay silent
            return b"".join(self._status(s, dxl.ERR_CRC) for s in targets if packet.id != dxl.BROADCAST_ID)
        self.packets += 1
        for s in self.servos:
            s.last_seen = now
        p, inst = packet.params, packet.instruction
        unicast = packet.id != dxl.BROADCAST_ID
        if inst == dxl.PING:  # always answered, whatever the Status Return Level
            info = lambda s: s.get("model_number").to_bytes(2, "little") + bytes([s.get("firmware_version")])  # noqa: E731
            return b"".join(self._status(s, 0, info(s)) for s in sorted(targets, key=lambda s: s.id))
        if inst == dxl.READ:
            if not unicast or not targets:
                return b""
            s = targets[0]
            if len(p) != 4:
                return self._status(s, dxl.ERR_DATA_LENGTH, level=1)
            error, data = s.read(int.from_bytes(p[0:2], "little"), int.from_bytes(p[2:4], "little"))
            return self._status(s, error, data, level=1)
        if inst == dxl.WRITE:
            if len(p) < 3:
                return b"".join(self._status(s, dxl.ERR_DATA_LENGTH, level=2) for s in targets if unicast)
            address = int.from_bytes(p[0:2], "little")
            errors = [(s, s.write(address, p[2:])) for s in targets]
            return b"".join(self._status(s, e, level=2) for s, e in errors if unicast)
        if inst == dxl.SYNC_WRITE:  # broadcast only, never answered; a servo whose data is invalid ignores it
            if packet.id != dxl.BROADCAST_ID or len(p) < 4:
                return b""
            address, length = int.from_bytes(p[0:2], "little"), int.from_bytes(p[2:4], "little")
            if length < 1:
                return b""
            for k in range(4, len(p) - length, length + 1):
                for s in self.servos:
                    if s.id == p[k]:
                        s.write(address, p[k + 1 : k + 1 + length])
            return b""
        if inst == dxl.SYNC_READ:  # each listed servo answers in the order listed
            if packet.id != dxl.BROADCAST_ID or len(p) < 5:
                return b""
            address, length = int.from_bytes(p[0:2], "little"), int.from_bytes(p[2:4], "little")
            out = bytearray()
            for dxl_id in p[4:]:
                for s in self.servos:
                    if s.id == dxl_id:
                        error, data = s.read(address, length)
                        out += self._status(s, error, data, level=1)
            return bytes(out)
        if inst == dxl.REBOOT:
            for s in targets:
                s.reboot(now)
            return b"".join(self._status(s, 0) for s in targets if unicast)
        # REG WRITE, ACTION, FACTORY RESET, CLEAR, BULK READ/WRITE and unknown instructions are not emulated
        return b"".join(self._status(s, dxl.ERR_INSTRUCTION) for s in targets if unicast)

    @staticmethod
    def _status(servo: EmulatedServo, error: int, params: bytes = b"", level: int = 0) -> bytes:
        """A status packet, unless the servo's Status Return Level (0 ping only, 1 + read, 2 all) keeps it quiet."""
        if servo.get("status_return_level") < level:
            return b""
        if servo.get("hardware_error_status"):
            error |= dxl.ERROR_ALERT
        return dxl.status_packet(servo.id, error, params)


class EmulatorProcess:
    """:class:`DynamixelEmulator` in a child process (``python -m vla_sdk.robots.dynamixel_emulator``), so its timing
    does not depend on the host's threads; ends when :meth:`stop` closes its stdin (or the parent dies).

        with EmulatorProcess([ServoConfig(1), ServoConfig(2, "XL430-W250")]) as emu:
            bus = DynamixelBus(emu.port, ...)
    """

    def __init__(self, servos: Sequence[ServoConfig], *, start_timeout_s: float = 30.0):
        self.configs = list(servos)
        self.start_timeout_s = start_timeout_s
        self.port: str | None = None
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> EmulatorProcess:
        spec = json.dumps([asdict(c) for c in self.configs])
        cmd = [sys.executable, "-m", "vla_sdk.robots.dynamixel_emulator", "--json", spec]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self._proc.stdout], [], [], self.start_timeout_s)
        line = self._proc.stdout.readline().strip() if ready else ""
        if not line.startswith("/"):
            self.stop()
            raise RuntimeError(f"the Dynamixel emulator did not start (printed {line!r})")
        self.port = line
        self._events: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read_events, args=(self._proc.stdout,), daemon=True)
        self._reader.start()
        return self

    def push(self, positions: dict[int, float]) -> None:
        """The hand (:meth:`DynamixelEmulator.push`), sent as one line on the child's stdin."""
        self._proc.stdin.write(json.dumps({"push": {str(k): float(v) for k, v in positions.items()}}) + "\n")
        self._proc.stdin.flush()

    def _read_events(self, stdout) -> None:
        for line in stdout:  # the child's watchdog events, one JSON line each, until it exits
            self._events.put(json.loads(line))

    def events(self, timeout_s: float = 0.0) -> list[dict]:
        """The watchdog events the child reported since the last call (waiting up to ``timeout_s`` for one)."""
        out = []
        try:
            out.append(self._events.get(timeout=timeout_s) if timeout_s > 0 else self._events.get_nowait())
            while True:
                out.append(self._events.get_nowait())
        except queue.Empty:
            return out

    def stop(self) -> None:
        if self._proc is None:
            return
        try:
            self._proc.stdin.close()
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)  # the child has exited: its stdout ends
        self._proc.stdout.close()
        self._proc = None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m vla_sdk.robots.dynamixel_emulator",
        description="Emulate a Dynamixel 2.0 bus on a pseudo-terminal; prints its path, runs until stdin closes.",
        epilog="example: python -m vla_sdk.robots.dynamixel_emulator --servo 1:XM430-W350 --servo 2:XL430-W250:1024",
    )
    parser.add_argument("--servo", action="append", default=[], help="ID[:MODEL[:POSITION]] (repeatable)")
    parser.add_argument("--json", help="servo configs as a JSON list of ServoConfig fields")
    args = parser.parse_args(argv)
    configs = [ServoConfig.parse(s) for s in args.servo]
    configs += [ServoConfig(**c) for c in json.loads(args.json or "[]")]
    emu = DynamixelEmulator(configs)
    emu.on_event = lambda e: print(json.dumps(e), flush=True)
    with emu:
        print(emu.port, flush=True)
        try:
            for line in sys.stdin:  # until the parent closes our stdin or dies; each line: {"push": {ID: ticks}}
                if line.strip():
                    emu.push({int(k): v for k, v in json.loads(line)["push"].items()})
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
