"""The myblog example: a supervisord configuration with littleboss and a program to run under it.

Its files (``supervisord.conf``, ``myblog.conf``, ``myblog.py``) ship with the package;
``python -m supervisor_littleboss.example DIR`` copies them to ``DIR``, where they run.
"""
