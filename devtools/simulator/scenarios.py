"""The scenarios the simulator plays: what the people in a call do, and what the app
should make of it.

Each scenario dials a campaign of its own, "Simulator: <name>", on a number from the
fictional 4477009001xx range, configured by the scenario on every run (fallback, press
1, hunt list, opening hours), so the demo campaigns and anyone's real ones stay as they
are. Only the strategy is the campaign's own unless ``--strategy`` says otherwise.
"""

from dataclasses import dataclass, field
from datetime import time, timedelta

from django.db import transaction
from django.utils import timezone

from calls.models import Outcome
from campaigns.models import Campaign, ClosedAction, Fallback, OpeningHours, TrackingNumber
from campaigns.schedule import local_time

CALLER_NUMBER = "447946000123"
FIRST_DESTINATION = "447700900999"
SECOND_DESTINATION = "447700900998"
UNKNOWN_NUMBER = "447700900199"
STAFF_PHONE = "447700900997"  # the call-back scenario's staff member's own phone
STAFF_USERNAME = "call-simulator"

# What an agent's phone does when it rings.
ANSWERS = "answers"
BUSY = "busy"
NO_ANSWER = "no answer"
VOICEMAIL = "voicemail"  # an answering machine picks up
DECLINES = "declines"  # answers, hears the whisper, presses 2

# How the call ends.
CALLER_HANGS_UP = "the caller hangs up after talking"
AGENT_HANGS_UP = "the agent hangs up after talking"
CALLER_LEAVES_WHILE_RINGING = "the caller hangs up while the agent's phone rings"
CALLER_LEAVES_DURING_WHISPER = "the caller hangs up while the agent hears the whisper"

NO_CAMPAIGN_FOR_CONNECT = (
    "the strategy is a campaign setting, and an unknown number has no campaign: the app "
    "always answers it with the conference strategy, so a connect run would repeat the "
    "conference run."
)


@dataclass(frozen=True)
class Scenario:
    name: str
    story: str
    expected: str  # the call's outcome (calls.models.Outcome)
    number: str  # the simulator campaign's number for this scenario
    agents: tuple[str, ...] = (ANSWERS,)  # what each destination rung does, in order
    ending: str = CALLER_HANGS_UP
    fallback: str = Fallback.VOICEMAIL
    require_accept: bool = False
    hunt: bool = False
    closed: bool = False
    unknown_number: bool = False
    api_down: bool = False
    # A missed call first, then a staff member presses Call back in the queue (calls/callbacks.py).
    callback: bool = False
    # Strategy → why the scenario does not apply to it.
    not_for: dict[str, str] = field(default_factory=dict)

    @property
    def campaign_name(self) -> str:
        return f"Simulator: {self.name}"


def _number(n: int) -> str:
    return f"4477009001{n:02d}"


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in [
        Scenario(
            "answered",
            "The agent answers, hears the whisper, and talks to the caller; the caller hangs up.",
            Outcome.ANSWERED,
            _number(1),
        ),
        Scenario(
            "agent-busy",
            "The agent's line is busy; the caller is offered voicemail and leaves a message.",
            Outcome.VOICEMAIL,
            _number(2),
            agents=(BUSY,),
            fallback=Fallback.VOICEMAIL,
        ),
        Scenario(
            "agent-no-answer",
            "Nobody picks up before the ring time runs out; the caller hears the fallback message.",
            Outcome.MISSED,
            _number(3),
            agents=(NO_ANSWER,),
            fallback=Fallback.MESSAGE,
        ),
        Scenario(
            "agent-voicemail",
            "The agent's answering machine picks up; Vonage detects it and the caller hears the fallback message.",
            Outcome.MISSED,
            _number(4),
            agents=(VOICEMAIL,),
            fallback=Fallback.MESSAGE,
        ),
        Scenario(
            "agent-declines",
            "Press 1 to accept: the agent hears the whisper and presses 2; the caller hears the fallback message.",
            Outcome.DECLINED,
            _number(5),
            agents=(DECLINES,),
            fallback=Fallback.MESSAGE,
            require_accept=True,
        ),
        Scenario(
            "caller-hangs-up-while-ringing",
            "The caller hangs up while the agent's phone is still ringing; the ringing stops.",
            Outcome.ABANDONED,
            _number(6),
            agents=(NO_ANSWER,),
            ending=CALLER_LEAVES_WHILE_RINGING,
        ),
        Scenario(
            "caller-hangs-up-during-whisper",
            "The caller hangs up while the agent is hearing the whisper; the agent is told.",
            Outcome.ABANDONED,
            _number(7),
            ending=CALLER_LEAVES_DURING_WHISPER,
        ),
        Scenario(
            "agent-hangs-up",
            "The agent answers and talks, then hangs up first; the caller's leg ends with it.",
            Outcome.ANSWERED,
            _number(8),
            ending=AGENT_HANGS_UP,
        ),
        Scenario(
            "hunt-to-second-number",
            "The first destination is busy; the second one answers and talks to the caller.",
            Outcome.ANSWERED,
            _number(9),
            agents=(BUSY, ANSWERS),
            hunt=True,
        ),
        Scenario(
            "after-hours",
            "The campaign is closed now: the caller hears the closed message and nobody is rung.",
            Outcome.CLOSED,
            _number(10),
            agents=(),
            closed=True,
        ),
        Scenario(
            "unknown-number",
            "A number no campaign has: the call centre is rung and told it is an unrecognised number.",
            Outcome.ANSWERED,
            UNKNOWN_NUMBER,
            unknown_number=True,
            not_for={"connect": NO_CAMPAIGN_FOR_CONNECT},
        ),
        Scenario(
            "call-back",
            "Nobody takes the call; a staff member presses Call back: their phone rings, they hear "
            "who they are calling back, then the caller is rung and answers.",
            Outcome.ANSWERED,
            _number(13),
            agents=(NO_ANSWER,),
            fallback=Fallback.MESSAGE,
            callback=True,
        ),
        Scenario(
            "api-down",
            "Vonage's REST API answers 500 to everything: the caller must still reach an agent.",
            Outcome.ANSWERED,
            _number(12),
            api_down=True,
        ),
    ]
}


def scenario_campaign(scenario: Scenario, *, strategy: str | None) -> Campaign | None:
    """Create or reconfigure the scenario's own campaign and number; None for a number
    no campaign may have."""
    if scenario.unknown_number:
        if TrackingNumber.objects.filter(number=scenario.number).exists():
            raise ValueError(
                f"The unknown-number scenario dials +{scenario.number}, but a campaign uses that number now."
            )
        return None
    settings = {
        "topic": f"the {scenario.name} scenario",
        "destination": FIRST_DESTINATION,
        "hunt_numbers": SECOND_DESTINATION if scenario.hunt else "",
        "require_accept": scenario.require_accept,
        "fallback": scenario.fallback,
        "closed_action": ClosedAction.MESSAGE,
        "starts_on": None,
        "ends_on": None,
        "is_active": True,
        "is_demo": True,
    }
    if strategy:
        settings["strategy"] = strategy
    with transaction.atomic():
        campaign, _ = Campaign.objects.update_or_create(name=scenario.campaign_name, defaults=settings)
        TrackingNumber.objects.update_or_create(
            number=scenario.number,
            defaults={"campaign": campaign, "source": "the call simulator", "is_active": True},
        )
        campaign.opening_hours.all().delete()
        if scenario.closed:
            # Open only on another day of the week, so it is closed now whatever the hour.
            today = local_time(timezone.now(), campaign.timezone)
            other_day = (today + timedelta(days=3)).weekday()
            OpeningHours.objects.create(campaign=campaign, weekday=other_day, opens=time(9), closes=time(17))
    return campaign
