"""Development tools: the local TLS fake of Vonage's REST API and the call simulator.

Not part of the production app: nothing in ``calls`` or ``campaigns`` imports them, and
their dependencies (trustme, cryptography) are in ``requirements-dev.txt`` only. The app
is installed so that ``manage.py simulate_call`` exists everywhere and can say what to
install where the development requirements are missing.
"""
