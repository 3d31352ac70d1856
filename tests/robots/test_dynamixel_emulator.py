"""The emulated bus byte for byte, through its pseudo-terminal: the e-Manual's example exchanges and the error
status of a real servo."""

from __future__ import annotations

import os
import select
import time
import tty

import pytest

from vla_sdk.robots import dynamixel_protocol as dxl
from vla_sdk.robots.dynamixel_emulator import DynamixelEmulator, ServoConfig

H = bytes.fromhex


class Wire:
    """The host end of the pty, raw: write bytes, read the answer."""

    def __init__(self, port):
        self.fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)

    def ask(self, data: bytes, expect: int, timeout: float = 2.0) -> bytes:
        os.write(self.fd, data)
        out, deadline = b"", time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            if select.select([self.fd], [], [], 0.05)[0]:
                out += os.read(self.fd, 4096)
        return out

    def request(self, dxl_id, inst, params=b"", answers=1, timeout=0.3) -> list[dxl.Packet]:
        """The status packets that come back within ``timeout`` (up to ``answers`` of them)."""
        os.write(self.fd, dxl.instruction_packet(dxl_id, inst, params))
        buffer, out, deadline = bytearray(), [], time.monotonic() + timeout
        while len(out) < answers and time.monotonic() < deadline:
            if select.select([self.fd], [], [], 0.02)[0]:
                buffer += os.read(self.fd, 4096)
            while (p := dxl.parse(buffer)) is not None:
                out.append(p)
        return out

    def close(self):
        os.close(self.fd)


@pytest.fixture
def bus():
    servos = [ServoConfig(1, "XM430-W210", position=166, firmware=38), ServoConfig(2, "XM430-W210", position=2079)]
    with DynamixelEmulator(servos) as emu:
        wire = Wire(emu.port)
        yield emu, wire
        wire.close()


def test_the_emanual_exchanges_byte_for_byte(bus):
    _, wire = bus
    assert wire.ask(H("ff ff fd 00 01 03 00 01 19 4e"), 14) == H("ff ff fd 00 01 07 00 55 00 06 04 26 65 5d")
    assert wire.ask(H("ff ff fd 00 01 07 00 02 84 00 04 00 1d 15"), 15) == H(
        "ff ff fd 00 01 08 00 55 00 a6 00 00 00 8c c0"
    )
    sync_read = wire.ask(H("ff ff fd 00 fe 09 00 82 84 00 04 00 01 02 ce fa"), 30)
    assert sync_read == H("ff ff fd 00 01 08 00 55 00 a6 00 00 00 8c c0 ff ff fd 00 02 08 00 55 00 1f 08 00 00 ba be")


def test_errors_a_real_servo_answers(bus):
    emu, wire = bus

    def error(inst, params=b"", dxl_id=1):
        (p,) = wire.request(dxl_id, inst, params)
        return p.error

    assert error(0x42) == dxl.ERR_INSTRUCTION  # unknown instruction
    assert error(dxl.READ, H("96 00 04 00")) == dxl.ERR_ACCESS  # beyond the table
    assert error(dxl.READ, H("0e 00 02 00")) == dxl.ERR_ACCESS  # reserved bytes 14..15
    assert error(dxl.WRITE, H("84 00 00 00 00 00")) == dxl.ERR_ACCESS  # Present Position is read-only
    assert error(dxl.WRITE, H("74 00 00 02")) == dxl.ERR_DATA_LENGTH  # 2 of Goal Position's 4 bytes
    assert error(dxl.WRITE, H("0b 00 02")) == dxl.ERR_DATA_RANGE  # operating mode 2 does not exist
    assert error(dxl.WRITE, H("74 00 00 20 00 00")) == dxl.ERR_DATA_LIMIT  # goal 8192 beyond Max Position Limit
    assert error(dxl.WRITE, H("40 00 01")) == 0  # torque on ...
    assert error(dxl.WRITE, H("0b 00 04")) == dxl.ERR_ACCESS  # ... locks the EEPROM (operating mode)
    corrupt = bytearray(dxl.instruction_packet(1, dxl.PING))
    corrupt[-1] ^= 0xFF
    assert dxl.decode(wire.ask(bytes(corrupt), 11)).error == dxl.ERR_CRC
    assert wire.request(5, dxl.PING) == []  # nobody has ID 5
    with emu.lock:
        assert emu.servo(1).get("torque_enable") == 1 and emu.servo(1).get("operating_mode") == 3


def test_broadcast_ping_answers_in_id_order_and_status_return_level_silences_writes(bus):
    _, wire = bus
    assert [p.id for p in wire.request(dxl.BROADCAST_ID, dxl.PING, answers=2)] == [1, 2]
    # Status Return Level 1 (pings and reads only) applies to its own write's answer already
    assert wire.request(2, dxl.WRITE, H("44 00 01")) == []
    assert wire.request(2, dxl.WRITE, H("41 00 01")) == []
    assert wire.request(2, dxl.READ, H("41 00 01 00"))[0].params == b"\x01"  # the LED write happened


def test_a_servo_moves_toward_its_goal_at_its_speed_only_with_torque_on(bus):
    emu, wire = bus
    wire.request(1, dxl.WRITE, H("70 00 64 00 00 00"))  # Profile Velocity 100 x 0.229 rpm ~ 1563 ticks/s
    wire.request(1, dxl.WRITE, H("74 00 a6 04 00 00"))  # goal 1190 with torque off: no motion
    time.sleep(0.1)
    with emu.lock:
        assert emu.servo(1).get("present_position") == 166
    wire.request(1, dxl.WRITE, H("40 00 01"))  # torque on: the goal resets to where it stands
    wire.request(1, dxl.WRITE, H("74 00 a6 04 00 00"))
    t0 = time.monotonic()
    time.sleep(0.2)
    (p,) = wire.request(1, dxl.READ, H("84 00 04 00"))
    moved = int.from_bytes(p.params, "little") - 166
    assert 0 < moved <= 1563 * (time.monotonic() - t0) + 10
    time.sleep(0.8)
    (p,) = wire.request(1, dxl.READ, H("84 00 04 00"))
    assert int.from_bytes(p.params, "little") == 1190


def test_servo_configs_from_the_command_line():
    assert ServoConfig.parse("3:XM540-W270:1024") == ServoConfig(3, "XM540-W270", 1024)
    assert ServoConfig.parse("7") == ServoConfig(7, "XM430-W350", 2048)
    with pytest.raises(ValueError, match="unknown Dynamixel model 'XM999'"):
        ServoConfig.parse("1:XM999")
