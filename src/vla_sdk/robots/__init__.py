"""Hardware drivers and their emulators (deploy layer).

    dynamixel_protocol   Dynamixel Protocol 2.0 packets (CRC-16, byte stuffing) and the X-series control table
    dynamixel_emulator   a pseudo-terminal that answers like a bus of X-series servos (tests, dry runs)
    dynamixel_bus        the host side: a bus of named servos over the real dynamixel-sdk (extra ``aloha2``)

Nothing here imports dynamixel-sdk at import time except :mod:`dynamixel_bus`, which needs the ``aloha2`` extra.
"""
