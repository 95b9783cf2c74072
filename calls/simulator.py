"""Play Vonage's part in a call, in-process, and narrate what each person hears.

The simulator sends the same webhooks Vonage would (through Django's test client, so
the real URL routing, authentication, serializers and services run), reads the NCCOs
the app answers with, and plays them: a ``talk`` is something a person hears, a
``conversation`` puts a leg into the named room, a ``connect`` rings a number. Agent
calls the app asks Vonage to place are taken from the database (without credentials
the adapter records them instead of sending them), so no Vonage account is needed.
"""

from __future__ import annotations

import json
import uuid as uuid_lib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from campaigns.whisper import speaking_seconds

from .models import Call, LegRole
from .signatures import sign_webhook

Narrate = Callable[[str], None]


@dataclass
class SimulatedCall:
    """One caller dialling one number, and the clock of what Vonage reports."""

    to: str
    from_: str
    narrate: Narrate
    clock: datetime = field(default_factory=timezone.now)
    caller_uuid: str = field(default_factory=lambda: str(uuid_lib.uuid4()))
    conversation_uuid: str = field(default_factory=lambda: f"CON-{uuid_lib.uuid4()}")
    client: Client = field(default_factory=lambda: Client(SERVER_NAME=_server_name()))

    def tick(self, seconds: float) -> str:
        self.clock += timedelta(seconds=seconds)
        return self.clock.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    # --- webhooks, as Vonage sends them -------------------------------------------

    def answer(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        response = self.client.get(path, params, **self._signature(b""))
        self.narrate(f"[vonage] GET {path} → {response.status_code}")
        if response.status_code != 200:
            self.narrate(f"[vonage] the app refused: {response.content.decode()[:200]}")
            return []
        return response.json()

    def event(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        response = self.client.post(
            reverse("calls:event"), body, content_type="application/json", **self._signature(body)
        )
        leg = "caller" if payload.get("uuid") == self.caller_uuid else "agent"
        self.narrate(f"[event] {leg} {payload.get('status', '?')} → {response.status_code}")

    def status(self, uuid: str, status: str, *, direction: str, seconds: float, **extra: Any) -> dict[str, Any]:
        payload = {
            "uuid": uuid,
            "conversation_uuid": self.conversation_uuid if direction == "inbound" else extra.pop("conv", ""),
            "status": status,
            "direction": direction,
            "timestamp": self.tick(seconds),
            **extra,
        }
        self.event(payload)
        return payload

    def _signature(self, body: bytes) -> dict[str, str]:
        secret = settings.VONAGE_SIGNATURE_SECRET
        if not secret:
            return {}
        return {"HTTP_AUTHORIZATION": "Bearer " + sign_webhook(body=body, secret=secret)}

    # --- what people hear ---------------------------------------------------------

    def play(self, who: str, ncco: list[dict[str, Any]]) -> str:
        """Narrate an NCCO for ``who``; return how it left the leg."""
        for action in ncco:
            kind = action.get("action")
            if kind == "talk":
                self.narrate(f"[{who} hears] “{action.get('text', '')}”")
            elif kind == "conversation":
                if action.get("startOnEnter", True):
                    self.narrate(f"[{who}] joins conversation {action['name']}: the conversation starts")
                else:
                    self.narrate(f"[{who} hears] hold music, waiting in conversation {action['name']}")
                return "conversation"
            elif kind == "connect":
                numbers = ", ".join("+" + e.get("number", "?") for e in action.get("endpoint", []))
                self.narrate(f"[{who}] is connected straight to {numbers}, without a whisper")
                return "connect"
            else:
                self.narrate(f"[{who}] {kind}: {json.dumps(action)}")
        self.narrate(f"[{who}] the NCCO ends: Vonage hangs up this leg")
        return "hangup"


def run_answered_call(*, to: str, from_: str, talk_seconds: int, narrate: Narrate) -> Call | None:
    """A caller dials, the agent answers, hears the whisper, they talk, both hang up."""
    sim = SimulatedCall(to=to, from_=from_, narrate=narrate)
    narrate(f"A caller dials +{to} from {('+' + from_) if from_ else 'a withheld number'}.")
    caller_ncco = sim.answer(
        reverse("calls:answer_inbound"),
        {
            "to": to,
            "from": from_,
            "uuid": sim.caller_uuid,
            "conversation_uuid": sim.conversation_uuid,
            "region_url": "https://api-eu-1.vonage.com",
        },
    )
    call = Call.objects.filter(legs__uuid=sim.caller_uuid).first()
    if call is None:
        narrate("No call was recorded.")
        return None
    sim.status(sim.caller_uuid, "started", direction="inbound", seconds=0, to=to, **{"from": from_})
    sim.status(sim.caller_uuid, "answered", direction="inbound", seconds=0.2, to=to, **{"from": from_})
    caller_state = sim.play("caller", caller_ncco)

    agent_leg = call.legs.filter(role=LegRole.AGENT).first()
    if caller_state == "connect" or agent_leg is None:
        narrate(
            "[vonage] the app placed no agent call: " + (call.agent_call_error or "the caller was connected directly")
        )
        sim.status(
            sim.caller_uuid,
            "completed",
            direction="inbound",
            seconds=talk_seconds,
            duration=str(talk_seconds),
        )
        return _finish(call, narrate)

    narrate(f"[vonage] the app asked Vonage to ring the agent: +{agent_leg.to_number} from +{agent_leg.from_number}")
    agent = {"conv": f"CON-{uuid_lib.uuid4()}"}
    # Vonage often reports "ringing" before "started", with the same timestamp.
    sim.status(agent_leg.uuid, "ringing", direction="outbound", seconds=0.5, **dict(agent))
    sim.status(agent_leg.uuid, "started", direction="outbound", seconds=0, **dict(agent))
    answered_at = sim.tick(4)
    agent_ncco = sim.answer(
        reverse("calls:answer_outbound"),
        {
            "call": call.pk,
            "uuid": agent_leg.uuid,
            "conversation_uuid": agent["conv"],
            "to": agent_leg.to_number,
        },
    )
    sim.status(agent_leg.uuid, "answered", direction="outbound", seconds=0, start_time=answered_at, **dict(agent))
    sim.play("agent", agent_ncco)
    # The whisper takes a moment to say before the agent joins the caller.
    whisper = next((a.get("text", "") for a in agent_ncco if a.get("action") == "talk"), "")
    sim.tick(speaking_seconds(whisper))
    narrate(f"[caller] hold music stops: caller and agent talk for {talk_seconds} s")
    end = sim.tick(talk_seconds)
    completed = {
        "end_time": end,
        "duration": str(talk_seconds + 4),
        "rate": "0.01400000",
        "price": f"{0.014 * (talk_seconds + 4) / 60:.8f}",
        "network": "23410",
    }
    sim.status(
        agent_leg.uuid,
        "completed",
        direction="outbound",
        seconds=0,
        start_time=answered_at,
        **completed,
        **dict(agent),
    )
    # A redelivery, as Vonage sometimes makes: stored once.
    sim.status(
        agent_leg.uuid,
        "completed",
        direction="outbound",
        seconds=0,
        start_time=answered_at,
        **completed,
        **dict(agent),
    )
    sim.status(
        sim.caller_uuid,
        "completed",
        direction="inbound",
        seconds=0,
        end_time=end,
        duration=str(talk_seconds + 5),
        rate="0.00400000",
        price="0.00030000",
        network="23415",
    )
    return _finish(call, narrate)


def _finish(call: Call, narrate: Narrate) -> Call:
    call.refresh_from_db()
    narrate("")
    narrate(f"Call {call.pk}: outcome {call.get_outcome_display().lower()}, state {call.get_state_display().lower()}")
    narrate(
        f"  campaign: {call.campaign or '-'}   source: {call.source or '-'}   "
        f"number: {call.get_number_status_display()}"
    )
    narrate(f"  whisper as spoken: “{call.whisper_text}”" if call.whisper_text else "  no whisper was spoken")
    narrate(
        f"  wait {call.wait_seconds if call.wait_seconds is not None else '-'} s, "
        f"talk {call.talk_seconds if call.talk_seconds is not None else '-'} s, "
        f"{call.events.count()} events stored"
    )
    narrate(f"  admin: {settings.PUBLIC_URL}{reverse('admin:calls_call_change', args=[call.pk])}")
    return call


def _server_name() -> str:
    hosts = [h for h in settings.ALLOWED_HOSTS if h not in ("*",) and not h.startswith(".")]
    return hosts[0] if hosts else "localhost"
