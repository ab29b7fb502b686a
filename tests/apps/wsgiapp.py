"""WSGI test app for gunicorn: answers ``VERSION PID``."""
import os

VERSION = os.environ.get("APP_VERSION", "v1")


def app(environ, start_response):
    body = f"{VERSION} {os.getpid()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
