"""What the public API's types say, checked by mypy in tests/test_types.py (never run).

A class target gives its instance type; any other target (a JSON Schema dict, a Literal) Any.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from typing_extensions import assert_type

import schemagen
from schemagen.batch.results import BatchResults
from schemagen.batch.run import BatchRun


class Invoice(BaseModel):
    total: float


def sync_api(client: schemagen.Client) -> None:
    assert_type(client.extract(Invoice, "t"), Invoice)
    assert_type(client.extract(list[Invoice], "t"), list[Invoice])
    assert_type(client.extract({"type": "object"}, "t"), Any)
    assert_type(client.extract_result(Invoice, "t"), schemagen.Extraction[Invoice])
    assert_type(client.stream(Invoice, "t"), schemagen.PartialStream[Invoice])
    assert_type(schemagen.extract(Invoice, "t"), Invoice)
    assert_type(schemagen.extract_result(Invoice, "t"), schemagen.Extraction[Invoice])
    assert_type(schemagen.extract_stream(Invoice, "t"), schemagen.PartialStream[Invoice])
    assert_type(schemagen.extract_many(Invoice, ["t"]), BatchResults[Invoice])
    assert_type(schemagen.extract_many({"type": "object"}, ["t"]), BatchResults[Any])


async def async_api(client: schemagen.Client) -> None:
    assert_type(await client.aextract(Invoice, "t"), Invoice)
    assert_type(await client.aextract_result(Invoice, "t"), schemagen.Extraction[Invoice])
    assert_type(client.astream(Invoice, "t"), schemagen.AsyncPartialStream[Invoice])
    assert_type(await schemagen.aextract(Invoice, "t"), Invoice)
    assert_type(await schemagen.aextract_result(Invoice, "t"), schemagen.Extraction[Invoice])
    assert_type(schemagen.aextract_stream(Invoice, "t"), schemagen.AsyncPartialStream[Invoice])
    assert_type(schemagen.aextract_many(Invoice, ["t"], concurrency=4), BatchRun[Invoice])
