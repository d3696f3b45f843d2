"""Serial ports on this machine (pyserial's list_ports), for `ecg-bridge ports`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from serial.tools import list_ports


@dataclass
class PortInfo:
    device: str
    description: str
    hwid: str
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_serial_ports() -> list[PortInfo]:
    """USB CDC/FTDI/CH340 adapters and built-in UARTs that the OS exposes, sorted by path."""
    return [PortInfo(p.device, p.description or "", p.hwid or "", p.vid, p.pid,
                     p.serial_number)
            for p in sorted(list_ports.comports(), key=lambda p: p.device)]
