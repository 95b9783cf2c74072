"""A mini-Vonage: plays Vonage's side of a call against the app, in-process.

It sends the webhooks Vonage would send, through Django's test client (so the real URL
routing, signature check, serializers, services and flow run), executes the NCCOs the
app answers with, and reacts to the REST requests the app makes, which the local TLS
fake of the API (``devtools.fake_vonage_api``) receives through the real SDK and records:
after every webhook the engine reads the fake's new requests and plays them (a new
call rings, a transfer runs its NCCO on that leg, a hang-up ends the leg).

Time is simulated: every step is scheduled on a clock that starts now and jumps from
step to step, and the app reads the same clock (``django.utils.timezone.now`` is
patched while a call plays), so the app's own timestamps (when the caller was moved
to the fallback, when the agent declined) agree with the events' timestamps.

Deliveries are as untidy as Vonage's (VONAGE.md): ``ringing`` before ``started`` with
the same timestamp, a busy leg's ``busy → started → ringing → completed``, an
unanswered leg's failure status after its ``completed``, and one redelivery per call
(the first ``completed`` is posted twice).
"""

from __future__ import annotations

import heapq
import itertools
import json
import uuid as uuid_lib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, urlsplit

from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from calls.webhooks.signatures import sign_webhook
from campaigns.whisper import speaking_seconds
from devtools.fake_vonage_api import FakeCall, FakeVonageAPI, RecordedRequest

from .scenarios import (
    AGENT_HANGS_UP,
    ANSWERS,
    BUSY,
    CALLER_LEAVES_DURING_WHISPER,
    CALLER_LEAVES_WHILE_RINGING,
    DECLINES,
    NO_ANSWER,
    VOICEMAIL,
    Scenario,
)

Narrate = Callable[[str], None]
Ncco = list[dict[str, Any]]

# How long things take, in simulated seconds.
PICK_UP_SECONDS = 3.0  # an agent who answers lets it ring this long
BUSY_SECONDS = 1.0
MACHINE_DETECTED_SECONDS = 2.0  # into the answering machine's greeting
KEY_PRESS_SECONDS = 2.0
MESSAGE_SECONDS = 8  # the voicemail the caller leaves, before the silence that ends it
CALLER_PATIENCE_SECONDS = 4.0  # for a caller who hangs up while the agent rings
TEARDOWN_SECONDS = 0.2  # Vonage ending the other side of a connect
MAX_STEPS = 1000
MAX_CALL = timedelta(hours=2)

# A connect's synchronous event whose answer Vonage runs as the caller's next NCCO
# (VONAGE.md); the app answers ``machine`` too (machineDetection: hangup), and so does
# the engine play it.
NEXT_NCCO_STATUSES = frozenset({"busy", "timeout", "failed", "rejected", "unanswered", "machine"})
ENDED = "ended"
KNOWN_ACTIONS = frozenset({"talk", "conversation", "connect", "input", "record", "stream", "notify"})


def vonage_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(eq=False)
class SimLeg:
    """One call leg as Vonage runs it."""

    uuid: str
    who: str  # whose ear: "caller", "agent", "agent's voicemail"
    from_: str
    to: str
    direction: str
    conversation_uuid: str
    event_url: str
    synchronous: bool = False  # a connect's eventType
    behaviour: str = ""  # an agent's: ANSWERS, BUSY...
    answer_url: str = ""  # the create-call answer_url, or a connect's onAnswer url
    ringback_tone: str = ""  # a connect's onAnswer ringbackTone: the caller hears it during the whisper
    ring_timer: int = 60
    machine_detection: str = ""
    parent: SimLeg | None = None  # connect: the leg whose NCCO rang this one
    child: SimLeg | None = None  # connect: the leg this one is ringing or bridged to
    status: str = "started"
    answered_at: datetime | None = None
    version: int = 0  # a new NCCO (or the end) makes the old NCCO's pending steps stale
    actions: Ncco = field(default_factory=list)
    last_action: str = ""
    room: str = ""
    bridged: bool = False
    next_ncco: Ncco | None = None  # connect: the app's answer for the caller when this leg gave up

    @property
    def ended(self) -> bool:
        return self.status == ENDED

    @property
    def role(self) -> str:
        return "caller" if self.direction == "inbound" else "agent"


@dataclass(order=True)
class _Step:
    at: datetime
    seq: int
    run: Callable[[], None] = field(compare=False)
    leg: SimLeg | None = field(compare=False, default=None)
    version: int | None = field(compare=False, default=None)  # None: only the leg's end makes it stale


class MiniVonage:
    def __init__(self, *, fake: FakeVonageAPI, scenario: Scenario, narrate: Narrate, talk_seconds: int) -> None:
        self.fake = fake
        self.scenario = scenario
        self._narrate = narrate
        self.talk_seconds = talk_seconds
        self.start = self.now = timezone.now()
        self.legs: dict[str, SimLeg] = {}
        self.caller: SimLeg | None = None
        self.heard: list[tuple[str, str]] = []
        self.problems: list[str] = []
        self.status_events: list[tuple[str, str]] = []  # (uuid, status), every delivery
        self._queue: list[_Step] = []
        self._seq = itertools.count()
        self._rooms: dict[str, dict[str, bool]] = {}  # name → {leg uuid: endOnExit}
        self._started_rooms: set[str] = set()
        self._behaviours = list(scenario.agents) or [ANSWERS]
        self._rest_seen = len(fake.requests)
        # Calls created before this one played (the call-back scenario's missed call) are not its legs.
        self._earlier_calls = {call.uuid for call in fake.created_calls()}
        self._applying_rest = False
        self._redelivered = False
        self._talking = False
        self._ending_planned = False
        self._calling_back = False
        host = [h for h in settings.ALLOWED_HOSTS if h != "*" and not h.startswith(".")]
        self.client = Client(SERVER_NAME=host[0] if host else "localhost")

    # --- playing ------------------------------------------------------------------------

    def play(self, *, to: str, from_: str) -> SimLeg:
        """Play a whole call from the caller dialling ``to`` until every leg has ended."""
        with mock.patch("django.utils.timezone.now", lambda: self.now):
            caller = self._dial(to=to, from_=from_)
            self._run()
            self._nobody_left()
        return caller

    def play_callback(self, press: Callable[[], object]) -> None:
        """Play a call-back (calls/callbacks.py): ``press`` is the staff member pressing
        Call back; the app's create-call rings their phone, its answer connects the caller."""
        self._calling_back = True
        with mock.patch("django.utils.timezone.now", lambda: self.now):
            self.say("A staff member presses Call back in the call-back queue.")
            press()
            self._apply_rest()
            self._run()
            self._nobody_left()

    def _nobody_left(self) -> None:
        for leg in list(self.legs.values()):
            if not leg.ended:
                where = f"in conversation {leg.room}" if leg.room else f"after {leg.last_action or 'answering'}"
                self.problem(f"the {leg.who} was left {where} with nothing more happening")
                self._end(leg, ["completed"], f"[{leg.who}] gives up and hangs up")
                self._run()

    def _run(self) -> None:
        steps = 0
        while self._queue:
            step = heapq.heappop(self._queue)
            leg = step.leg
            if leg is not None and (leg.ended or (step.version is not None and step.version != leg.version)):
                continue
            self.now = max(self.now, step.at)
            step.run()
            steps += 1
            if steps > MAX_STEPS or self.now - self.start > MAX_CALL:
                self.problem("the call did not end: the simulation was stopped")
                self._queue.clear()

    def after(self, seconds: float, run: Callable[[], None], *, leg: SimLeg | None = None, ncco: bool = True) -> None:
        """Run ``run`` ``seconds`` from now; dropped if ``leg`` ends first or, for a step
        of its NCCO (``ncco``), if the leg gets a new NCCO first."""
        version = leg.version if leg is not None and ncco else None
        step = _Step(self.now + timedelta(seconds=seconds), next(self._seq), run, leg, version)
        heapq.heappush(self._queue, step)

    # --- narration ----------------------------------------------------------------------

    def say(self, text: str) -> None:
        seconds = (self.now - self.start).total_seconds()
        self._narrate(f"{seconds:6.1f}s  {text}")

    def hear(self, leg: SimLeg, text: str) -> None:
        self.heard.append((leg.who, text))
        self.say(f"[{leg.who} hears] “{text}”")

    def problem(self, text: str) -> None:
        self.problems.append(text)
        self.say(f"PROBLEM: {text}")

    # --- the caller -----------------------------------------------------------------------

    def _dial(self, *, to: str, from_: str) -> SimLeg:
        caller = SimLeg(
            uuid=str(uuid_lib.uuid4()),
            who="caller",
            from_=from_,
            to=to,
            direction="inbound",
            conversation_uuid=f"CON-{uuid_lib.uuid4()}",
            event_url=_app_url("calls:event"),
        )
        self.caller = self.legs[caller.uuid] = caller
        self.fake.add_call(
            uuid=caller.uuid, conversation_uuid=caller.conversation_uuid, to=to, from_=from_, status="ringing"
        )
        self.say(f"The caller dials +{to} from {'+' + from_ if from_ else 'a withheld number'}.")
        # Vonage often reports "ringing" before "started", with the same timestamp.
        self._status(caller, "ringing")
        self._status(caller, "started")
        ncco = self._answer_webhook(caller, _app_url("calls:answer_inbound"))
        caller.status, caller.answered_at = "answered", self.now
        self.fake.set_call_status(caller.uuid, "answered")
        self._status(caller, "answered", start_time=None, rate=None, network=None)
        if not ncco:
            self.problem("the caller was answered without an NCCO: Vonage would hang up")
        self.run_ncco(caller, ncco or [])
        return caller

    # --- NCCOs ----------------------------------------------------------------------------

    def run_ncco(self, leg: SimLeg, ncco: Ncco) -> None:
        """Replace what ``leg`` is doing with ``ncco``, as an answer or a transfer does."""
        problem = _ncco_problem(ncco)
        if problem:
            self.problem(f"the {leg.who}'s NCCO is invalid ({problem}): Vonage would not run it")
            ncco = []
        self._leave_room(leg)
        if leg.child is not None and not leg.child.ended:
            self._drop_child(leg)
        leg.version += 1
        leg.actions = list(ncco)
        self.after(0, lambda: self._next_action(leg), leg=leg)

    def _next_action(self, leg: SimLeg) -> None:
        if not leg.actions:
            self._ncco_done(leg)
            return
        action = leg.actions.pop(0)
        leg.last_action = str(action.get("action"))
        handlers = {
            "talk": self._talk,
            "conversation": self._conversation,
            "connect": self._connect,
            "input": self._input,
            "record": self._record,
            "notify": self._notify,
        }
        handler = handlers.get(leg.last_action)
        if handler is None:
            self.say(f"[{leg.who}] {leg.last_action}: {json.dumps(action)}")
            self._continue(leg, 0)
            return
        handler(leg, action)

    def _continue(self, leg: SimLeg, seconds: float) -> None:
        self.after(seconds, lambda: self._next_action(leg), leg=leg)

    def _ncco_done(self, leg: SimLeg) -> None:
        parent = leg.parent
        if parent is not None and parent.child is leg and not leg.bridged and not parent.ended:
            self._bridge(leg)  # connect: the onAnswer NCCO is over, Vonage bridges the two
            return
        if leg is self.caller and leg.last_action == "connect" and not self._talking:
            self.problem("the caller was hung up on without a word: nothing followed the connect")
        self._end(leg, ["completed"], f"[vonage] the {leg.who}'s NCCO is over: Vonage hangs up")

    def _talk(self, leg: SimLeg, action: dict[str, Any]) -> None:
        text = str(action.get("text", ""))
        self.hear(leg, text)
        self._continue(leg, max(speaking_seconds(text), 0.5))

    def _conversation(self, leg: SimLeg, action: dict[str, Any]) -> None:
        name = str(action.get("name"))
        members = self._rooms.setdefault(name, {})
        others = [self.legs[uuid] for uuid in members if uuid in self.legs]
        members[leg.uuid] = bool(action.get("endOnExit", False))
        leg.room = name
        if action.get("startOnEnter", True):
            self._started_rooms.add(name)
        if name not in self._started_rooms:
            self.heard.append((leg.who, "hold music"))
            self.say(f"[{leg.who} hears] hold music, waiting in conversation {_short(name)}")
        elif others:
            waiting = " and ".join(other.who for other in others)
            self.say(f"[{leg.who}] enters conversation {_short(name)}: the {waiting}'s hold music stops")
            self._connected()
        else:
            self.say(f"[{leg.who}] enters conversation {_short(name)}, alone")

    def _leave_room(self, leg: SimLeg) -> None:
        members = self._rooms.get(leg.room)
        name, leg.room = leg.room, ""
        if not members or leg.uuid not in members:
            return
        if members.pop(leg.uuid) and members:
            # endOnExit: the conversation ends for everyone in it.
            self.say(f"[vonage] the {leg.who} left conversation {_short(name)} (endOnExit): it ends")
            for uuid in list(members):
                other = self.legs[uuid]
                members.pop(uuid)
                other.room = ""
                self._continue(other, 0)

    def _connect(self, leg: SimLeg, action: dict[str, Any]) -> None:
        endpoint = (action.get("endpoint") or [{}])[0]
        on_answer = endpoint.get("onAnswer") or {}
        child = SimLeg(
            uuid=str(uuid_lib.uuid4()),
            # A call-back's connect rings the caller back; any other rings an agent.
            who="caller" if self._calling_back else "agent",
            from_=str(action.get("from") or leg.to),
            to=str(endpoint.get("number", "")),
            direction="outbound",
            # A connect's leg joins the caller's conversation.
            conversation_uuid=leg.conversation_uuid,
            event_url=(action.get("eventUrl") or [_app_url("calls:event")])[0],
            synchronous=action.get("eventType") == "synchronous",
            answer_url=str(on_answer.get("url", "")),
            ringback_tone=str(on_answer.get("ringbackTone", "")),
            ring_timer=int(action.get("timeout", 60)),
            machine_detection=str(action.get("machineDetection", "")),
            parent=leg,
        )
        leg.child = child
        if self._calling_back:
            self.caller = child  # the one who hangs up after talking
        if not self.fake.new_call_allowed():
            # A connect counts against the account's new calls per second (VONAGE.md): over
            # it, nobody is rung and the connect's event URL is told the leg failed.
            self.legs[child.uuid] = child
            self.fake.add_call(
                uuid=child.uuid,
                conversation_uuid=child.conversation_uuid,
                to=child.to,
                from_=child.from_,
                direction="outbound",
            )
            self.after(
                0.1,
                lambda: self._end(
                    child, ["failed", "completed"], "[vonage] over the account's call limit: the connect is refused"
                ),
                leg=child,
                ncco=False,
            )
            return
        self.fake.add_call(
            uuid=child.uuid,
            conversation_uuid=child.conversation_uuid,
            to=child.to,
            from_=child.from_,
            direction="outbound",
        )
        whisper = "with a whisper on answer" if child.answer_url else "without a whisper"
        self.say(f"[{leg.who} hears] ringing: Vonage connects to +{child.to} ({whisper})")
        self._ring(child)

    def _input(self, leg: SimLeg, action: dict[str, Any]) -> None:
        timeout = float((action.get("dtmf") or {}).get("timeOut", 3))
        digits = {ANSWERS: "1", DECLINES: "2"}.get(leg.behaviour, "")
        url = (action.get("eventUrl") or [_app_url("calls:event")])[0]

        def submit() -> None:
            if digits:
                self.say(f"[{leg.who}] presses {digits}")
            else:
                self.say(f"[{leg.who}] presses nothing for {timeout:g} s")
            payload = {
                "uuid": leg.uuid,
                "conversation_uuid": leg.conversation_uuid,
                "from": leg.from_,
                "to": leg.to,
                "dtmf": {"digits": digits, "timed_out": not digits},
                "speech": {"results": []},
                "timestamp": vonage_time(self.now),
            }
            version = leg.version
            answer = self._event(url, payload, f"{leg.who} input {digits or '(none)'}")
            if leg.ended or leg.version != version:
                self.say(f"[vonage] the answer to the key press is not played: the {leg.who}'s leg was moved meanwhile")
            elif isinstance(answer, list):
                self.run_ncco(leg, answer)
            else:
                self._continue(leg, 0)

        self.after(KEY_PRESS_SECONDS if digits else timeout, submit, leg=leg)

    def _notify(self, leg: SimLeg, action: dict[str, Any]) -> None:
        """Vonage posts the payload to the eventUrl; an NCCO in the answer replaces the
        rest of the leg's NCCO, an empty answer lets it go on."""
        url = (action.get("eventUrl") or [_app_url("calls:event")])[0]
        version = leg.version
        # Vonage wraps the NCCO's payload; a notify names the conversation, not the leg.
        body = {
            "conversation_uuid": leg.conversation_uuid,
            "payload": dict(action.get("payload") or {}),
            "timestamp": vonage_time(self.now),
        }
        answer = self._event(url, body, f"{leg.who} notify")
        if leg.ended or leg.version != version:
            return
        if isinstance(answer, list) and answer:
            self.run_ncco(leg, answer)
        else:
            self._continue(leg, 0)

    def _record(self, leg: SimLeg, action: dict[str, Any]) -> None:
        silence = int(action.get("endOnSilence", 3))
        began = self.now
        self.heard.append((leg.who, "a beep"))
        self.say(f"[{leg.who} hears] a beep, then leaves a message ({MESSAGE_SECONDS} s)")
        url = (action.get("eventUrl") or [_app_url("calls:event")])[0]

        def recorded() -> None:
            recording = str(uuid_lib.uuid4())
            payload = {
                "start_time": vonage_time(began),
                "end_time": vonage_time(self.now),
                "recording_uuid": recording,
                "recording_url": f"https://api.nexmo.com/v1/files/{recording}",
                "size": 12345,
                "conversation_uuid": leg.conversation_uuid,
                "timestamp": vonage_time(self.now),
            }
            self._event(url, payload, f"{leg.who} record")
            self._continue(leg, 0)

        self.after(MESSAGE_SECONDS + silence, recorded, leg=leg)

    # --- agents ---------------------------------------------------------------------------

    def _ring(self, leg: SimLeg) -> None:
        self.legs[leg.uuid] = leg
        # Each destination rung takes the scenario's next behaviour; the last one repeats.
        behaviour = leg.behaviour = self._behaviours.pop(0) if len(self._behaviours) > 1 else self._behaviours[0]
        self.say(f"[vonage] rings +{leg.to} (from +{leg.from_}); that phone: {behaviour}")
        if behaviour == BUSY:
            self.after(
                BUSY_SECONDS,
                # A real sequence (VONAGE.md): busy first, then started and ringing.
                lambda: self._end(leg, ["busy", "started", "ringing", "completed"], "[agent] the line is busy"),
                leg=leg,
                ncco=False,
            )
            return
        self.after(0.5, lambda: self._rings(leg), leg=leg, ncco=False)
        if behaviour == NO_ANSWER:
            failure = "unanswered" if leg.synchronous else "timeout"
            self.after(
                leg.ring_timer,
                # The failure status after "completed": Vonage does not keep order.
                lambda: self._end(
                    leg, ["completed", failure], f"[vonage] nobody answered within {leg.ring_timer} s", detail="timeout"
                ),
                leg=leg,
                ncco=False,
            )
        else:
            self.after(PICK_UP_SECONDS, lambda: self._picks_up(leg), leg=leg, ncco=False)

    def _rings(self, leg: SimLeg) -> None:
        leg.status = "ringing"
        self.fake.set_call_status(leg.uuid, "ringing")
        # Often swapped: "ringing" before "started", with the same timestamp.
        self._status(leg, "ringing")
        self._status(leg, "started")
        if self.scenario.ending == CALLER_LEAVES_WHILE_RINGING and self.caller and not self._ending_planned:
            self._ending_planned = True
            caller = self.caller
            self.after(
                CALLER_PATIENCE_SECONDS,
                lambda: self._end(caller, ["completed"], "[caller] hangs up while the agent's phone rings"),
                leg=caller,
                ncco=False,
            )

    def _picks_up(self, leg: SimLeg) -> None:
        leg.status, leg.answered_at = "answered", self.now
        self.fake.set_call_status(leg.uuid, "answered")
        if leg.behaviour == VOICEMAIL:
            leg.who = "agent's voicemail"
            self.say(f"[vonage] an answering machine picks up +{leg.to}")
        else:
            self.say(f"[{leg.who}] picks up +{leg.to}")
        self._status(leg, "answered", start_time=None, rate=None, network=None)
        if leg.parent is not None and not leg.answer_url:
            self._bridge(leg)  # a connect without onAnswer: no whisper
            return
        if leg.parent is not None:
            heard = f"the ringback tone {leg.ringback_tone}" if leg.ringback_tone else "silence (no ringbackTone)"
            self.say(f"[{leg.parent.who} hears] {heard} while the agent hears the whisper")
        ncco = self._answer_webhook(leg, leg.answer_url)
        if leg.ended:
            return
        self.run_ncco(leg, ncco or [])
        if leg.behaviour == VOICEMAIL:
            self.after(MACHINE_DETECTED_SECONDS, lambda: self._machine(leg), leg=leg, ncco=False)
        first = (ncco or [{}])[0]
        if (
            self.scenario.ending == CALLER_LEAVES_DURING_WHISPER
            and self.caller is not None
            and not self._ending_planned
            and first.get("action") == "talk"
        ):
            self._ending_planned = True
            caller = self.caller
            self.after(
                speaking_seconds(str(first.get("text", ""))) / 2,
                lambda: self._end(caller, ["completed"], "[caller] hangs up while the agent hears the whisper"),
                leg=caller,
                ncco=False,
            )

    def _machine(self, leg: SimLeg) -> None:
        self.say("[vonage] machine detection: an answering machine")
        # Detection events name the leg as ``call_uuid``, not ``uuid`` (VONAGE.md).
        payload = {
            "call_uuid": leg.uuid,
            "conversation_uuid": leg.conversation_uuid,
            "status": "machine",
            "timestamp": vonage_time(self.now),
        }
        self.status_events.append((leg.uuid, "machine"))
        answer = self._event(leg.event_url, payload, f"{leg.who} machine")
        self._keep_next_ncco(leg, "machine", answer)
        if leg.machine_detection == "hangup":
            self._end(leg, ["completed"], "[vonage] machineDetection is hangup: Vonage hangs up on the machine")

    def _bridge(self, leg: SimLeg) -> None:
        leg.bridged = True
        self.say("[vonage] bridges the caller and the agent")
        self._connected()

    def _connected(self) -> None:
        """Caller and agent hear each other: they talk, then the scenario's person hangs up."""
        if self._talking:
            return
        self._talking = True
        self.say(f"[caller and agent] talk for {self.talk_seconds} s")
        agent = next(
            (leg for leg in self.legs.values() if leg.role == "agent" and leg.answered_at and not leg.ended), None
        )
        leaving = agent if self.scenario.ending == AGENT_HANGS_UP and agent is not None else self.caller
        if leaving is not None:
            self.after(
                self.talk_seconds,
                lambda: self._end(leaving, ["completed"], f"[{leaving.who}] hangs up"),
                leg=leaving,
                ncco=False,
            )

    # --- the end of a leg ---------------------------------------------------------------

    def _end(self, leg: SimLeg, statuses: list[str], why: str, *, detail: str = "") -> None:
        """``leg`` ends: Vonage reports ``statuses`` in that order, then the legs tied to
        it move on (the other side of a connect, the others in an endOnExit conversation)."""
        if leg.ended:
            return
        answered = leg.answered_at is not None
        leg.status = ENDED
        leg.version += 1
        self.say(why)
        failures = [status for status in statuses if status not in ("started", "ringing", "completed")]
        self.fake.set_call_status(leg.uuid, failures[0] if failures else "completed")
        self._leave_room(leg)
        for status in statuses:
            extra: dict[str, Any] = {}
            if status == "completed":
                extra = self._completed_facts(leg, answered)
            elif status not in ("started", "ringing", "cancelled", "busy") and detail:
                extra = {"detail": detail}
            answer = self._status(leg, status, **extra)
            self._keep_next_ncco(leg, status, answer)
        child, parent = leg.child, leg.parent
        if child is not None and not child.ended:
            # The caller's end ends the leg its connect rang, a moment later.
            child_statuses = ["completed"] if child.answered_at else ["cancelled", "completed"]
            self.after(
                TEARDOWN_SECONDS,
                lambda: self._end(
                    child, child_statuses, f"[vonage] the {leg.who} is gone: Vonage ends the leg the connect rang"
                ),
                leg=child,
                ncco=False,
            )
        if parent is not None and parent.child is leg and not parent.ended:
            parent.child = None
            if leg.next_ncco is not None:
                self.say(f"[vonage] the {parent.who} moves on to the NCCO the app answered")
                self.run_ncco(parent, leg.next_ncco)
            else:
                self._continue(parent, 0)

    def _drop_child(self, leg: SimLeg) -> None:
        """``leg`` leaves its connect (a transfer): a still-ringing leg is cancelled; an
        answered one stays up, on its own, until the app or its NCCO ends it."""
        child = leg.child
        leg.child = None
        if child is None:
            return
        child.parent = None
        if child.answered_at is None:
            self._end(
                child, ["cancelled", "completed"], f"[vonage] the {leg.who} left the connect: Vonage stops the ringing"
            )

    def _completed_facts(self, leg: SimLeg, answered: bool) -> dict[str, Any]:
        rate = "0.00390000" if leg.direction == "inbound" else "0.02700000"
        if not answered or leg.answered_at is None:
            return {"duration": "0", "rate": rate, "price": "0.00000000", "end_time": vonage_time(self.now)}
        seconds = round((self.now - leg.answered_at).total_seconds())
        return {
            "start_time": vonage_time(leg.answered_at),
            "end_time": vonage_time(self.now),
            "duration": str(seconds),
            "rate": rate,
            "price": f"{float(rate) * seconds / 60:.8f}",
            "network": "23410",
        }

    def _keep_next_ncco(self, leg: SimLeg, status: str, answer: Any) -> None:
        if leg.synchronous and status in NEXT_NCCO_STATUSES and leg.next_ncco is None and isinstance(answer, list):
            leg.next_ncco = answer

    # --- webhooks, as Vonage sends them ---------------------------------------------------

    def _status(self, leg: SimLeg, status: str, **extra: Any) -> Any:
        payload = {
            "from": leg.from_,
            "to": leg.to,
            "uuid": leg.uuid,
            "conversation_uuid": leg.conversation_uuid,
            "status": status,
            "direction": leg.direction,
            "timestamp": vonage_time(self.now),
            **extra,
        }
        self.status_events.append((leg.uuid, status))
        answer = self._event(leg.event_url, payload, f"{leg.who} {status}")
        if status == "completed" and not self._redelivered:
            # One redelivery per call, as Vonage makes when an answer is slow or lost.
            self._redelivered = True
            self.status_events.append((leg.uuid, status))
            self._event(leg.event_url, payload, f"{leg.who} {status} (delivered again)")
        return answer

    def _event(self, url: str, payload: dict[str, Any], label: str) -> Any:
        body = json.dumps(payload).encode()
        path = _local(url)
        response = self.client.post(
            path, body, content_type="application/json", secure=_secure(), **self._signature(body)
        )
        answer = _json(response)
        note = ", answered with an NCCO" if isinstance(answer, list) else ""
        self.say(f"[event] {label} → {response.status_code}{note}")
        if response.status_code >= 300:
            self.problem(f"the app answered {response.status_code} to an event: {response.content[:200]!r}")
        self._apply_rest()
        return answer

    def _answer_webhook(self, leg: SimLeg, url: str) -> Ncco | None:
        fields = {
            "to": leg.to,
            "from": leg.from_,
            "uuid": leg.uuid,
            "conversation_uuid": leg.conversation_uuid,
            "region_url": self.fake.url,
        }
        parts = urlsplit(url)
        # Our own query parameters on the URL are kept (VONAGE.md).
        params = {**dict(parse_qsl(parts.query)), **fields}
        response = self.client.get(parts.path, params, secure=_secure(), **self._signature(b""))
        answer = _json(response)
        self.say(f"[vonage → app] GET {parts.path} for the {leg.who} → {response.status_code}")
        self._apply_rest()
        if response.status_code != 200 or not isinstance(answer, list):
            self.problem(f"the app answered {response.status_code} to the {leg.who}'s answer webhook")
            return None
        return answer

    def _signature(self, body: bytes) -> dict[str, Any]:
        secret = settings.VONAGE_SIGNATURE_SECRET
        if not secret:
            return {}
        return {"HTTP_AUTHORIZATION": "Bearer " + sign_webhook(body=body, secret=secret)}

    # --- REST requests the app made, as the fake received them ---------------------------

    def _apply_rest(self) -> None:
        if self._applying_rest:
            return  # the outer loop picks up what this webhook caused
        self._applying_rest = True
        try:
            while self._rest_seen < len(requests := self.fake.requests):
                request = requests[self._rest_seen]
                self._rest_seen += 1
                self._rest(request)
        finally:
            self._applying_rest = False

    def _rest(self, request: RecordedRequest) -> None:
        answered = request.status if request.status is not None else request.fault or "no answer"
        if request.route == "create":
            to = ((request.json or {}).get("to") or [{}])[0].get("number", "?")
            self.say(f"[app → vonage] POST /v1/calls: ring +{to} → {answered}")
            if request.status == 201:
                self._agent_call_created(request)
            return
        leg = self.legs.get(request.call_uuid)
        whose = f"the {leg.role}'s leg" if leg else _short(request.call_uuid)
        if request.route != "update":
            self.say(f"[app → vonage] {request.method} {request.path} → {answered}")
            return
        self.say(f"[app → vonage] PUT /v1/calls/…: {request.action} {whose} → {answered}")
        if request.status != 204 or leg is None or leg.ended:
            return
        if request.action == "hangup":
            statuses = ["completed"] if leg.answered_at else ["cancelled", "completed"]
            self._end(leg, statuses, f"[vonage] {whose} ends, as the app asked")
        elif request.action == "transfer":
            destination = (request.json or {}).get("destination") or {}
            if leg.parent is not None and leg.parent.child is leg:
                leg.parent.child = None
            leg.parent = None
            self._event(
                _app_url("calls:event"),
                {
                    "uuid": leg.uuid,
                    "conversation_uuid_from": leg.conversation_uuid,
                    "conversation_uuid_to": leg.conversation_uuid,
                    "type": "transfer",
                    "timestamp": vonage_time(self.now),
                },
                f"{leg.who} transfer",
            )
            self.run_ncco(leg, destination.get("ncco") or [])

    def _agent_call_created(self, request: RecordedRequest) -> None:
        known = set(self.legs) | self._earlier_calls
        created: FakeCall | None = next(
            (call for call in self.fake.created_calls() if call.uuid not in known and (call.answer_url or call.ncco)),
            None,
        )
        if created is None:
            self.problem("the fake answered 201 but holds no new call")
            return
        body = request.json or {}
        leg = SimLeg(
            uuid=created.uuid,
            who="staff member" if self._calling_back else "agent",
            from_=str(created.from_.get("number", "")),
            to=str(created.to.get("number", "")),
            direction="outbound",
            conversation_uuid=created.conversation_uuid,
            event_url=(created.event_url or [_app_url("calls:event")])[0],
            answer_url=(created.answer_url or [""])[0],
            ring_timer=int(body.get("ringing_timer") or 60),
            machine_detection=str(body.get("machine_detection") or ""),
        )
        self._ring(leg)


# --- helpers ----------------------------------------------------------------------------


def _app_url(name: str) -> str:
    return settings.PUBLIC_URL + reverse(name)


def _local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _secure() -> bool:
    return settings.PUBLIC_URL.startswith("https://")


def _json(response: Any) -> Any:
    try:
        return json.loads(response.content or b"null")
    except ValueError:
        return None


def _short(name: str) -> str:
    return name[:18] + "…" if len(name) > 19 else name


def _ncco_problem(ncco: Any) -> str:
    """What Vonage would refuse in an NCCO, as far as this app's NCCOs go."""
    if not isinstance(ncco, list):
        return "not a list of actions"
    for index, action in enumerate(ncco):
        if not isinstance(action, dict) or action.get("action") not in KNOWN_ACTIONS:
            return f"action {index} is not an NCCO action"
        for key in ("startOnEnter", "endOnExit", "premium", "bargeIn", "beepStart"):
            if key in action and not isinstance(action[key], bool):
                return f"{key} must be a JSON boolean"
        for key in ("musicOnHoldUrl", "eventUrl", "endpoint"):
            if key in action and not isinstance(action[key], list):
                return f"{key} must be an array"
        if action["action"] == "talk" and not action.get("text"):
            return "a talk action without text"
    return ""
