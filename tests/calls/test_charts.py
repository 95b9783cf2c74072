"""The daily chart: an SVG string from numbers, read at a glance and hovered for figures."""

import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from calls.charts import stacked_bars_svg
from calls.models import Outcome
from calls.reports import OUTCOME_COLORS, REPORT_OUTCOMES

SVG = "{http://www.w3.org/2000/svg}"
DAYS = [date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)]
COLORS = {"Answered": "#009E73", "Missed": "#D55E00", "Closed": "#999999"}


def chart(series: dict[str, list[int]], days: list[date] = DAYS) -> ET.Element:
    """The chart parsed as XML: it must be well-formed to be inlined in the page."""
    return ET.fromstring(stacked_bars_svg(days, series, COLORS))  # noqa: S314 - our own output


def day_groups(svg: ET.Element) -> list[ET.Element]:
    return [g for g in svg.iter(f"{SVG}g") if g.get("class") == "day"]


def title(element: ET.Element) -> str:
    found = element.find(f"{SVG}title")
    assert found is not None
    return found.text or ""


def test_one_bar_group_per_day_in_order_with_the_days_total() -> None:
    svg = chart({"Answered": [2, 0, 5], "Missed": [1, 0, 0], "Closed": [0, 0, 1]})

    groups = day_groups(svg)

    assert [g.get("data-day") for g in groups] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert [title(g) for g in groups] == ["1 Nov 2026: 3 calls", "2 Nov 2026: 0 calls", "3 Nov 2026: 6 calls"]


def test_each_segment_has_its_colour_and_a_title_for_hover_and_empty_ones_are_left_out() -> None:
    svg = chart({"Answered": [2, 0, 5], "Missed": [1, 0, 0], "Closed": [0, 0, 1]})

    first, second, third = day_groups(svg)

    assert [(r.get("fill"), title(r)) for r in first.iter(f"{SVG}rect")] == [
        ("#009E73", "1 Nov 2026: 2 answered"),
        ("#D55E00", "1 Nov 2026: 1 missed"),
    ]
    assert list(second.iter(f"{SVG}rect")) == []
    assert [title(r) for r in third.iter(f"{SVG}rect")] == ["3 Nov 2026: 5 answered", "3 Nov 2026: 1 closed"]


def test_segments_stack_in_series_order_with_heights_in_proportion() -> None:
    svg = chart({"Answered": [4, 0, 0], "Missed": [2, 0, 0], "Closed": [0, 0, 0]})

    answered, missed = (
        {"y": float(r.get("y", "")), "height": float(r.get("height", ""))}
        for r in day_groups(svg)[0].iter(f"{SVG}rect")
    )

    assert answered["height"] == pytest.approx(2 * missed["height"])
    # Missed sits on top of answered: its bottom edge is answered's top edge.
    assert missed["y"] + missed["height"] == pytest.approx(answered["y"])


def test_axes_are_labelled_with_round_numbers() -> None:
    svg = stacked_bars_svg(DAYS, {"Answered": [7, 23, 12]}, COLORS)

    y_labels = re.findall(r'text-anchor="end" dominant-baseline="middle">(\d+)</text>', svg)
    assert y_labels == ["0", "5", "10", "15", "20", "25"]
    assert ">Calls</text>" in svg
    assert ">Day</text>" in svg
    assert ">1 Nov</text>" in svg and ">3 Nov</text>" in svg


def test_the_legend_names_the_series_that_have_calls_in_stacking_order() -> None:
    svg = chart({"Answered": [1, 1, 1], "Missed": [0, 0, 0], "Closed": [0, 2, 0]})

    legend = next(g for g in svg.iter(f"{SVG}g") if g.get("class") == "legend")

    assert [t.text for t in legend.iter(f"{SVG}text")] == ["Answered", "Closed"]
    assert [r.get("fill") for r in legend.iter(f"{SVG}rect")] == ["#009E73", "#999999"]


def test_a_period_without_calls_says_so() -> None:
    svg = stacked_bars_svg(DAYS, {"Answered": [0, 0, 0]}, COLORS)

    assert "No calls in this period." in svg
    assert len(day_groups(ET.fromstring(svg))) == 3  # noqa: S314
    assert "<rect" not in svg


def test_long_periods_label_only_some_days_so_labels_do_not_overlap() -> None:
    days = [date(2026, 1, 1) + timedelta(days=n) for n in range(366)]

    svg = chart({"Answered": [n % 7 for n in range(366)]}, days=days)

    assert len(day_groups(svg)) == 366
    x_axis = next(g for g in svg.iter(f"{SVG}g") if g.get("class") == "x-axis")
    assert 2 <= len(list(x_axis.iter(f"{SVG}text"))) <= 17  # day labels and the axis title


def test_labels_are_escaped() -> None:
    svg = stacked_bars_svg(DAYS, {"<b>Answered & co</b>": [1, 0, 0]}, {"<b>Answered & co</b>": "#009E73"})

    assert "<b>" not in svg
    assert "&lt;b&gt;Answered &amp; co&lt;/b&gt;" in svg
    ET.fromstring(svg)  # noqa: S314 - well-formed


def test_every_series_needs_a_count_for_every_day() -> None:
    with pytest.raises(ValueError, match="2 counts for 3 days"):
        stacked_bars_svg(DAYS, {"Answered": [1, 2]}, COLORS)


def test_every_report_outcome_has_its_own_colour() -> None:
    assert set(OUTCOME_COLORS) == set(REPORT_OUTCOMES)
    assert len(set(OUTCOME_COLORS.values())) == len(REPORT_OUTCOMES)
    assert all(re.fullmatch(r"#[0-9A-F]{6}", c) for c in OUTCOME_COLORS.values())
    assert OUTCOME_COLORS[Outcome.ANSWERED] != OUTCOME_COLORS[Outcome.MISSED]
