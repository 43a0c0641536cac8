"""JSON Schema, dataclass and TypedDict targets end to end on the real llama.cpp server:
sync, async, batch and the CLI's ``--schema file.json``."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import openai
import pytest
from typing_extensions import TypedDict

import schemagen
from tests.llama_server import LlamaServer

pytestmark = pytest.mark.llama

ROOT = Path(__file__).resolve().parents[1]
SAMPLING = {"temperature": 0.0, "seed": 7, "max_tokens": 200}
CITY = {
    "title": "City",
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "population": {"type": "integer", "minimum": 0},
    },
    "required": ["name", "population"],
}
TEXT = "Paris has 2100000 inhabitants."


@dataclasses.dataclass
class Person:
    name: str
    age: int


class PersonDict(TypedDict):
    name: str
    age: int


def test_dict_target_sync_returns_validated_values(llama_server: LlamaServer) -> None:
    client = openai.OpenAI(base_url=llama_server.base_url, api_key="x")
    value = schemagen.extract(CITY, TEXT, client=client, model="smollm2", **SAMPLING)
    jsonschema.validate(value, CITY)
    assert value == {"name": "Paris", "population": 2100000}
    colors = schemagen.extract(
        {"type": "array", "items": {"type": "string"}},
        "Colors: red, green, blue.",
        client=client,
        model="smollm2",
        **SAMPLING,
    )
    assert colors == ["red", "green", "blue"]


async def test_dataclass_and_typeddict_async(llama_server: LlamaServer) -> None:
    client = openai.AsyncOpenAI(base_url=llama_server.base_url, api_key="x")
    person = await schemagen.aextract(
        Person, "Ann is 31 years old.", client=client, model="smollm2", **SAMPLING
    )
    assert person == Person("Ann", 31)
    as_dict = await schemagen.aextract(
        PersonDict, "Ann is 31 years old.", client=client, model="smollm2", **SAMPLING
    )
    assert as_dict == {"name": "Ann", "age": 31}


def test_dict_target_batch(llama_server: LlamaServer) -> None:
    texts = [TEXT, "Oslo has 700000 inhabitants."]
    results = schemagen.extract_many(
        CITY, texts, base_url=llama_server.base_url, api_key="x", model="smollm2", concurrency=2, **SAMPLING
    )
    assert [r.value for r in results] == [
        {"name": "Paris", "population": 2100000},
        {"name": "Oslo", "population": 700000},
    ]
    people = schemagen.extract_many(
        PersonDict,
        ["Ann is 31 years old."],
        base_url=llama_server.base_url,
        api_key="x",
        model="smollm2",
        **SAMPLING,
    )
    assert [r.value for r in people] == [{"name": "Ann", "age": 31}]


def test_cli_schema_json_file(llama_server: LlamaServer, tmp_path: Path) -> None:
    schema_file = tmp_path / "city.json"
    schema_file.write_text(json.dumps(CITY))
    text_file = tmp_path / "in.txt"
    text_file.write_text(TEXT)
    env = {
        **os.environ,
        "OPENAI_BASE_URL": llama_server.base_url,
        "OPENAI_API_KEY": "x",
        "SCHEMAGEN_MODEL": "smollm2",
        "PYTHONPATH": str(ROOT / "src"),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemagen",
            "extract",
            str(text_file),
            "--schema",
            str(schema_file),
            "--max-tokens",
            "200",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    city = json.loads(proc.stdout)  # the CLI samples at the server's temperature: digits may vary
    jsonschema.validate(city, CITY)
    assert city["name"] == "Paris" and str(city["population"]).startswith("21")
    module = tmp_path / "people.py"
    module.write_text(
        "import dataclasses\n\n@dataclasses.dataclass\nclass Person:\n    name: str\n    age: int\n"
    )
    person_text = tmp_path / "person.txt"
    person_text.write_text("Ann is 31 years old.")
    proc = subprocess.run(
        [sys.executable, "-m", "schemagen", "extract", str(person_text), "--schema", f"{module}:Person"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"name": "Ann", "age": 31}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"$ref": "https://example.com/city.json"}))
    refused = subprocess.run(
        [sys.executable, "-m", "schemagen", "extract", str(text_file), "--schema", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=ROOT,
    )
    assert refused.returncode == 2 and "never fetched" in refused.stderr
