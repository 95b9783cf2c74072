"""Writes for campaigns: loading and saving the campaigns file.

The file (``campaigns/serializers.py`` describes it) is validated whole before anything
is written, and written in one transaction, so a bad file changes nothing. Campaigns
are matched by name and numbers by number: importing the same file twice changes
nothing the second time, and a number the file puts on another campaign moves there.
Nothing is deleted: campaigns and numbers the file does not mention are left alone.
A campaign's opening hours are the exception: when the file gives ``opening_hours``, that
list is the campaign's week, and replaces the hours it had.
"""

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import models, transaction
from rest_framework.settings import api_settings

from .models import Campaign, OpeningHours, TrackingNumber
from .serializers import CAMPAIGN_FILE_KEYS, CampaignFileSerializer

logger = logging.getLogger(__name__)

_CAMPAIGN_FIELDS = (
    "topic",
    "destination",
    "whisper_template",
    "callback_template",
    "greeting",
    "hold_music_url",
    "is_active",
    "is_demo",
    "language",
    "style",
    "strategy",
    "hunt_numbers",
    "ring_seconds",
    "require_accept",
    "accept_prompt",
    "max_wait_seconds",
    "fallback",
    "fallback_message",
    "voicemail_prompt",
    "timezone",
    "starts_on",
    "ends_on",
    "closed_action",
    "closed_message",
)
_NUMBER_FIELDS = ("source", "is_active")


class CampaignFileInvalid(Exception):
    """The campaigns file was refused; ``problems`` says where and why, one sentence each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class ImportSummary:
    campaigns_created: int = 0
    campaigns_updated: int = 0
    campaigns_unchanged: int = 0
    numbers_created: int = 0
    numbers_updated: int = 0
    numbers_moved: int = 0
    numbers_unchanged: int = 0
    changes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"Campaigns: {self.campaigns_created} created, {self.campaigns_updated} updated, "
            f"{self.campaigns_unchanged} unchanged. "
            f"Numbers: {self.numbers_created} created, {self.numbers_updated} updated, "
            f"{self.numbers_moved} moved, {self.numbers_unchanged} unchanged."
        )


def campaigns_import(*, data: list[dict[str, Any]]) -> ImportSummary:
    """Create or update the campaigns and numbers in ``data`` (the parsed file).

    Raises CampaignFileInvalid, having written nothing, if any part of it is wrong.
    """
    campaigns = campaigns_file_validate(data=data)
    summary = ImportSummary()
    with transaction.atomic():
        names = [item["name"] for item in campaigns]
        numbers = [number["number"] for item in campaigns for number in item.get("numbers", [])]
        existing_campaigns = {
            c.name: c
            for c in Campaign.objects.select_for_update().prefetch_related("opening_hours").filter(name__in=names)
        }
        existing_numbers = {
            n.number: n
            for n in TrackingNumber.objects.select_for_update().select_related("campaign").filter(number__in=numbers)
        }
        # The one check that needs the stored campaign, made before anything is written.
        problems = [
            problem
            for index, item in enumerate(campaigns, start=1)
            if item["name"] in existing_campaigns
            for problem in _dates_problem(index, item, existing_campaigns[item["name"]])
        ]
        if problems:
            raise CampaignFileInvalid(problems)
        for item in campaigns:
            campaign = _campaign_upsert(item, existing_campaigns.get(item["name"]), summary)
            for number_item in item.get("numbers", []):
                _number_upsert(number_item, campaign, existing_numbers.get(number_item["number"]), summary)
    logger.info("campaigns.import %s", summary)
    return summary


def campaigns_file_validate(*, data: Any) -> list[dict[str, Any]]:
    """The file's campaigns, validated and normalised; raises CampaignFileInvalid."""
    if not isinstance(data, list):
        raise CampaignFileInvalid([f"The file must hold a list of campaigns ([{{…}}, …]), not {_json_type(data)}."])
    problems: list[str] = []
    campaigns: list[tuple[int, dict[str, Any]]] = []
    for index, item in enumerate(data, start=1):
        serializer = CampaignFileSerializer(data=item)
        if serializer.is_valid():
            campaigns.append((index, dict(serializer.validated_data)))
        else:
            label = _campaign_label(index, item)
            problems.extend(_located(label, where, message) for where, message in _flatten(serializer.errors))
    problems.extend(_duplicates(campaigns))
    if problems:
        raise CampaignFileInvalid(problems)
    return [item for _index, item in campaigns]


def campaigns_export() -> list[dict[str, Any]]:
    """Every campaign with its numbers, in the import format, with every key.

    Campaigns are in name order and numbers in number order, so the same data always
    gives the same file.
    """
    queryset = Campaign.objects.prefetch_related("numbers", "opening_hours").order_by("name")
    return [dict(item) for item in CampaignFileSerializer(queryset, many=True).data]


# --- writing -------------------------------------------------------------------------


def _campaign_upsert(item: dict[str, Any], campaign: Campaign | None, summary: ImportSummary) -> Campaign:
    fields = {name: item[name] for name in _CAMPAIGN_FIELDS if name in item}
    hours: list[dict[str, Any]] | None = item.get("opening_hours")
    if campaign is None:
        campaign = Campaign.objects.create(name=item["name"], **fields)
        if hours:
            OpeningHours.objects.bulk_create(OpeningHours(campaign=campaign, **period) for period in hours)
        summary.campaigns_created += 1
        summary.changes.append(f"Created campaign “{campaign.name}”.")
        return campaign
    changed = _assign(campaign, fields)
    hours_changed = hours is not None and _week(hours) != _week(
        {"weekday": h.weekday, "opens": h.opens, "closes": h.closes} for h in campaign.opening_hours.all()
    )
    if changed or hours_changed:
        # Saved only when something changed, so an unchanged campaign keeps its updated_at.
        campaign.save(update_fields=[*changed, "updated_at"])
        if hours_changed:
            campaign.opening_hours.all().delete()
            OpeningHours.objects.bulk_create(OpeningHours(campaign=campaign, **period) for period in hours or [])
        summary.campaigns_updated += 1
        keys = _file_keys([*changed, *(["opening_hours"] if hours_changed else [])])
        summary.changes.append(f"Updated campaign “{campaign.name}”: {keys}.")
    else:
        summary.campaigns_unchanged += 1
    return campaign


def _week(periods: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """Opening periods compared whatever order they are listed in."""
    return sorted((p["weekday"], p["opens"], p["closes"]) for p in periods)


def _dates_problem(index: int, item: dict[str, Any], campaign: Campaign) -> Iterator[str]:
    """A file may give only one of the dates: it must still fit the other one, as stored."""
    starts_on = item.get("starts_on", campaign.starts_on)
    ends_on = item.get("ends_on", campaign.ends_on)
    if starts_on is not None and ends_on is not None and starts_on > ends_on:
        where = "ends_on" if "ends_on" in item else "starts_on"
        yield (
            f"{_campaign_label(index, item)}, {where}: The campaign would end ({ends_on.isoformat()}) "
            f"before it starts ({starts_on.isoformat()})."
        )


def _number_upsert(
    item: dict[str, Any], campaign: Campaign, number: TrackingNumber | None, summary: ImportSummary
) -> None:
    fields = {name: item[name] for name in _NUMBER_FIELDS if name in item}
    if number is None:
        number = TrackingNumber.objects.create(number=item["number"], campaign=campaign, **fields)
        summary.numbers_created += 1
        source = f" ({number.source})" if number.source else ""
        summary.changes.append(f"Created number {number.number}{source} on “{campaign.name}”.")
        return
    changed = _assign(number, fields)
    if number.campaign_id != campaign.pk:
        previous = number.campaign.name
        number.campaign = campaign
        number.save(update_fields=["campaign", *changed])
        summary.numbers_moved += 1
        also = f" (and changed its {_file_keys(changed)})" if changed else ""
        summary.changes.append(f"Moved number {number.number} from “{previous}” to “{campaign.name}”{also}.")
    elif changed:
        number.save(update_fields=changed)
        summary.numbers_updated += 1
        summary.changes.append(f"Updated number {number.number}: {_file_keys(changed)}.")
    else:
        summary.numbers_unchanged += 1


def _assign(instance: models.Model, fields: Mapping[str, Any]) -> list[str]:
    """Set ``fields`` on ``instance``; return the names of those whose value changed."""
    changed = []
    for name, value in fields.items():
        if getattr(instance, name) != value:
            setattr(instance, name, value)
            changed.append(name)
    return changed


def _file_keys(fields: list[str]) -> str:
    return ", ".join(CAMPAIGN_FILE_KEYS.get(name, name) for name in fields)


# --- reporting problems --------------------------------------------------------------


def _duplicates(campaigns: list[tuple[int, dict[str, Any]]]) -> Iterator[str]:
    """A name or a number may appear once in the file: twice would make the result
    depend on the order of the file."""
    names: dict[str, int] = {}
    numbers: dict[str, str] = {}
    for index, item in campaigns:
        label = _campaign_label(index, item)
        first = names.setdefault(item["name"], index)
        if first != index:
            yield (
                f"Campaigns {first} and {index} are both named “{item['name']}”: "
                "a campaign may appear only once in the file."
            )
        for position, number in enumerate(item.get("numbers", []), start=1):
            where = f"{label}, number {position}"
            seen = numbers.setdefault(number["number"], where)
            if seen != where:
                yield (f"{where}: {number['number']} is already in the file as {seen}; a number may appear only once.")


def _flatten(detail: Any, where: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """DRF's nested errors as (path, message) pairs."""
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            yield from _flatten(value, (*where, key))
    elif isinstance(detail, list):
        for position, value in enumerate(detail):
            if isinstance(value, str):
                yield where, value
            elif value:
                # Lists of items give one (possibly empty) error dict per item.
                yield from _flatten(value, (*where, position))
    else:
        yield where, str(detail)


# Lists in the file, and what one item of each is called in a message.
_ITEM_NAMES = {"numbers": "number", "further_destinations": "further destination", "opening_hours": "opening hours"}


def _located(label: str, where: tuple[str | int, ...], message: str) -> str:
    """``campaign 2 ("Winter offer"), number 1: “12ab” is not a phone number…``"""
    parts = [label]
    for step, key in enumerate(where):
        following = where[step + 1] if step + 1 < len(where) else None
        previous = where[step - 1] if step > 0 else None
        if key == api_settings.NON_FIELD_ERRORS_KEY:
            continue
        if key in _ITEM_NAMES and isinstance(following, int):
            continue
        if isinstance(key, int):
            parts.append(f"{_ITEM_NAMES.get(str(previous), 'item')} {key + 1}")
        elif key == "number" and isinstance(previous, int) and step >= 2 and where[step - 2] == "numbers":
            continue  # the message names the number
        else:
            parts.append(str(key))
    return f"{', '.join(parts)}: {message}"


def _campaign_label(index: int, item: Any) -> str:
    name = item.get("name") if isinstance(item, Mapping) else None
    if isinstance(name, str) and name.strip():
        return f'campaign {index} ("{name.strip()}")'
    return f"campaign {index}"


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return type(value).__name__
