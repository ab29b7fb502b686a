#!/usr/bin/env python3
"""UDP test server, written with the program-side helper: answers each datagram with
``VERSION PID PAYLOAD``. On SIGTERM it stops reading, so every datagram it read has been
answered, and exits 0."""
import os
import socket

from supervisor_littleboss.program import Littleboss

VERSION = os.environ.get("APP_VERSION", "v1")


def main(ctx) -> None:
    sock = dns.socket()
    # the shared socket's queue, as deep as the kernel allows (net.core.rmem_max): the tests count
    # every datagram, and a loaded machine can keep old and new process from reading for a moment
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sock.settimeout(0.05)
    lb.ready()
    prefix = f"{VERSION} {os.getpid()} ".encode()
    while not ctx.done():
        try:
            data, peer = sock.recvfrom(2048)
        except TimeoutError:
            continue
        sock.sendto(prefix + data, peer)


lb = Littleboss("udp")
dns = lb.listener("dns", "udp", "127.0.0.1:5353", "address to answer on")
lb.run(main)
