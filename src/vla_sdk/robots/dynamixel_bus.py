"""A bus of named Dynamixel X-series servos, driven through ROBOTIS' own dynamixel-sdk (the ``aloha2`` extra).

    motors = [Motor("waist", 1, "XM430-W350"), Motor("shoulder", 2, "XM540-W270"), Motor("gripper", 9, "XM430-W350")]
    with DynamixelBus("/dev/ttyDXL_puppet_left", motors) as bus:   # opens, pings, checks every model number
        bus.set_operating_mode("position")                          # torque must be off (it is, after connect)
        bus.set_watchdog(0.1)                                       # servos stop if the host goes quiet for 100 ms
        bus.set_torque(True)
        while ...:                                                  # 50 Hz: one sync write + one sync read per tick
            bus.write_positions(goal)                               # [n] int ticks, in ``motors`` order
            q = bus.read_positions()                                # [n] int ticks
    # leaving the block (normally, by an exception, or by Ctrl-C) turns torque off on every servo

Contract:
  - :meth:`connect` (or entering the ``with`` block) opens the port and checks the bus: every configured ID must
    answer a ping with the configured model's number. Each failure raises :class:`DynamixelError` (a
    :class:`vla_sdk.errors.RuntimeFailure`) naming the port, and the motor by name and ID; all missing or wrong servos
    are listed in one message. A port path that does not exist raises :class:`vla_sdk.errors.NotFound`.
  - a ping or a sync read that gets no answer is tried ``retries`` more times before it counts as failed.
  - every other method needs a connected bus; ``names`` selects motors (default: all) and values come in and go out
    in ``motors`` order. Positions are raw ticks (4096 per revolution, 2048 = centre); unit conversion and
    calibration belong to the robot layer above.
  - :meth:`close` turns torque off on every servo (one SYNC WRITE, which reaches every servo that still listens,
    then a read-back per servo; servos that cannot be confirmed are reported by a warning) and closes the port. A
    Ctrl-C during close is held until torque is off, then raised. Calling it twice, or on a bus that never
    connected, does nothing.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vla_sdk.errors import NotFound, RuntimeFailure, UsageError
from vla_sdk.interrupt import StopRequest
from vla_sdk.robots import dynamixel_protocol as dxl

try:
    import dynamixel_sdk as sdk
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError(
        "vla_sdk.robots.dynamixel_bus needs dynamixel-sdk and pyserial: pip install 'vla-sdk[aloha2]'"
    ) from e

OPERATING_MODES = {
    "current": 0,
    "velocity": 1,
    "position": 3,
    "extended_position": 4,
    "current_position": 5,  # current-based position control (ALOHA's grippers)
    "pwm": 16,
}
CONTROL_RATE_HZ = 50.0  # the rate ALOHA 2 runs its buses at: one sync write + one sync read per tick


class DynamixelError(RuntimeFailure):
    """The bus or a servo on it is not as configured, or a transfer failed."""


@dataclass(frozen=True)
class Motor:
    """One servo on the bus."""

    name: str  # joint name, e.g. "left_waist"
    id: int  # bus ID, 0..252
    model: str  # a model name in dynamixel_protocol.MODELS, e.g. "XM430-W350"

    def __post_init__(self):
        if self.model not in dxl.MODELS:
            raise UsageError(
                f"motor {self.name!r}: unknown Dynamixel model {self.model!r}; known: {', '.join(dxl.MODELS)}"
            )
        if not 0 <= self.id <= dxl.MAX_ID:
            raise UsageError(f"motor {self.name!r}: ID must be 0..{dxl.MAX_ID}, got {self.id}")

    def __str__(self) -> str:
        return f"{self.name!r} (ID {self.id})"


class _Port(sdk.PortHandler):
    """The SDK's port with a floor under its answer timeout (``DynamixelBus(timeout_s=...)``)."""

    def __init__(self, name: str, min_timeout_ms: float):
        super().__init__(name)
        self.min_timeout_ms = min_timeout_ms

    def setPacketTimeout(self, packet_length):  # noqa: N802 (the SDK's name)
        super().setPacketTimeout(packet_length)
        self.packet_timeout = max(self.packet_timeout, self.min_timeout_ms)


class DynamixelBus:
    """Servos on one serial port (a U2D2 or the emulator's pseudo-terminal); see the module docstring."""

    def __init__(
        self,
        port: str,
        motors: Sequence[Motor],
        *,
        baudrate: int = 1_000_000,
        retries: int = 2,
        timeout_s: float = 0.0,
    ):
        self.port = port  # e.g. /dev/ttyUSB0 or a udev name such as /dev/ttyDXL_puppet_left
        self.motors = tuple(motors)
        self.baudrate = baudrate  # the servos' Baud Rate (8) setting: 1 Mbps on ALOHA
        self.retries = retries  # extra tries of a ping or a sync read that got no (or a corrupt) answer
        # the least time to wait for an answer; the SDK's own wait (~34 ms at 1 Mbps: twice a USB latency timer of
        # 16 ms plus the bytes) is used when it is longer. Raise it for a loaded host or a slow USB adapter.
        self.timeout_s = timeout_s
        for what, values in (("names", [m.name for m in self.motors]), ("IDs", [m.id for m in self.motors])):
            if len(set(values)) != len(values):
                raise UsageError(f"motors on {port}: duplicate {what} in {values}")
        if not self.motors:
            raise UsageError(f"no motors configured for {port}")
        self._by_name = {m.name: m for m in self.motors}
        self._port: sdk.PortHandler | None = None
        self._ph = sdk.PacketHandler(2.0)
        self._goal_writer: sdk.GroupSyncWrite | None = None
        self._position_reader: sdk.GroupSyncRead | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._port is not None

    def connect(self) -> DynamixelBus:
        """Open the port, ping every motor and check its model number; torque is left as the servos have it."""
        if self.connected:
            return self
        if not os.path.exists(self.port):
            raise NotFound(
                f"serial port {self.port} does not exist: is the U2D2 plugged in, and is this its name "
                f"(ls /dev/serial/by-id/)?"
            )
        port = _Port(self.port, self.timeout_s * 1000.0)
        try:
            opened = port.openPort() and port.setBaudRate(self.baudrate)
        except Exception as e:  # pyserial's SerialException, termios.error for a non-tty, PermissionError, ...
            raise DynamixelError(f"cannot open serial port {self.port}: {e}") from e
        if not opened:
            raise DynamixelError(f"cannot open serial port {self.port} at {self.baudrate} baud")
        self._port = port
        try:
            self._check_servos()
        except BaseException:
            self._port.closePort()
            self._port = None
            raise
        self._goal_writer = sdk.GroupSyncWrite(port, self._ph, dxl.X_SERIES["goal_position"].address, 4)
        self._position_reader = sdk.GroupSyncRead(port, self._ph, dxl.X_SERIES["present_position"].address, 4)
        for m in self.motors:
            self._position_reader.addParam(m.id)
        return self

    def _check_servos(self) -> None:
        missing, wrong = [], []
        for m in self.motors:
            number, result = self._ping(m)
            if result != sdk.COMM_SUCCESS:
                missing.append(m)
            elif number != dxl.MODELS[m.model].number:
                wrong.append(
                    f"{m} is {dxl.model_name(number)}, configured as {dxl.model_name(dxl.MODELS[m.model].number)}"
                )
        problems = []
        if missing and len(missing) == len(self.motors):
            problems.append(
                f"no servo answers on {self.port} at {self.baudrate} baud (tried IDs {[m.id for m in missing]}): "
                "check the servo power, the cable, the port name and the baud rate"
            )
        elif missing:
            problems.append(
                f"{', '.join(map(str, missing))} {'does' if len(missing) == 1 else 'do'} not answer a ping on "
                f"{self.port} (the others do): check its cable, ID and baud rate"
            )
        problems += [f"{w} on {self.port}" for w in wrong]
        if problems:
            raise DynamixelError("; ".join(problems))

    def _ping(self, motor: Motor) -> tuple[int, int]:
        """(model number, SDK result), retried: a busy host can miss an answer (the SDK waits ~34 ms at 1 Mbps)."""
        for _ in range(1 + self.retries):
            number, result, _ = self._ph.ping(self._port, motor.id)
            if result == sdk.COMM_SUCCESS:
                break
        return number, result

    def close(self) -> None:
        """Torque off on every servo, then close the port (see the module docstring)."""
        if self._port is None:
            return
        with StopRequest() as stop:  # a Ctrl-C now waits until torque is off
            try:
                if self._port.is_using:  # a transfer was interrupted (Ctrl-C): let its answers arrive, drop them
                    time.sleep(0.01)
                    self._port.is_using = False
                self._port.clearPort()
                unconfirmed = self._torque_off_everywhere()
            finally:
                self._port.closePort()
                self._port = None
        if unconfirmed:
            warnings.warn(
                f"torque off could not be confirmed on {self.port} for {', '.join(map(str, unconfirmed))}",
                RuntimeWarning,
                stacklevel=2,
            )
        if stop.requested:
            raise KeyboardInterrupt

    def _torque_off_everywhere(self) -> list[Motor]:
        writer = sdk.GroupSyncWrite(self._port, self._ph, dxl.X_SERIES["torque_enable"].address, 1)
        for m in self.motors:
            writer.addParam(m.id, [0])
        writer.txPacket()
        unconfirmed = []
        for m in self.motors:
            value, result, _ = self._ph.read1ByteTxRx(self._port, m.id, dxl.X_SERIES["torque_enable"].address)
            if result != sdk.COMM_SUCCESS or value != 0:
                result, _ = self._ph.write1ByteTxRx(self._port, m.id, dxl.X_SERIES["torque_enable"].address, 0)
                if result != sdk.COMM_SUCCESS:
                    unconfirmed.append(m)
        return unconfirmed

    def __enter__(self) -> DynamixelBus:
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- configuration (single writes, each answered and checked) -------------------------------------------------
    def _select(self, names: Iterable[str] | None) -> list[Motor]:
        if not self.connected:
            raise DynamixelError(f"the bus on {self.port} is not connected: call connect() or use `with`")
        if names is None:
            return list(self.motors)
        if isinstance(names, str):
            names = [names]
        unknown = [n for n in names if n not in self._by_name]
        if unknown:
            raise UsageError(f"no motor named {unknown} on {self.port}; motors: {list(self._by_name)}")
        return [self._by_name[n] for n in names]

    def write(self, item: str, value: int | Sequence[int], names: Iterable[str] | None = None) -> None:
        """Write control table ``item`` (a key of dynamixel_protocol.X_SERIES) on the selected motors, one value for
        all or one per motor; each servo's answer is checked."""
        spec = dxl.X_SERIES[item]
        motors = self._select(names)
        values = [value] * len(motors) if isinstance(value, int) else list(value)
        if len(values) != len(motors):
            raise UsageError(f"{item}: {len(values)} values for {len(motors)} motors")
        for m, v in zip(motors, values, strict=True):
            data = list((int(v) & ((1 << 8 * spec.size) - 1)).to_bytes(spec.size, "little"))
            result, error = self._ph.writeTxRx(self._port, m.id, spec.address, spec.size, data)
            self._check(m, f"writing {item} = {v}", result, error)

    def read(self, item: str, names: Iterable[str] | None = None) -> np.ndarray:
        """Read control table ``item`` from the selected motors, one READ each: [k] int64."""
        spec = dxl.X_SERIES[item]
        out = []
        for m in self._select(names):
            data, result, error = self._ph.readTxRx(self._port, m.id, spec.address, spec.size)
            self._check(m, f"reading {item}", result, error)
            out.append(int.from_bytes(bytes(data), "little", signed=spec.signed))
        return np.asarray(out, dtype=np.int64)

    def _check(self, motor: Motor, what: str, result: int, error: int) -> None:
        if result != sdk.COMM_SUCCESS:
            raise DynamixelError(f"{what} on {motor} at {self.port}: {self._ph.getTxRxResult(result)}")
        if error & 0x7F:
            name = dxl.ERROR_NAMES.get(error & 0x7F, f"error {error & 0x7F}")
            raise DynamixelError(f"{what} on {motor} at {self.port}: the servo answered {name}")

    def set_torque(self, on: bool, names: Iterable[str] | None = None) -> None:
        self.write("torque_enable", int(bool(on)), names)

    def set_operating_mode(self, mode: str | int, names: Iterable[str] | None = None) -> None:
        """``mode``: a key of OPERATING_MODES or its number. An EEPROM item: torque must be off on those motors."""
        value = OPERATING_MODES[mode] if isinstance(mode, str) and mode in OPERATING_MODES else mode
        if not isinstance(value, int):
            raise UsageError(f"operating mode {mode!r} is not one of {list(OPERATING_MODES)}")
        motors = self._select(names)
        on = [m for m, t in zip(motors, self.read("torque_enable", [m.name for m in motors]), strict=True) if t]
        if on:
            raise DynamixelError(f"cannot set the operating mode of {', '.join(map(str, on))}: torque is on")
        self.write("operating_mode", value, [m.name for m in motors])

    def set_watchdog(self, timeout_s: float | None, names: Iterable[str] | None = None) -> None:
        """Arm the Bus Watchdog: a servo with torque on stops (holds where it is, goal writes refused) when no packet
        reaches it for ``timeout_s`` (20 ms steps, at most 2.54 s). None or 0 disarms it and clears a tripped one."""
        units = 0 if not timeout_s else int(np.ceil(round(timeout_s / dxl.WATCHDOG_UNIT_S, 6)))
        if not 0 <= units <= 127:
            raise UsageError(f"bus watchdog timeout {timeout_s} s is outside 0.02 .. 2.54 s")
        self.write("bus_watchdog", units, names)

    def watchdog_tripped(self, names: Iterable[str] | None = None) -> list[str]:
        """Names of the motors whose Bus Watchdog has stopped them (value -1); 0 via set_watchdog(None) clears it."""
        motors = self._select(names)
        values = self.read("bus_watchdog", [m.name for m in motors])
        return [m.name for m, v in zip(motors, values, strict=True) if v == -1]

    # -- the control tick: one SYNC WRITE, one SYNC READ ----------------------------------------------------------
    def write_positions(self, goals: Sequence[int] | Mapping[str, int] | np.ndarray) -> None:
        """Goal Position for every motor ([n] ticks in ``motors`` order) or for some (a name -> ticks mapping), in
        one SYNC WRITE (no answer: a servo that refuses a value, e.g. beyond its limits, keeps its goal)."""
        self._select(None)
        if isinstance(goals, Mapping):
            pairs = [(m, goals[m.name]) for m in self._select(list(goals))]
        else:
            goals = np.asarray(goals)
            if goals.shape != (len(self.motors),):
                raise UsageError(f"goal positions: expected shape ({len(self.motors)},), got {goals.shape}")
            pairs = list(zip(self.motors, goals.tolist(), strict=True))
        w = self._goal_writer
        w.clearParam()
        for m, v in pairs:
            w.addParam(m.id, list((int(round(v)) & 0xFFFFFFFF).to_bytes(4, "little")))
        result = w.txPacket()
        if result != sdk.COMM_SUCCESS:
            raise DynamixelError(f"goal position sync write on {self.port}: {self._ph.getTxRxResult(result)}")

    def read_positions(self) -> np.ndarray:
        """Present Position of every motor, one SYNC READ: [n] int64 ticks in ``motors`` order."""
        self._select(None)
        r = self._position_reader
        address = dxl.X_SERIES["present_position"].address
        for _ in range(1 + self.retries):
            result = r.txRxPacket()
            if result == sdk.COMM_SUCCESS and all(r.isAvailable(m.id, address, 4) for m in self.motors):
                break
        else:
            silent = [m for m in self.motors if self._ping(m)[1] != sdk.COMM_SUCCESS]
            who = f"; not answering a ping now: {', '.join(map(str, silent))}" if silent else ""
            raise DynamixelError(f"present position sync read on {self.port}: {self._ph.getTxRxResult(result)}{who}")
        values = [r.getData(m.id, address, 4) for m in self.motors]
        return np.asarray(values, dtype=np.uint32).astype(np.int32).astype(np.int64)  # two's complement

    def step(self, goals: Sequence[int] | np.ndarray) -> np.ndarray:
        """One control tick: write the goals, read the present positions ([n] int64 ticks)."""
        self.write_positions(goals)
        return self.read_positions()
