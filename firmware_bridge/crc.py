"""CRC-16/CCITT-FALSE, the frame check of protocol v1.

``binascii.crc_hqx`` is the C implementation that ships with Python (poly 0x1021, no
reflection); with the initial value 0xFFFF it is CRC-16/CCITT-FALSE, which every
microcontroller SDK has a table or hardware unit for. Keeping the parameters in one place
means the Python decoder, the Python encoder and the C reference firmware cannot drift apart.
"""

from __future__ import annotations

import binascii

#: Initial register value (CRC-16/CCITT-FALSE).
CRC_INIT = 0xFFFF
#: Generator polynomial x^16 + x^12 + x^5 + 1, stated for firmware authors.
CRC_POLY = 0x1021
#: CRC of ASCII "123456789": the standard check value of this CRC variant.
CRC_CHECK = 0x29B1


def crc16(data: bytes | bytearray | memoryview, crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data``; pass a previous result as ``crc`` to continue it."""
    return binascii.crc_hqx(data, crc)
