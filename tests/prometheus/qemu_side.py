#!/usr/bin/env python3
"""QEMU's side of a guest channel, for tests/prometheus/run.

  qemu_side.py relay CHANNEL_SOCKET GUEST_SOCKET
      Listens on CHANNEL_SOCKET (where QEMU would, for vmpowerd to connect
      to) and on GUEST_SOCKET (for vmpower-guest --port), and passes bytes
      both ways, as QEMU does between the host socket and the guest's
      virtio-serial port: the daemon's connection is kept across the
      guest's opens, and a new daemon connection (a restart) replaces the
      old one. Runs until killed.

  qemu_side.py flap CHANNEL_SOCKET COUNT
      Accepts the daemon's connection, keeps the first one 3 s, closes
      each of the next at once (COUNT accepts in all), then stops listening and leaves the socket file: a channel that
      flaps, then is down.
"""

import os
import selectors
import socket
import sys
import time


def listen(path):
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(4)
    return s


def relay(channel_path, guest_path):
    sel = selectors.DefaultSelector()
    host_l, guest_l = listen(channel_path), listen(guest_path)
    sel.register(host_l, selectors.EVENT_READ, "host_l")
    sel.register(guest_l, selectors.EVENT_READ, "guest_l")
    ends = {"host": None, "guest": None}

    def drop(side):
        if ends[side] is not None:
            sel.unregister(ends[side])
            ends[side].close()
            ends[side] = None

    while True:
        for key, _ in sel.select():
            what = key.data
            if what in ("host_l", "guest_l"):
                side = what[:-2]
                conn, _ = key.fileobj.accept()
                drop(side)
                ends[side] = conn
                sel.register(conn, selectors.EVENT_READ, side)
                continue
            try:
                data = key.fileobj.recv(65536)
            except OSError:
                data = b""
            if not data:
                drop(what)
                continue
            other = ends["guest" if what == "host" else "host"]
            if other is not None:
                try:
                    other.sendall(data)
                except OSError:
                    drop("guest" if what == "host" else "host")


def flap(channel_path, count):
    s = listen(channel_path)
    for i in range(count):
        conn, _ = s.accept()
        if i == 0:
            # Up for a few scrapes first: the reconnect counter is then
            # scraped at 0 before it grows, and increase() sees every one.
            time.sleep(3)
        conn.close()
    # Stop listening, keep the file: connects are refused from now on.
    s.close()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "relay":
        relay(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "flap":
        flap(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
