"""The runaway set: texts with list and free-text fields, shared by the benchmark and the tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

DATA = Path(__file__).parent / "data" / "runaway_texts.jsonl"


class Meeting(BaseModel):
    """A meeting and what came out of it."""

    title: str
    attendees: list[str]
    summary: str
    action_items: list[str]


class Recipe(BaseModel):
    """A recipe."""

    name: str
    ingredients: list[str]
    steps: list[str]


class Tags(BaseModel):
    """Topic tags for the text."""

    tags: list[str]


class Review(BaseModel):
    """A product review."""

    product: str
    pros: list[str]
    cons: list[str]
    verdict: str


class Incident(BaseModel):
    """An incident report."""

    title: str
    timeline: list[str]
    root_cause: str


class Person(BaseModel):
    name: str
    role: str


class People(BaseModel):
    """The people named in the text."""

    people: list[Person]


class Paper(BaseModel):
    """A research paper."""

    title: str
    authors: list[str]
    summary: str


SCHEMAS: dict[str, type[BaseModel]] = {
    m.__name__: m for m in (Meeting, Recipe, Tags, Review, Incident, People, Paper)
}


@dataclass(frozen=True)
class Case:
    id: str
    target: Any
    text: str


def load_cases() -> list[Case]:
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    return [Case(r["id"], SCHEMAS[r["schema"]], r["text"]) for r in rows]
