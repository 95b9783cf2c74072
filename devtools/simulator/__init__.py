"""The call simulator: plays Vonage's side of whole calls against the app, in-process.

``manage.py simulate_call --scenario NAME`` and ``tests/e2e/test_scenarios.py`` run the
same scenarios (:mod:`.scenarios`) through the same engine (:mod:`.engine`), with the
app's REST requests served by the local TLS fake of Vonage's API.
"""

from .engine import MiniVonage
from .run import Result, local_vonage, run_scenario
from .scenarios import SCENARIOS, Scenario

__all__ = ["SCENARIOS", "MiniVonage", "Result", "Scenario", "local_vonage", "run_scenario"]
