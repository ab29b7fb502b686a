#!/usr/bin/env python3
"""Prints one line per inherited socket (``fd N NAME TYPE ADDRESS``), then sleeps until SIGTERM."""
import os
import signal
import socket

names = os.environ["LISTEN_FDNAMES"].split(":")
for fd, name in enumerate(names, 3):
    sock = socket.socket(fileno=fd)
    print(f"fd {fd} {name} {sock.type.name} {sock.getsockname()}", flush=True)
    sock.detach()
signal.sigwait([signal.SIGTERM])
