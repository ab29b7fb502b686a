"""supervisor-littleboss: zero-downtime reloads of programs run by supervisord.

supervisord holds each littleboss program's listening sockets and hands them to
the program by the systemd socket-activation convention (``LISTEN_FDS`` at fd 3+).
"""

__version__ = "0.1.0"
