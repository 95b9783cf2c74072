"""``simulate_call`` plays Vonage's part in a whole call, in-process, without an account:
the app's REST requests go through the real SDK to a local TLS fake of the API."""

import logging
import os
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from pytest_django.fixtures import Settings

from calls.models import Call, CallEvent, CallState, LegRole, Outcome
from campaigns.models import Campaign, Strategy, TrackingNumber
from devtools.simulator import SCENARIOS


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
    assert "[app → vonage] POST /v1/calls: ring +447700900999 → 201" in output
    call = Call.objects.get()
    assert call.campaign == summer_number.campaign
    assert call.outcome == Outcome.ANSWERED
    assert call.state == CallState.ENDED
    assert call.whisper_text == "Incoming call regarding the summer offer"
    assert call.talk_seconds == 30
    assert call.legs.filter(role=LegRole.AGENT).count() == 1
    # The simulator delivers one "completed" twice: stored once.
    assert CallEvent.objects.filter(call=call, status="completed").count() == 2
    assert f"/admin/calls/call/{call.pk}/change/" in output
    assert "Verdict: expected outcome answered, got answered … ok" in output


def test_simulator_never_reaches_vonage_even_with_credentials(
    summer_number: TrackingNumber, settings: Settings
) -> None:
    settings.VONAGE_APPLICATION_ID = "real-app"
    settings.VONAGE_PRIVATE_KEY = "/nonexistent/private.key"
    settings.VONAGE_API_HOST = "api.nexmo.com"
    bundle = os.environ.get("REQUESTS_CA_BUNDLE")

    output = simulate(to="447700900001")

    # The agent call was placed, through the SDK, at the local fake with throwaway
    # credentials (pytest-socket would have refused api.nexmo.com).
    agent = Call.objects.get().legs.get(role=LegRole.AGENT)
    assert not agent.uuid.startswith("dryrun-")
    assert Call.objects.get().agent_call_error == ""
    assert "the local fake at 127.0.0.1:" in output
    # Everything is put back afterwards.
    assert (settings.VONAGE_APPLICATION_ID, settings.VONAGE_API_HOST) == ("real-app", "api.nexmo.com")
    assert os.environ.get("REQUESTS_CA_BUNDLE") == bundle


def test_unknown_number_is_simulated_with_the_default_whisper(db: None) -> None:
    output = simulate(to="447700900555")
    assert "Incoming call to an unrecognised number, 4 4 7 7 0 0 9 0 0 5 5 5." in output
    assert Call.objects.get().number_status == "unknown"


def test_a_number_that_is_not_a_number_is_refused(db: None) -> None:
    with pytest.raises(CommandError, match="not a phone number"):
        simulate(to="12ab")
    assert not Call.objects.exists()


def test_list_names_every_scenario(db: None) -> None:
    output = simulate(list=True)
    assert [line.split()[0] for line in output.splitlines()] == list(SCENARIOS)
    assert not Call.objects.exists()


def test_a_scenario_runs_on_its_own_campaign(summer_number: TrackingNumber) -> None:
    before = Campaign.objects.values().get(pk=summer_number.campaign_id)

    output = simulate(scenario="agent-busy", strategy="connect")

    campaign = Campaign.objects.get(name="Simulator: agent-busy")
    assert campaign.strategy == Strategy.CONNECT
    assert campaign.numbers.get().number == SCENARIOS["agent-busy"].number
    call = Call.objects.get()
    assert (call.campaign, call.outcome, call.strategy) == (campaign, Outcome.VOICEMAIL, Strategy.CONNECT)
    assert "Scenario agent-busy, connect strategy" in output
    assert "Verdict: expected outcome voicemail, got voicemail … ok" in output
    # The other campaigns are untouched.
    assert Campaign.objects.values().get(pk=summer_number.campaign_id) == before


def test_without_strategy_the_scenario_campaign_keeps_its_own(db: None) -> None:
    simulate(scenario="answered", strategy="connect")
    simulate(scenario="answered")
    assert list(Call.objects.order_by("id").values_list("strategy", flat=True)) == ["connect", "connect"]


def test_a_failed_verdict_exits_non_zero(summer_number: TrackingNumber) -> None:
    # The summer offer does not ask for press 1: the agent cannot decline, the call is answered.
    with pytest.raises(CommandError, match="expected outcome declined, got answered … FAILED"):
        simulate(scenario="agent-declines", to="447700900001")


def test_strategy_applies_only_to_a_scenario_campaign(summer_number: TrackingNumber) -> None:
    with pytest.raises(CommandError, match="--strategy applies to a scenario's own campaign"):
        simulate(to="447700900001", strategy="connect")
    assert not Call.objects.exists()


@pytest.mark.parametrize(("verbosity", "logged"), [(1, False), (2, True)])
def test_app_log_lines_are_shown_only_with_verbosity_2(
    verbosity: int, logged: bool, db: None, caplog: pytest.LogCaptureFixture
) -> None:
    level = logging.getLogger("calls").level

    simulate(scenario="api-down", strategy="conference", verbosity=verbosity)

    warnings = [r.getMessage() for r in caplog.records if r.name.startswith(("calls", "vonage"))]
    assert any("answered 500" in message for message in warnings) is logged
    assert logging.getLogger("calls").level == level
    assert settings.VONAGE_API_HOST == "vonage.invalid"


def test_a_connect_over_the_account_call_limit_is_refused_by_the_simulated_vonage(db: None) -> None:
    """The simulator counts a ``connect`` against the fake's limit, as Vonage counts it."""
    from devtools.simulator.run import local_vonage, run_scenario

    lines: list[str] = []
    with local_vonage() as fake:
        fake.set_calls_per_second(0.001)  # one call in the allowance, refilled after ~17 minutes
        assert fake.new_call_allowed()  # taken: the next new call is over the limit
        result = run_scenario(SCENARIOS["answered"], fake=fake, narrate=lines.append, strategy="connect")

    assert fake.rate_limited == 1
    assert any("over the account's call limit" in line for line in lines)
    assert result.call is not None
    assert result.call.outcome != Outcome.ANSWERED  # nobody was rung: the caller went on to the fallback
    assert result.call.legs.filter(role=LegRole.AGENT, status="failed").count() == 1
