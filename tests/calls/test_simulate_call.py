"""``simulate_call`` plays Vonage's part in a whole call, in-process, without an account."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from calls.models import Call, CallEvent, CallState, LegRole, Outcome
from campaigns.models import TrackingNumber


def simulate(**options: object) -> str:
    out = StringIO()
    call_command("simulate_call", stdout=out, **options)
    return out.getvalue()


def test_simulated_call_narrates_both_sides_and_leaves_the_call_recorded(
    summer_number: TrackingNumber,
) -> None:
    output = simulate(to="+44 7700 900001", from_="447946000123", talk_seconds=30)

    assert "[caller hears] “Please wait while we connect you.”" in output
    assert "[agent hears] “Incoming call regarding the summer offer”" in output
    assert "[event] agent completed → 200" in output
    call = Call.objects.get()
    assert call.campaign == summer_number.campaign
    assert call.outcome == Outcome.ANSWERED
    assert call.state == CallState.ENDED
    assert call.whisper_text == "Incoming call regarding the summer offer"
    assert call.talk_seconds == 30
    assert call.legs.filter(role=LegRole.AGENT).count() == 1
    # The duplicate "completed" the simulator re-sends is stored once.
    assert CallEvent.objects.filter(call=call, status="completed").count() == 2
    assert f"/admin/calls/call/{call.pk}/change/" in output


def test_simulator_never_places_a_real_call_even_with_credentials(
    summer_number: TrackingNumber, settings: object
) -> None:
    settings.VONAGE_APPLICATION_ID = "real-app"  # type: ignore[attr-defined]
    settings.VONAGE_PRIVATE_KEY = "/nonexistent/private.key"  # type: ignore[attr-defined]
    output = simulate(to="447700900001")
    # Dry run: an agent leg with a dryrun- uuid and the whisper played, no error.
    agent = Call.objects.get().legs.get(role=LegRole.AGENT)
    assert agent.uuid.startswith("dryrun-")
    assert "Incoming call regarding the summer offer" in output


def test_unknown_number_is_simulated_with_the_default_whisper(db: None) -> None:
    output = simulate(to="447700900555")
    assert "Incoming call to an unrecognised number, 4 4 7 7 0 0 9 0 0 5 5 5." in output
    assert Call.objects.get().number_status == "unknown"


def test_a_number_that_is_not_a_number_is_refused(db: None) -> None:
    with pytest.raises(CommandError, match="not a phone number"):
        simulate(to="12ab")
    assert not Call.objects.exists()
