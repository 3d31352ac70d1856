"""Dynamixel Protocol 2.0 framing against the e-Manual's example packets (docs/en/dxl/protocol2 in ROBOTIS' e-Manual),
and against the ROBOTIS SDK's own CRC and byte stuffing."""

from __future__ import annotations

import random

import pytest

from vla_sdk.robots import dynamixel_protocol as dxl

H = bytes.fromhex


# (packet, id, instruction, params, error) from the e-Manual's Instruction Details examples
EMANUAL = [
    ("ff ff fd 00 01 03 00 01 19 4e", 1, dxl.PING, "", None),  # Ping, ID 1
    ("ff ff fd 00 fe 03 00 01 31 42", 0xFE, dxl.PING, "", None),  # Ping, broadcast
    ("ff ff fd 00 01 07 00 55 00 06 04 26 65 5d", 1, dxl.STATUS, "06 04 26", 0),  # model 1030, firmware 38
    ("ff ff fd 00 02 07 00 55 00 06 04 26 6f 6d", 2, dxl.STATUS, "06 04 26", 0),
    ("ff ff fd 00 01 07 00 02 84 00 04 00 1d 15", 1, dxl.READ, "84 00 04 00", None),  # Present Position, 4 bytes
    ("ff ff fd 00 01 08 00 55 00 a6 00 00 00 8c c0", 1, dxl.STATUS, "a6 00 00 00", 0),  # = 166
    ("ff ff fd 00 01 09 00 03 74 00 00 02 00 00 ca 89", 1, dxl.WRITE, "74 00 00 02 00 00", None),  # Goal Pos = 512
    ("ff ff fd 00 01 04 00 55 00 a1 0c", 1, dxl.STATUS, "", 0),
    ("ff ff fd 00 01 03 00 08 2f 4e", 1, dxl.REBOOT, "", None),
    ("ff ff fd 00 fe 09 00 82 84 00 04 00 01 02 ce fa", 0xFE, dxl.SYNC_READ, "84 00 04 00 01 02", None),
    ("ff ff fd 00 02 08 00 55 00 1f 08 00 00 ba be", 2, dxl.STATUS, "1f 08 00 00", 0),  # = 2079
    (
        "ff ff fd 00 fe 11 00 83 74 00 04 00 01 96 00 00 00 02 aa 00 00 00 82 87",
        0xFE,
        dxl.SYNC_WRITE,
        "74 00 04 00 01 96 00 00 00 02 aa 00 00 00",
        None,
    ),
]


@pytest.mark.parametrize("packet,dxl_id,instruction,params,error", EMANUAL)
def test_the_emanual_examples_encode_and_decode(packet, dxl_id, instruction, params, error):
    if instruction == dxl.STATUS:
        assert dxl.status_packet(dxl_id, error, H(params)) == H(packet)
    else:
        assert dxl.instruction_packet(dxl_id, instruction, H(params)) == H(packet)
    got = dxl.decode(H(packet))
    assert (got.id, got.instruction, got.params, got.error, got.crc_ok) == (dxl_id, instruction, H(params), error, True)


def test_crc16_is_the_0x8005_polynomial():
    assert dxl.crc16(H("ff ff fd 00 01 03 00 01")) == 0x4E19
    assert dxl.crc16(b"123456789") == 0xFEE8  # CRC-16/BUYPASS check value: poly 0x8005, init 0, not reflected
    assert dxl.crc16(b"") == 0


def test_byte_stuffing_hides_headers_inside_a_packet():
    params = H("74 00 04 00 01 ff ff fd 00")  # a goal of 0x00fdffff: the header pattern inside the data
    packet = dxl.instruction_packet(0xFE, dxl.SYNC_WRITE, params)
    assert packet.count(H("ff ff fd")) == 2 and H("ff ff fd fd 00") in packet  # the stuffed FD after the pattern
    assert int.from_bytes(packet[5:7], "little") == 1 + len(params) + 1 + 2  # LEN counts the stuffed byte
    assert dxl.decode(packet).params == params
    assert dxl.stuff(H("ff ff fd fd")) == H("ff ff fd fd fd")
    assert dxl.unstuff(H("ff ff fd fd fd")) == H("ff ff fd fd")


def test_random_packets_round_trip_and_match_the_robotis_sdk():
    sdk = pytest.importorskip("dynamixel_sdk")
    ph = sdk.PacketHandler(2.0)
    rng = random.Random(0)
    for _ in range(300):
        n = rng.randrange(0, 40)
        params = bytes(rng.choice([0xFF, 0xFD, 0x00, rng.randrange(256)]) for _ in range(n))
        dxl_id, inst = rng.choice([1, 7, 0xFE]), rng.choice([dxl.WRITE, dxl.SYNC_WRITE, 0x42])
        packet = dxl.instruction_packet(dxl_id, inst, params)
        got = dxl.decode(packet)
        assert (got.id, got.instruction, got.params) == (dxl_id, inst, params)
        assert dxl.crc16(packet[:-2]) == ph.updateCRC(0, list(packet), len(packet) - 2)
        # addStuffing([header(7) + inst + params + crc(2)] with LEN set) returns the stuffed packet (note: when it
        # grows it is a new list, and the SDK's own txPacket ignores the return value, so dynamixel-sdk 4.1 sends
        # parameters that contain FF FF FD unstuffed)
        raw = list(dxl.HEADER) + [dxl_id, *(len(params) + 3).to_bytes(2, "little"), inst, *params, 0, 0]
        stuffed = ph.addStuffing(raw)
        assert bytes(stuffed[5:-2]) == packet[5:-2]


def test_the_parser_skips_noise_waits_for_the_rest_and_flags_a_bad_crc():
    a = dxl.instruction_packet(1, dxl.PING)
    b = dxl.status_packet(3, dxl.ERR_ACCESS)
    buffer = bytearray(H("00 ff ff 12") + a + b[:5])
    assert dxl.parse(buffer).id == 1
    assert dxl.parse(buffer) is None  # half a packet: kept
    buffer += b[5:]
    got = dxl.parse(buffer)
    assert (got.id, got.error) == (3, dxl.ERR_ACCESS) and not buffer
    corrupt = bytearray(a)
    corrupt[-1] ^= 0x01
    assert dxl.parse(corrupt).crc_ok is False
    with pytest.raises(ValueError, match="no complete"):
        dxl.decode(a[:-1])
