"""calls/webhooks/serializers.validated: one serializer kept per thread and class, with
nothing of one request's data or errors left for the next."""

import threading

import pytest
from rest_framework.exceptions import ValidationError

from calls.webhooks.serializers import EventContextSerializer, EventSerializer, validated


def test_a_refused_request_leaves_nothing_for_the_next() -> None:
    with pytest.raises(ValidationError) as refused:
        validated(EventSerializer, {"status": "answered"})  # names no call
    assert "must name its call" in str(refused.value.detail)

    assert validated(EventSerializer, {"uuid": "leg-1", "status": "answered"})["uuid"] == "leg-1"
    with pytest.raises(ValidationError):
        validated(EventSerializer, {"uuid": "leg\n2"})
    assert validated(EventSerializer, {"uuid": "leg-3"}) == {"uuid": "leg-3"}


def test_an_earlier_request_s_fields_are_not_kept() -> None:
    assert validated(EventContextSerializer, {"call": "7", "attempt": "1"}) == {"call": 7, "attempt": 1}

    assert validated(EventContextSerializer, {"call": "8"}) == {"call": 8}


def test_threads_validate_with_their_own() -> None:
    results: dict[int, list[dict[str, object]]] = {}

    def work(n: int) -> None:
        results[n] = [validated(EventContextSerializer, {"call": str(n * 1000 + i)}) for i in range(300)]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for n in range(1, 5):
        assert [r["call"] for r in results[n]] == [n * 1000 + i for i in range(300)]
