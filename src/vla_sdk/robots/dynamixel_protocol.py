"""Dynamixel Protocol 2.0: packet framing and the X-series control table (facts from ROBOTIS' e-Manual).

Instruction packet:  FF FF FD 00 | ID | LEN_L LEN_H | INST | params... | CRC_L CRC_H
Status packet:       FF FF FD 00 | ID | LEN_L LEN_H | 0x55 | ERR | params... | CRC_L CRC_H

LEN counts the (stuffed) instruction, parameter and CRC bytes. Byte stuffing: wherever ``FF FF FD`` appears from the
instruction field on, an extra ``FD`` follows it (so no header can appear inside a packet). The CRC is CRC-16 with
polynomial 0x8005 (initial value 0, not reflected; "CRC-16/BUYPASS"), computed over the stuffed packet from the first
header byte up to the last parameter, sent low byte first.

Pure functions, no I/O and no dependency beyond the standard library: the emulator and the tests use them; the
driver (:mod:`vla_sdk.robots.dynamixel_bus`) uses the ROBOTIS SDK's own implementation, so the two check each other.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER = b"\xff\xff\xfd\x00"
BROADCAST_ID = 0xFE
MAX_ID = 0xFC  # 0..252 are servo IDs; 0xFD and 0xFF are never IDs (they would look like a header)

# Instructions
PING, READ, WRITE, REG_WRITE, ACTION, FACTORY_RESET, REBOOT, CLEAR = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08, 0x10
STATUS, SYNC_READ, SYNC_WRITE, BULK_READ, BULK_WRITE = 0x55, 0x82, 0x83, 0x92, 0x93

# Status packet error numbers (bits 0-6 of the error byte); bit 7 is the Alert flag (see Hardware Error Status)
ERR_RESULT_FAIL, ERR_INSTRUCTION, ERR_CRC, ERR_DATA_RANGE, ERR_DATA_LENGTH, ERR_DATA_LIMIT, ERR_ACCESS = range(1, 8)
ERROR_ALERT = 0x80
ERROR_NAMES = {
    ERR_RESULT_FAIL: "result fail",
    ERR_INSTRUCTION: "instruction error",
    ERR_CRC: "CRC error",
    ERR_DATA_RANGE: "data range error",
    ERR_DATA_LENGTH: "data length error",
    ERR_DATA_LIMIT: "data limit error",
    ERR_ACCESS: "access error",
}


@dataclass(frozen=True)
class Item:
    """One control table entry: ``size`` bytes little-endian at ``address``."""

    address: int
    size: int
    writable: bool  # False: read-only (a write answers Access Error)
    eeprom: bool = False  # EEPROM area: writable only while Torque Enable is 0 (else Access Error)
    signed: bool = False


# The X-series (protocol 2.0) control table, e.g. XM430-W350 / XM540-W270 / XL430-W250 e-Manual pages. Items that some
# models lack (XL430/XC430: no Current Limit, no Goal Current; their address 126 is Present Load) are in MODELS below.
X_SERIES: dict[str, Item] = {
    "model_number": Item(0, 2, False, True),
    "model_information": Item(2, 4, False, True),
    "firmware_version": Item(6, 1, False, True),
    "id": Item(7, 1, True, True),
    "baud_rate": Item(8, 1, True, True),
    "return_delay_time": Item(9, 1, True, True),
    "drive_mode": Item(10, 1, True, True),
    "operating_mode": Item(11, 1, True, True),
    "secondary_id": Item(12, 1, True, True),
    "protocol_type": Item(13, 1, True, True),
    "homing_offset": Item(20, 4, True, True, signed=True),
    "moving_threshold": Item(24, 4, True, True),
    "temperature_limit": Item(31, 1, True, True),
    "max_voltage_limit": Item(32, 2, True, True),
    "min_voltage_limit": Item(34, 2, True, True),
    "pwm_limit": Item(36, 2, True, True),
    "current_limit": Item(38, 2, True, True),
    "velocity_limit": Item(44, 4, True, True),
    "max_position_limit": Item(48, 4, True, True),
    "min_position_limit": Item(52, 4, True, True),
    "shutdown": Item(63, 1, True, True),
    "torque_enable": Item(64, 1, True),
    "led": Item(65, 1, True),
    "status_return_level": Item(68, 1, True),
    "registered_instruction": Item(69, 1, False),
    "hardware_error_status": Item(70, 1, False),
    "velocity_i_gain": Item(76, 2, True),
    "velocity_p_gain": Item(78, 2, True),
    "position_d_gain": Item(80, 2, True),
    "position_i_gain": Item(82, 2, True),
    "position_p_gain": Item(84, 2, True),
    "feedforward_2nd_gain": Item(88, 2, True),
    "feedforward_1st_gain": Item(90, 2, True),
    "bus_watchdog": Item(98, 1, True, signed=True),  # 0 off (and clears the error), 1..127 x 20 ms, -1 tripped
    "goal_pwm": Item(100, 2, True, signed=True),
    "goal_current": Item(102, 2, True, signed=True),
    "goal_velocity": Item(104, 4, True, signed=True),
    "profile_acceleration": Item(108, 4, True),
    "profile_velocity": Item(112, 4, True),  # 0: as fast as possible; else x 0.229 rev/min
    "goal_position": Item(116, 4, True, signed=True),
    "realtime_tick": Item(120, 2, False),
    "moving": Item(122, 1, False),
    "moving_status": Item(123, 1, False),
    "present_pwm": Item(124, 2, False, signed=True),
    "present_current": Item(126, 2, False, signed=True),  # Present Load on XL430/XC430
    "present_velocity": Item(128, 4, False, signed=True),
    "present_position": Item(132, 4, False, signed=True),
    "velocity_trajectory": Item(136, 4, False, signed=True),
    "position_trajectory": Item(140, 4, False, signed=True),
    "present_input_voltage": Item(144, 2, False),
    "present_temperature": Item(146, 1, False),
}
TABLE_SIZE = 147  # bytes 0..146 (indirect addresses are not modelled)
WATCHDOG_UNIT_S = 0.020  # Bus Watchdog (98) counts in 20 ms steps
GOAL_ITEMS = ("goal_pwm", "goal_current", "goal_velocity", "goal_position")  # read-only after a bus watchdog error


@dataclass(frozen=True)
class Model:
    """One servo model: its e-Manual model number and what distinguishes it from the common X-series table."""

    name: str
    number: int
    # 0 current, 1 velocity, 3 position, 4 extended position, 5 current-based position, 16 PWM
    operating_modes: tuple[int, ...]
    current_control: bool  # has Current Limit (38) and Goal Current (102); otherwise address 126 is Present Load
    no_load_rpm: float  # no-load speed at 12 V: the emulator's fastest motion


_CURRENT_MODES = (0, 1, 3, 4, 5, 16)
MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model("XM430-W350", 1020, _CURRENT_MODES, True, 46.0),
        Model("XM430-W210", 1030, _CURRENT_MODES, True, 77.0),
        Model("XM540-W270", 1120, _CURRENT_MODES, True, 30.0),
        Model("XM540-W150", 1130, _CURRENT_MODES, True, 53.0),
        Model("XL430-W250", 1060, (1, 3, 4, 16), False, 57.0),
        Model("XC430-W150", 1070, (1, 3, 4, 16), False, 106.0),
    )
}
MODEL_BY_NUMBER = {m.number: m for m in MODELS.values()}


def model_name(number: int) -> str:
    """``"XL430-W250 (1060)"`` for a known model number, ``"model 1234"`` otherwise (for error messages)."""
    m = MODEL_BY_NUMBER.get(number)
    return f"{m.name} ({number})" if m else f"model {number}"


def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes, crc: int = 0) -> int:
    """Dynamixel CRC-16 (polynomial 0x8005, MSB first, initial value ``crc``)."""
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ b) & 0xFF]
    return crc


def stuff(body: bytes) -> bytes:
    """Insert an ``FD`` after every ``FF FF FD`` in ``body`` (instruction + parameters)."""
    out = bytearray()
    for b in body:
        out.append(b)
        if b == 0xFD and out[-3:] == b"\xff\xff\xfd":
            out.append(0xFD)
    return bytes(out)


def unstuff(body: bytes) -> bytes:
    """The inverse of :func:`stuff`: drop the ``FD`` that follows each ``FF FF FD``."""
    out = bytearray()
    i = 0
    while i < len(body):
        out.append(body[i])
        if body[i] == 0xFD and out[-3:] == b"\xff\xff\xfd" and i + 1 < len(body) and body[i + 1] == 0xFD:
            i += 1
        i += 1
    return bytes(out)


def _frame(dxl_id: int, body: bytes) -> bytes:
    body = stuff(body)
    head = HEADER + bytes([dxl_id]) + (len(body) + 2).to_bytes(2, "little")
    crc = crc16(head + body)
    return head + body + crc.to_bytes(2, "little")


def instruction_packet(dxl_id: int, instruction: int, params: bytes = b"") -> bytes:
    """The bytes of an instruction packet to ``dxl_id`` (0..252, or BROADCAST_ID)."""
    if not (0 <= dxl_id <= MAX_ID or dxl_id == BROADCAST_ID):
        raise ValueError(f"Dynamixel ID must be 0..{MAX_ID} or {BROADCAST_ID} (broadcast), got {dxl_id}")
    return _frame(dxl_id, bytes([instruction]) + bytes(params))


def status_packet(dxl_id: int, error: int = 0, params: bytes = b"") -> bytes:
    """The bytes of a status packet from servo ``dxl_id``."""
    return _frame(dxl_id, bytes([STATUS, error]) + bytes(params))


@dataclass(frozen=True)
class Packet:
    """A decoded packet. For a status packet ``instruction`` is STATUS and ``error`` is set; ``crc_ok`` False means
    the frame was complete but its CRC did not match (``params`` are then the raw, still stuffed bytes)."""

    id: int
    instruction: int
    params: bytes
    error: int | None = None
    crc_ok: bool = True


MAX_LENGTH = 1024  # longer LEN fields are taken as noise (the SDK's own limit is 1 KiB as well)


def parse(buffer: bytearray) -> Packet | None:
    """Take the first complete packet off the front of ``buffer`` (which it consumes, noise included); None when
    no complete packet is there yet (the partial one stays in the buffer)."""
    while True:
        start = buffer.find(HEADER)
        if start < 0:
            del buffer[: max(0, len(buffer) - 3)]  # keep a possible partial header
            return None
        del buffer[:start]
        if len(buffer) < 7:
            return None
        length = buffer[5] | buffer[6] << 8
        if buffer[4] in (0xFD, 0xFF) or not 3 <= length <= MAX_LENGTH:
            del buffer[0]  # not a real header: look further on
            continue
        total = 7 + length
        if len(buffer) < total:
            return None
        frame = bytes(buffer[:total])
        del buffer[:total]
        crc_ok = crc16(frame[:-2]) == int.from_bytes(frame[-2:], "little")
        body = unstuff(frame[7:-2]) if crc_ok else frame[7:-2]
        if not body:
            continue
        if body[0] == STATUS:
            if len(body) < 2:
                continue
            return Packet(frame[4], STATUS, bytes(body[2:]), error=body[1], crc_ok=crc_ok)
        return Packet(frame[4], body[0], bytes(body[1:]), crc_ok=crc_ok)


def decode(data: bytes) -> Packet:
    """Exactly one packet from ``data`` (for tests and tools); ValueError when it holds none."""
    packet = parse(bytearray(data))
    if packet is None:
        raise ValueError(f"no complete Dynamixel 2.0 packet in {data.hex(' ')}")
    return packet
