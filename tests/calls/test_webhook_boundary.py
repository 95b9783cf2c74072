"""Only Vonage can drive a call (issue 10), each test written as the attack.

Every test sends the request that got through before (the issue names each one), and
checks that it is refused now and that the database, and what we asked of Vonage, are
as they were. Production settings throughout (DEBUG off) unless a test says otherwise.
"""

import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
from django.test import Client
from pytest_django.fixtures import Settings

from calls.models import Call, CallEvent, CallLeg, CallState, SignedWebhook
from calls.webhooks.signatures import sign_webhook
from campaigns.models import TrackingNumber
from tests.conftest import VonageRecorder, callback, callback_path, notify_body, with_fields
from tests.factories import TrackingNumberFactory

ROOT = Path(__file__).resolve().parents[2]
SECRET = "account-signature-secret-for-the-boundary-tests-0123456789"
CALLER = {"to": "447700900001", "from": "447946000123", "uuid": "caller-leg-1", "conversation_uuid": "CON-1"}


@pytest.fixture
def production(settings: Settings) -> Settings:
    """The production setup the README documents: DEBUG off, signatures on."""
    settings.DEBUG = False
    settings.UNSAFE_ACCEPT_UNSIGNED_WEBHOOKS = False
    settings.VONAGE_SIGNATURE_SECRET = SECRET
    return settings


def snapshot() -> dict[str, Any]:
    """Everything a webhook could change."""
    return {
        "calls": list(Call.objects.order_by("pk").values()),
        "legs": list(CallLeg.objects.order_by("pk").values()),
        "events": list(CallEvent.objects.order_by("pk").values_list("pk", flat=True)),
    }


def signed(body: bytes, **claims: Any) -> dict[str, str]:
    return {"Authorization": "Bearer " + sign_webhook(body=body, secret=SECRET, **claims)}


def post(client: Client, path: str, payload: Any, *, headers: dict[str, str] | None = None, sign: bool = True) -> Any:
    body = json.dumps(payload).encode()
    headers = {**(signed(body) if sign else {}), **(headers or {})}
    return client.post(path, body, content_type="application/json", headers=headers)


def waiting_call(client: Client, number: TrackingNumber) -> Call:
    """A caller on hold, the agent being rung: a live call an attacker would steer."""
    response = post(client, "/answer_inbound", {**CALLER, "to": number.number})
    assert response.status_code == 200, response.content
    call = Call.objects.get(legs__uuid=CALLER["uuid"])
    assert call.state == CallState.WAITING
    return call


# --- safe by default ---------------------------------------------------------------------


def test_without_a_secret_twenty_unsigned_answers_place_no_call(
    client: Client,
    summer_number: TrackingNumber,
    vonage: VonageRecorder,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.DEBUG, settings.UNSAFE_ACCEPT_UNSIGNED_WEBHOOKS, settings.VONAGE_SIGNATURE_SECRET = False, False, ""
    before = snapshot()

    statuses = {
        post(client, "/answer_inbound", {**CALLER, "uuid": f"caller-{n}"}, sign=False).status_code for n in range(20)
    }

    assert statuses == {503}
    assert vonage.placed == []
    assert snapshot() == before
    assert any("webhook.refused_unconfigured" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def _django(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A fresh Python process with a production environment (and nothing of the test's)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "VONAGE_", "UNSAFE_", "DEBUG"))}
    clean.update(
        DJANGO_SETTINGS_MODULE="whisper_project.settings",
        DEBUG="false",
        SECRET_KEY="a-production-secret-key-for-this-test-only-0123456789",
        ALLOWED_HOSTS="whisper.example.com",
        CALL_CENTER_NUMBER="447700900999",
        PUBLIC_URL="https://whisper.example.com",
        DATABASE_URL="sqlite:///:memory:",
        **env,
    )
    return subprocess.run(  # noqa: S603 - our own interpreter and files
        [sys.executable, *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_production_server_without_the_secret_refuses_to_start() -> None:
    started = _django("-c", "import whisper_project.wsgi")

    assert started.returncode != 0
    assert "VONAGE_SIGNATURE_SECRET is not set" in started.stderr


def test_a_production_server_starts_with_the_secret_or_the_unsafe_opt_out() -> None:
    assert _django("-c", "import whisper_project.wsgi", VONAGE_SIGNATURE_SECRET=SECRET).returncode == 0
    assert _django("-c", "import whisper_project.wsgi", UNSAFE_ACCEPT_UNSIGNED_WEBHOOKS="true").returncode == 0


def test_check_deploy_fails_without_the_secret() -> None:
    checked = _django("manage.py", "check", "--deploy")

    assert checked.returncode != 0
    assert "calls.E005" in checked.stderr


# --- our own URL parameters: sequential ids no longer address a call ------------------------


def test_a_forged_busy_event_for_a_live_call_is_refused_and_changes_nothing(
    client: Client, summer_number: TrackingNumber, vonage: VonageRecorder, production: Settings
) -> None:
    call = waiting_call(client, summer_number)
    before = snapshot()
    forged = {"uuid": "evil", "status": "busy", "direction": "outbound"}

    # The request that moved a live call to the fallback: now refused, signed by Vonage or not.
    for path in (f"/event?call={call.pk}&attempt=0", f"/event?call={call.pk}&attempt=0&sig=forged"):
        assert post(client, path, forged).status_code == 403
        assert post(client, path, forged, sign=False).status_code == 503

    assert snapshot() == before
    assert vonage.transfers == [] and vonage.hangups == []


def test_a_signature_for_one_call_or_route_does_not_fit_another(
    client: Client, summer_number: TrackingNumber, vonage: VonageRecorder, production: Settings
) -> None:
    call = waiting_call(client, summer_number)
    other = TrackingNumberFactory.create(number="447700900002", campaign=summer_number.campaign)
    post(client, "/answer_inbound", {**CALLER, "uuid": "caller-leg-2", "to": other.number})
    other_call = Call.objects.get(legs__uuid="caller-leg-2")
    before = snapshot()
    forged = {"uuid": "evil", "status": "busy", "direction": "outbound"}
    sig_of_other_call = callback_path("event", call=other_call.pk, attempt=0).split("&sig=")[1]
    sig_of_answer_route = callback_path("answer_outbound", call=call.pk, attempt=0).split("&sig=")[1]
    sig_without_attempt = callback_path("event", call=call.pk).split("&sig=")[1]

    for sig in (sig_of_other_call, sig_of_answer_route, sig_without_attempt):
        assert post(client, f"/event?call={call.pk}&attempt=0&sig={sig}", forged).status_code == 403

    assert snapshot() == before
    assert vonage.transfers == [] and vonage.hangups == []


def test_the_agents_answer_url_cannot_be_pointed_at_another_call(
    client: Client, summer_number: TrackingNumber, vonage: VonageRecorder, production: Settings
) -> None:
    call = waiting_call(client, summer_number)
    before = snapshot()
    leg = {"to": "447700900999", "uuid": "evil-agent", "conversation_uuid": "CON-evil"}

    response = post(client, f"/answer_outbound?call={call.pk}", leg)

    assert response.status_code == 403
    assert snapshot() == before


# --- forged events without Vonage's signature ---------------------------------------------


def test_forged_answered_and_completed_events_record_no_talk_time(
    client: Client, summer_number: TrackingNumber, vonage: VonageRecorder, production: Settings
) -> None:
    call = waiting_call(client, summer_number)
    agent = call.legs.get(role="agent")
    before = snapshot()

    for status, extra in (("answered", {}), ("completed", {"duration": "1740", "price": "0.5"})):
        forged = {"uuid": agent.uuid, "status": status, "direction": "outbound", **extra}
        assert post(client, "/event", forged, sign=False).status_code == 503
        wrong_secret = {"Authorization": "Bearer " + sign_webhook(body=json.dumps(forged).encode(), secret="guess")}
        assert post(client, "/event", forged, headers=wrong_secret, sign=False).status_code == 401

    assert snapshot() == before


def test_a_recording_url_vonage_would_not_send_is_kept_as_evidence_and_never_used(
    client: Client, summer_number: TrackingNumber, vonage: VonageRecorder, production: Settings
) -> None:
    call = waiting_call(client, summer_number)
    planted = {
        "recording_url": "https://api.nexmo.com/v1/calls?page_size=100",
        "recording_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab",
        "conversation_uuid": CALLER["conversation_uuid"],
        "start_time": "2026-12-06T10:00:00Z",
        "end_time": "2026-12-06T10:00:20Z",
    }

    # Unsigned, the planted record event is refused outright.
    assert post(client, callback_path("event", call=call.pk), planted, sign=False).status_code == 503
    # Signed (Vonage's data being odd), it is stored as evidence, but the call keeps no voicemail.
    assert post(client, callback_path("event", call=call.pk), planted).status_code == 200

    call.refresh_from_db()
    assert call.recording_url == ""
    assert CallEvent.objects.get(kind="record").payload["recording_url"] == planted["recording_url"]


# --- a signature authorises exactly one request ---------------------------------------------


RINGING = {"uuid": "agent-leg-x", "status": "ringing", "direction": "outbound", "conversation_uuid": "CON-x"}


def test_the_same_request_again_is_vonage_retrying_and_is_stored_once(
    client: Client, db: None, production: Settings
) -> None:
    body = json.dumps(RINGING).encode()
    headers = signed(body)

    first = client.post("/event", body, content_type="application/json", headers=headers)
    again = client.post("/event", body, content_type="application/json", headers=headers)

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == {"stored": False, "kind": "status"}
    assert CallEvent.objects.count() == 1
    assert SignedWebhook.objects.count() == 1


def test_a_captured_token_is_refused_for_any_other_request(
    client: Client, db: None, production: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    body = json.dumps(RINGING).encode()
    headers = signed(body)
    assert client.post("/event", body, content_type="application/json", headers=headers).status_code == 200
    before = snapshot()

    # The same token on another body (it carries its own payload_hash: a body that
    # matches it is what a captured request would be made to say)...
    other = json.dumps({**RINGING, "status": "rejected"}).encode()
    token = jwt.decode(headers["Authorization"][7:], SECRET, algorithms=["HS256"])
    reforged = {"Authorization": "Bearer " + jwt.encode({**token, "payload_hash": _sha(other)}, SECRET, "HS256")}
    assert client.post("/event", other, content_type="application/json", headers=reforged).status_code == 401
    # ...and the attack of the issue: the token replayed as a GET with the fields in the query.
    replay = with_fields("/event", {**RINGING, "status": "rejected"})
    assert client.get(replay, headers=headers).status_code == 401

    assert snapshot() == before
    assert any("already used for another request" in r.getMessage() for r in caplog.records)


def test_a_token_captured_on_a_live_calls_event_is_refused_for_another_and_rolls_everything_back(
    client: Client, summer_number: TrackingNumber, production: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """An event's signature is remembered by the event's own first statement (the call's
    row locked, in its transaction): a replay is found there, and nothing it started is
    kept, on a call that exists as on one that does not."""
    call = waiting_call(client, summer_number)
    ringing = {"uuid": CALLER["uuid"], "status": "answered", "direction": "inbound", "conversation_uuid": "CON-1"}
    body = json.dumps(ringing).encode()
    headers = signed(body)
    assert client.post("/event", body, content_type="application/json", headers=headers).status_code == 200
    # Vonage's retry of the very same request: answered, stored once.
    again = client.post("/event", body, content_type="application/json", headers=headers)
    assert again.status_code == 200 and again.json() == {"stored": False, "kind": "status"}
    before = snapshot()
    remembered = SignedWebhook.objects.count()

    # The captured token on the caller's hang-up, its payload hash made to fit.
    completed = json.dumps({**ringing, "status": "completed", "duration": "5"}).encode()
    token = jwt.decode(headers["Authorization"][7:], SECRET, algorithms=["HS256"])
    reforged = {"Authorization": "Bearer " + jwt.encode({**token, "payload_hash": _sha(completed)}, SECRET, "HS256")}
    response = client.post("/event", completed, content_type="application/json", headers=reforged)

    assert response.status_code == 401
    assert snapshot() == before and SignedWebhook.objects.count() == remembered
    assert Call.objects.get(pk=call.pk).state == CallState.WAITING
    assert any("already used for another request" in r.getMessage() for r in caplog.records)


def test_a_token_captured_on_the_checkpoint_is_refused_for_another_and_changes_nothing(
    client: Client, summer_number: TrackingNumber, production: Settings
) -> None:
    call = waiting_call(client, summer_number)
    url = urlsplit(call.caller_ncco[1]["eventUrl"][0])
    path = f"{url.path}?{url.query}"
    body = json.dumps(notify_body({"checkpoint": "agent"}, conversation_uuid="CON-1")).encode()
    headers = signed(body)
    first = client.post(path, body, content_type="application/json", headers=headers)
    assert first.status_code in (200, 204)
    before = snapshot()
    remembered = SignedWebhook.objects.count()

    # The same token on another notify body, its payload hash made to fit.
    other = json.dumps(notify_body({"checkpoint": "agent"}, conversation_uuid="CON-evil")).encode()
    token = jwt.decode(headers["Authorization"][7:], SECRET, algorithms=["HS256"])
    reforged = {"Authorization": "Bearer " + jwt.encode({**token, "payload_hash": _sha(other)}, SECRET, "HS256")}

    assert client.post(path, other, content_type="application/json", headers=reforged).status_code == 401
    assert snapshot() == before and SignedWebhook.objects.count() == remembered


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_token_captured_on_a_callers_answer_is_refused_for_another_caller_and_starts_no_call(
    client: Client,
    summer_number: TrackingNumber,
    production: Settings,
    method: str,
    vonage: VonageRecorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The caller's answer remembers its signature in the new call's first statement
    (statements.call_start): a replay is found there and nothing is started."""

    def answer(fields: dict[str, str], headers: dict[str, str]) -> Any:
        if method == "GET":
            return client.get(with_fields("/answer_inbound", fields), headers=headers)
        return client.post("/answer_inbound", json.dumps(fields), content_type="application/json", headers=headers)

    first_fields = {**CALLER, "to": summer_number.number}
    headers = signed(b"" if method == "GET" else json.dumps(first_fields).encode())
    first = answer(first_fields, headers)
    assert first.status_code == 200
    # Vonage's retry of the very same request: the same answer, one call.
    again = answer(first_fields, headers)
    assert again.status_code == 200 and again.json() == first.json()
    before, remembered, rung = snapshot(), SignedWebhook.objects.count(), len(vonage.placed)

    # The captured token on another caller: a billable call for the attacker's number.
    other = {**first_fields, "uuid": "attacker-leg", "from": "447946999999"}
    if method == "POST":
        token = jwt.decode(headers["Authorization"][7:], SECRET, algorithms=["HS256"])
        payload_hash = _sha(json.dumps(other).encode())
        headers = {"Authorization": "Bearer " + jwt.encode({**token, "payload_hash": payload_hash}, SECRET, "HS256")}
    response = answer(other, headers)

    assert response.status_code == 401
    assert snapshot() == before and SignedWebhook.objects.count() == remembered
    assert len(vonage.placed) == rung
    assert any("already used for another request" in r.getMessage() for r in caplog.records)


def test_a_signed_callers_answer_remembers_its_signature_in_the_calls_first_statement(
    client: Client,
    summer_number: TrackingNumber,
    production: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL: the signature, the call's id, the routes' version and whether the caller
    is blocked in one statement, then the call (as unsigned, tests/calls/test_webhooks.py):
    no statement of its own for the signature. SQLite: the signature's insert first."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from calls import agent_dispatch

    monkeypatch.setattr(agent_dispatch, "ring_first_agent_soon", lambda call_id, **_: None)
    warm = {**CALLER, "to": summer_number.number, "uuid": "an-earlier-caller"}
    assert client.get(with_fields("/answer_inbound", warm), headers=signed(b"")).status_code == 200
    fields = {**CALLER, "to": summer_number.number}
    headers = signed(b"")
    with CaptureQueriesContext(connection) as captured:
        assert client.get(with_fields("/answer_inbound", fields), headers=headers).status_code == 200
    # The test's transaction turns the call's own into a savepoint: not counted.
    statements = [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == (2 if connection.vendor == "postgresql" else 7), statements
    assert "calls_signedwebhook" in statements[0]
    assert SignedWebhook.objects.filter(jti=jwt.decode(headers["Authorization"][7:], SECRET, ["HS256"])["jti"]).exists()


def test_a_token_captured_on_an_agents_answer_is_refused_for_another_call_and_changes_nothing(
    client: Client,
    summer_number: TrackingNumber,
    production: Settings,
    vonage: VonageRecorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The agent's answer remembers its signature in its first statement, the call's locked
    read (statements.call_and_legs_with_routes_version_admitting): a replay is found
    there and the whole answer rolled back."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    call = waiting_call(client, summer_number)
    post(client, "/answer_inbound", {**CALLER, "uuid": "caller-leg-2", "to": summer_number.number})
    other_call = Call.objects.get(legs__uuid="caller-leg-2")
    answer_urls = [urlsplit(placed["answer_url"]) for placed in vonage.placed]
    agent = {"to": "447700900999", "from": summer_number.number, "uuid": "agent-1", "conversation_uuid": "CON-a"}
    first_path = with_fields(f"{answer_urls[0].path}?{answer_urls[0].query}", agent)
    headers = signed(b"")
    with CaptureQueriesContext(connection) as captured:
        first = client.get(first_path, headers=headers)
    assert first.status_code == 200 and first.json()[0]["action"] == "talk"
    # Its first statement remembers the signature: in the call's locked read on PostgreSQL,
    # just before it on SQLite (which has no INSERT in WITH).
    first_sql = next(q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"])
    assert "calls_signedwebhook" in first_sql
    assert ('"calls_call"' in first_sql) == (connection.vendor == "postgresql")
    # Vonage's retry of the very same request: the same answer.
    again = client.get(first_path, headers=headers)
    assert again.status_code == 200 and again.json() == first.json()
    before, remembered = snapshot(), SignedWebhook.objects.count()

    # The captured token on the other call's agent answer.
    other_path = with_fields(f"{answer_urls[1].path}?{answer_urls[1].query}", {**agent, "uuid": "agent-2"})
    response = client.get(other_path, headers=headers)

    assert response.status_code == 401
    assert snapshot() == before and SignedWebhook.objects.count() == remembered
    assert Call.objects.get(pk=other_call.pk).whisper_text == ""
    assert Call.objects.get(pk=call.pk).whisper_text != ""
    assert any("already used for another request" in r.getMessage() for r in caplog.records)


def test_a_signed_get_event_is_refused_because_its_fields_are_not_signed(
    client: Client, db: None, production: Settings
) -> None:
    response = client.get(with_fields("/event", {**RINGING, "status": "rejected"}), headers=signed(b""))

    assert response.status_code == 400
    assert CallEvent.objects.count() == 0


@pytest.mark.parametrize("age_seconds", [6 * 60, 365 * 24 * 3600], ids=["six-minutes", "a-year"])
def test_a_token_older_than_the_maximum_age_is_refused(
    client: Client, db: None, production: Settings, age_seconds: int
) -> None:
    body = json.dumps(RINGING).encode()

    response = client.post(
        "/event", body, content_type="application/json", headers=signed(body, iat=time.time() - age_seconds)
    )

    assert response.status_code == 401
    assert "more than the 300 s" in response.json()["detail"]
    assert (CallEvent.objects.count(), SignedWebhook.objects.count()) == (0, 0)


def test_the_maximum_age_is_a_setting(client: Client, db: None, production: Settings) -> None:
    production.VONAGE_SIGNATURE_MAX_AGE_MINUTES = 10
    body = json.dumps(RINGING).encode()

    response = client.post(
        "/event", body, content_type="application/json", headers=signed(body, iat=time.time() - 6 * 60)
    )

    assert response.status_code == 200


def test_a_body_the_token_does_not_cover_is_refused(client: Client, db: None, production: Settings) -> None:
    body = json.dumps(RINGING).encode()
    claims = {"iat": int(time.time()), "jti": "no-hash", "iss": "Vonage"}  # no payload_hash
    headers = {"Authorization": "Bearer " + jwt.encode(claims, SECRET, algorithm="HS256")}

    response = client.post("/event", body, content_type="application/json", headers=headers)

    assert response.status_code == 401
    assert "payload_hash" in response.json()["detail"]
    assert CallEvent.objects.count() == 0


def test_the_unsigned_query_string_does_not_add_to_a_signed_body(
    client: Client, summer_number: TrackingNumber, vonage: VonageRecorder, production: Settings
) -> None:
    # The body names no region; the query string would send our application JWT elsewhere.
    response = post(client, "/answer_inbound?region_url=https://evil.example&to=447700900777", CALLER)

    assert response.status_code == 200
    leg = CallLeg.objects.get(uuid=CALLER["uuid"])
    assert leg.region_url == ""
    assert leg.call.tracking_number == summer_number


# --- no 5xx from input --------------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
def test_more_than_a_thousand_parameters_is_a_400(
    client: Client, db: None, settings: Settings, debug: bool, caplog: pytest.LogCaptureFixture
) -> None:
    settings.DEBUG = debug
    query = "&".join(f"p{n}=1" for n in range(1001))

    for path in ("/answer_inbound", "/answer_outbound", "/event", "/fallback"):
        response = client.get(f"{path}?{query}")
        assert response.status_code == 400, (path, response.content)

    assert Call.objects.count() == CallEvent.objects.count() == 0
    assert any("webhook.refused" in r.getMessage() and "status=400" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
def test_a_huge_call_id_even_signed_by_us_is_a_400(
    client: Client, summer_number: TrackingNumber, vonage: VonageRecorder, settings: Settings, debug: bool
) -> None:
    settings.DEBUG = debug
    huge = 10**30
    leg = {"to": "447700900999", "uuid": "agent-x", "conversation_uuid": "CON-x"}

    assert client.get(with_fields(callback_path("answer_outbound", call=huge), leg)).status_code == 400
    event = {"uuid": "agent-x", "status": "busy"}
    assert post(client, callback_path("event", call=huge, attempt=0), event, sign=False).status_code == 400
    assert Call.objects.count() == CallEvent.objects.count() == 0


@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
@pytest.mark.parametrize("field", ["uuid", "status", "conversation_uuid", "timestamp"])
def test_control_characters_in_an_identifier_are_a_400(
    client: Client, db: None, settings: Settings, debug: bool, field: str
) -> None:
    settings.DEBUG = debug
    event = {**RINGING, field: RINGING.get(field, "x") + "\n2026-12-06 INFO calls.events event.stored call=1"}

    assert post(client, "/event", event, sign=False).status_code == 400
    assert CallEvent.objects.count() == 0


def test_control_characters_in_a_callers_answer_are_a_400_and_place_no_call(
    client: Client, summer_number: TrackingNumber, vonage: VonageRecorder
) -> None:
    response = post(client, "/answer_inbound", {**CALLER, "from": "447946000123\r\nX-Injected: 1"}, sign=False)

    assert response.status_code == 400
    assert vonage.placed == []
    assert Call.objects.count() == 0


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def test_reconcile_calls_forgets_signatures_too_old_to_be_replayed(db: None, production: Settings) -> None:
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    SignedWebhook.objects.create(jti="old", digest="0" * 64, received_at=timezone.now() - timedelta(minutes=30))
    SignedWebhook.objects.create(jti="recent", digest="0" * 64)

    call_command("reconcile_calls", stdout=open(os.devnull, "w"))

    assert list(SignedWebhook.objects.values_list("jti", flat=True)) == ["recent"]


def test_callback_urls_signed_before_a_secret_key_rotation_still_work(
    client: Client, summer_number: TrackingNumber, vonage: VonageRecorder, settings: Settings
) -> None:
    call = waiting_call(client, summer_number)
    path = callback_path("event", call=call.pk)
    event = {"uuid": call.legs.get(role="agent").uuid, "status": "ringing", "direction": "outbound"}

    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "the-new-secret-key-after-rotation-0123456789abcdefghijklmnop"
    assert post(client, path, event, sign=False).status_code == 200

    settings.SECRET_KEY_FALLBACKS = []
    assert post(client, path, {**event, "status": "answered"}, sign=False).status_code == 403


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_fallen_back_agent_answer_while_the_database_is_down_never_connects_the_agents_phone(
    client: Client, production: Settings, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """The signature is valid but its jti cannot be looked up: the fallback still knows,
    from ``original_request``, that this is an agent's leg, so it is told the call could
    not be connected rather than being put through to the call centre."""
    from django.db import OperationalError

    from calls.webhooks import replay

    def database_down(**kwargs: Any) -> bool:
        raise OperationalError("connection refused")

    monkeypatch.setattr(replay, "signed_request_admit", database_down)
    url = callback("answer_outbound", call=7)
    fields = {"uuid": "agent-leg", "to": "447700900999", "from": "447700900001", "reason": "timeout"}
    if method == "GET":
        query = {**fields, "original_request[url]": url, "original_request[type]": "answer"}
        response = client.get(with_fields("/fallback", query), headers=signed(b""))
    else:
        response = post(client, "/fallback", {**fields, "original_request": {"url": url, "type": "answer"}})

    assert response.status_code == 200
    assert [action["action"] for action in response.json()] == ["talk"]
    assert "could not be connected" in response.json()[0]["text"]
