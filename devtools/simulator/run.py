"""Running a scenario: set up its campaign, play the call, report the record and a verdict."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.contrib.auth.models import User
from django.test import override_settings
from django.urls import reverse

from calls.models import Call, CallEvent, LegRole, StaffProfile
from campaigns.models import Campaign, Strategy, TrackingNumber
from devtools.fake_vonage_api import FakeVonageAPI

from .engine import MiniVonage, Narrate
from .scenarios import ANSWERS, CALLER_NUMBER, STAFF_PHONE, STAFF_USERNAME, Scenario, scenario_campaign

SIMULATOR_APPLICATION_ID = "00000000-0000-4000-8000-00000000c0de"


@dataclass
class Result:
    scenario: Scenario
    strategy: str
    call: Call | None
    heard: list[tuple[str, str]]  # (who, what), in order
    problems: list[str]
    status_events: list[tuple[str, str]]  # (leg uuid, status), every delivery made
    leg_uuids: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        return self.call.outcome if self.call is not None else "no call recorded"

    @property
    def ok(self) -> bool:
        return self.call is not None and self.call.outcome == self.scenario.expected and not self.problems

    def heard_by(self, who: str) -> list[str]:
        return [text for person, text in self.heard if person == who]

    @property
    def verdict(self) -> str:
        expected = f"expected outcome {self.scenario.expected}, got {self.outcome}"
        if self.ok:
            return f"{expected} … ok"
        problems = f"; {len(self.problems)} problem(s) above" if self.problems else ""
        return f"{expected}{problems} … FAILED"


def run_scenario(
    scenario: Scenario,
    *,
    fake: FakeVonageAPI,
    narrate: Narrate,
    strategy: str | None = None,
    to: str | None = None,
    from_: str = CALLER_NUMBER,
    talk_seconds: int = 45,
) -> Result:
    """Play ``scenario`` against the app, with ``fake`` as Vonage's REST API.

    ``to`` dials a number of your own as it is configured (the scenario's campaign
    settings are then not applied); otherwise the scenario dials its own campaign.
    """
    own = to is None
    if to is None:
        campaign = scenario_campaign(scenario, strategy=strategy)
        to = scenario.number
    else:
        number = TrackingNumber.objects.select_related("campaign").filter(number=to).first()
        campaign = number.campaign if number else None
    _header(scenario, campaign=campaign, to=to, from_=from_, own=own, fake=fake, narrate=narrate)
    used = campaign.strategy if campaign is not None else Strategy.CONFERENCE
    if strategy in scenario.not_for:
        narrate(f"Note: the {strategy} strategy does not apply here: {scenario.not_for[strategy]}")
    narrate("")

    if scenario.api_down:
        fake.fail(500, times=None)
    vonage = MiniVonage(fake=fake, scenario=scenario, narrate=narrate, talk_seconds=talk_seconds)
    try:
        caller = vonage.play(to=to, from_=from_)
    finally:
        if scenario.api_down:
            fake.clear_faults()

    call = Call.objects.filter(legs__uuid=caller.uuid).with_related().first()
    if scenario.callback:
        vonage, call = _call_back(scenario, missed=call, fake=fake, narrate=narrate, talk_seconds=talk_seconds)
    result = Result(
        scenario=scenario,
        strategy=used,
        call=call,
        heard=vonage.heard,
        problems=vonage.problems,
        status_events=vonage.status_events,
        leg_uuids=list(vonage.legs),
    )
    _report(result, fake=fake, narrate=narrate)
    return result


def _call_back(
    scenario: Scenario, *, missed: Call | None, fake: FakeVonageAPI, narrate: Narrate, talk_seconds: int
) -> tuple[MiniVonage, Call | None]:
    """The call-back scenario's second half: the missed caller is in the queue, and the
    simulator's staff member (a user who cannot log in) presses Call back."""
    from calls import callbacks

    narrate("")
    if missed is None or missed.pk not in {entry.call.pk for entry in callbacks.callback_queue()}:
        narrate("The missed call is not in the call-back queue: nobody can call back.")
        return MiniVonage(fake=fake, scenario=scenario, narrate=narrate, talk_seconds=talk_seconds), None
    narrate(f"Call {missed.pk} ({missed.outcome}) is in the call-back queue.")
    staff, _ = User.objects.get_or_create(username=STAFF_USERNAME, defaults={"is_active": False})
    StaffProfile.objects.update_or_create(user=staff, defaults={"phone": STAFF_PHONE})
    # The staff member and the caller both pick up.
    answering = replace(scenario, agents=(ANSWERS,))
    vonage = MiniVonage(fake=fake, scenario=answering, narrate=narrate, talk_seconds=talk_seconds)
    vonage.play_callback(lambda: callbacks.callback_place(call_id=missed.pk, user=staff))
    callback = Call.objects.filter(callback_of=missed).with_related().order_by("-pk").first()
    if missed.pk in {entry.call.pk for entry in callbacks.callback_queue()}:
        vonage.problem("the caller is still in the call-back queue after the call-back")
    return vonage, callback


def _header(
    scenario: Scenario,
    *,
    campaign: Campaign | None,
    to: str,
    from_: str,
    own: bool,
    fake: FakeVonageAPI,
    narrate: Narrate,
) -> None:
    strategy = campaign.strategy if campaign is not None else "conference (no campaign)"
    narrate(f"Scenario {scenario.name}, {strategy} strategy: {scenario.story}")
    if campaign is None:
        narrate(f"  campaign: none (+{to} is not a campaign number)")
    elif own:
        narrate(f"  campaign: “{campaign}”, the simulator's own for this scenario (your campaigns are untouched)")
    else:
        narrate(f"  campaign: “{campaign}”, as configured in the admin (the scenario's own settings are not applied)")
    destinations = ", ".join(f"+{n}" for n in campaign.destinations) if campaign else f"+{settings.CALL_CENTER_NUMBER}"
    narrate(f"  the caller +{from_} dials +{to}; destinations: {destinations}")
    narrate(f"  Vonage's REST API: the local fake at {fake.host}, through the real SDK; nothing leaves this machine")


def _report(result: Result, *, fake: FakeVonageAPI, narrate: Narrate) -> None:
    narrate("")
    call = result.call
    if call is None:
        narrate("The app recorded no call.")
        narrate(f"Verdict: {result.verdict}")
        return
    agent_legs = call.legs.filter(role=LegRole.AGENT).count()
    events = Counter(CallEvent.objects.filter(call=call).values_list("kind", flat=True))
    redeliveries = len(result.status_events) - len(set(result.status_events))

    def seconds(value: int | None) -> str:
        return f"{value} s" if value is not None else "-"

    narrate(f"Call {call.pk}: outcome {call.outcome}, state {call.state}, {call.strategy} strategy")
    narrate(f"  number: {call.get_number_status_display().lower()}; campaign: {call.campaign or '-'}")
    narrate(f"  whisper as spoken: “{call.whisper_text}”" if call.whisper_text else "  no whisper was spoken")
    narrate(f"  wait {seconds(call.wait_seconds)}, talk {seconds(call.talk_seconds)}")
    narrate(f"  agent legs: {agent_legs}; attempt {call.attempt} (0 is the first destination)")
    if call.recording_url:
        narrate(f"  voicemail: {call.recording_url} ({seconds(call.recording_seconds)})")
    if call.agent_call_error:
        narrate(f"  agent call error: {call.agent_call_error}")
    stored = ", ".join(f"{count} {kind}" for kind, count in sorted(events.items()))
    narrate(
        f"  events stored: {sum(events.values())} ({stored}); deliveries made: "
        f"{len(result.status_events)} status, {redeliveries} of them again"
    )
    requests = Counter(
        f"{r.method} {'/v1/calls' if r.route == 'create' else r.action or r.path}→{r.status or r.fault}"
        for r in fake.requests
    )
    narrate("  REST requests to Vonage: " + (", ".join(f"{k} ×{v}" for k, v in requests.items()) or "none"))
    narrate(f"  admin: {settings.PUBLIC_URL}{reverse('admin:calls_call_change', args=[call.pk])}")
    narrate(f"Verdict: {result.verdict}")


@contextmanager
def local_vonage() -> Iterator[FakeVonageAPI]:
    """Vonage's REST API served by the local fake, with throwaway credentials: the app's
    real SDK path runs and nothing leaves the machine. For the management command; the
    tests configure the same with their fixtures."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # PKCS#8: the SDK refuses PKCS#1 ("BEGIN RSA PRIVATE KEY").
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with FakeVonageAPI(public_key=public_pem, application_id=SIMULATOR_APPLICATION_ID) as fake:
        with (
            override_settings(
                VONAGE_APPLICATION_ID=SIMULATOR_APPLICATION_ID,
                VONAGE_PRIVATE_KEY=private_pem,
                VONAGE_API_HOST=fake.host,
                # The simulation runs in one thread on its own clock: the agent call is
                # placed before the answer returns, where the fake's log shows it at once.
                AGENT_CALL_DISPATCH="inline",
                # Vonage's 5 s budget does not apply to the simulated Vonage, and no scenario
                # is about our deadline: a busy machine (the first request also imports the
                # SDK) must not turn a whispered call into a direct connect.
                AGENT_CALL_DEADLINE_SECONDS=30.0,
                # One call at a time on a simulated clock: the pacer's send times (real
                # clock, shared database) would not mean anything to it.
                VONAGE_CALLS_PER_SECOND=0,
            ),
            _environ(
                REQUESTS_CA_BUNDLE=fake.ca_bundle_path,
                # A proxy in the environment must not be asked for 127.0.0.1.
                NO_PROXY="127.0.0.1,localhost",
                no_proxy="127.0.0.1,localhost",
            ),
        ):
            yield fake


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
