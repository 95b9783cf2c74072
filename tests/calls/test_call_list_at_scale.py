"""The call list stays fast on a big history: no full scans for the pager or the dates."""

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from calls.admin import EstimatedCountPaginator
from calls.models import Call
from tests.factories import CallFactory


def test_date_hierarchy_lists_years_from_first_to_last_call_without_distinct(admin_client: Client) -> None:
    now = timezone.now()
    CallFactory.create(started_at=now - timedelta(days=800))
    CallFactory.create(started_at=now)

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get("/admin/calls/call/")

    assert response.status_code == 200
    choices = [choice["title"] for choice in response.context["choices"]] if "choices" in response.context else []
    years = list(range((now - timedelta(days=800)).year, now.year + 1))
    assert choices == [str(year) for year in years]
    assert not [q for q in queries.captured_queries if "DISTINCT" in q["sql"].upper()]


def test_month_level_lists_months_between_first_and_last_call(admin_client: Client) -> None:
    year = timezone.now().year - 1
    tz = timezone.get_current_timezone()
    from datetime import datetime

    CallFactory.create(started_at=datetime(year, 3, 10, 12, tzinfo=tz))
    CallFactory.create(started_at=datetime(year, 6, 2, 12, tzinfo=tz))

    response = admin_client.get("/admin/calls/call/", {"started_at__year": year})

    titles = [choice["title"] for choice in response.context["choices"]]
    assert titles == [f"{month} {year}" for month in ("March", "April", "May", "June")]


@pytest.mark.django_db
def test_unfiltered_count_is_exact_below_the_estimate_threshold() -> None:
    CallFactory.create_batch(3)
    assert EstimatedCountPaginator(Call.objects.all(), 50).count == 3


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the estimate comes from PostgreSQL's statistics")
def test_unfiltered_count_on_postgresql_uses_the_planner_estimate_when_large(monkeypatch: Any) -> None:
    CallFactory.create_batch(3)
    monkeypatch.setattr(EstimatedCountPaginator, "ESTIMATE_ABOVE", -1)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE calls_call")
    with CaptureQueriesContext(connection) as queries:
        count = EstimatedCountPaginator(Call.objects.all(), 50).count
    # The size comes from the planner's statistics: no row is counted.
    assert [q["sql"] for q in queries.captured_queries if "pg_class" in q["sql"]]
    assert not [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert isinstance(count, int)
    # A filtered list is always counted exactly.
    assert EstimatedCountPaginator(Call.objects.filter(outcome="answered"), 50).count == 0
