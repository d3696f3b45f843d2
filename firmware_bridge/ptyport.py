"""The device end of a pseudo-terminal, behaving like a USB serial adapter.

The host opens the slave side (``/dev/pts/N``) with pyserial like any port. A stable symlink
points at it so that a "replug" (close the pty, open a new one) keeps the path the host
reconnects to, as udev's ``/dev/serial/by-id`` links do. Whether the host has the port open is
read from the master's POLLHUP, the way socat's ``wait-slave`` does.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import struct
import termios
import time
import tty
from pathlib import Path


class PtyPort:
    """One pseudo-terminal; ``link`` (if given) is kept pointing at its slave."""

    def __init__(self, link: Path | None = None) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR/LF translation before the host configures it
        self.slave_path = os.ttyname(slave)
        os.close(slave)
        os.set_blocking(self.master, False)
        self._poll = select.poll()
        self._poll.register(self.master, select.POLLIN | select.POLLHUP)
        self.link = link
        if link is not None:
            tmp = link.with_name(link.name + ".new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.slave_path)
            os.replace(tmp, link)  # atomic: the host never sees a missing link mid-swap

    @property
    def path(self) -> str:
        return str(self.link) if self.link is not None else self.slave_path

    def host_present(self) -> bool:
        """Whether some process has the slave open (no POLLHUP on the master)."""
        return not any(ev & select.POLLHUP for _, ev in self._poll.poll(0))

    def read(self) -> bytes:
        """Whatever the host wrote (requests); empty when nothing or nobody is there."""
        try:
            return os.read(self.master, 4096)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EIO):
                return b""
            raise

    def write(self, data: bytes, timeout: float) -> int:
        """Write as much of ``data`` as the host takes within ``timeout``; returns bytes written.

        Non-blocking with a deadline: a host that stops reading must not freeze the
        front-end's clock (a real UART just keeps sending).
        """
        done = 0
        deadline = time.monotonic() + timeout
        view = memoryview(data)
        while done < len(data):
            try:
                done += os.write(self.master, view[done:])
                continue
            except BlockingIOError:
                pass
            except OSError as exc:
                if exc.errno == errno.EIO:
                    return done
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                return done
            select.select([], [self.master], [], min(left, 0.05))
        return done

    def unread(self) -> int:
        """Bytes written but not yet read by the host (the slave's input queue)."""
        try:
            fd = os.open(self.slave_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return 0
        try:
            return struct.unpack("i", fcntl.ioctl(fd, termios.TIOCINQ, b"\0\0\0\0"))[0]
        finally:
            os.close(fd)

    def drain(self, timeout: float) -> int:
        """Wait until the host has read everything; returns what is still unread.

        Written bytes reach the slave's input queue through the kernel's flip buffer a moment
        later, so an empty queue counts only when it stays empty over a few checks.
        """
        deadline = time.monotonic() + timeout
        empty_checks = 0
        while True:
            time.sleep(0.01)
            left = self.unread()
            empty_checks = empty_checks + 1 if left == 0 else 0
            if empty_checks >= 4 or time.monotonic() >= deadline or not self.host_present():
                return left

    def close(self) -> None:
        """Unplug: the host's next read fails (EIO), as when a USB adapter is pulled."""
        if self.link is not None:
            try:
                if os.readlink(self.link) == self.slave_path:
                    self.link.unlink()
            except OSError:
                pass
        os.close(self.master)
