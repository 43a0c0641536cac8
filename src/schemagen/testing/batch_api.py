"""The Files and Batches APIs of the fault server: upload, create, poll, cancel, download.

A batch takes ``batch_polls`` retrieves to finish; its lines are answered by the same
scripted behaviours as online calls, in one go, and written to output and error files
the way OpenAI writes them. ``batch_final`` and ``batch_output_order`` script the rest.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from schemagen.testing._wire import JSON, Reply, error, json_bytes, now, ok


class BatchAPI:
    """Mixed into :class:`~schemagen.testing.FaultServer`; the state lives there."""

    batch_polls: int
    batch_final: str
    batch_output_order: str
    _lock: threading.Lock
    _ids: Iterator[int]
    _files: dict[str, JSON]
    _file_data: dict[str, bytes]
    _batches: dict[str, JSON]
    _batch_polls: dict[str, int]
    _new_record: Callable[..., Any]
    _choose: Callable[[str, JSON, int], tuple[Any, Any]]

    def _new_id(self, prefix: str) -> str:
        sep = "-" if prefix == "file" else "_"
        return f"{prefix}{sep}fault{next(self._ids):06d}"

    def _store_file(self, data: bytes, filename: str, purpose: str) -> JSON:
        obj: JSON = {"id": self._new_id("file"), "object": "file", "bytes": len(data), "created_at": now(),
               "filename": filename, "purpose": purpose, "status": "processed", "expires_at": None,
               "status_details": None}
        with self._lock:
            self._files[obj["id"]] = obj
            self._file_data[obj["id"]] = data
        return obj

    def _files_api(self, method: str, parts: list[str], headers: dict[str, str], raw: bytes) -> Reply:
        if not parts and method == "POST":
            fields = parse_multipart(headers.get("content-type", ""), raw)
            if "file" not in fields:
                return error(400, "Missing file in multipart body.", param="file")
            filename, data = fields["file"]
            purpose = fields.get("purpose", (None, b""))[1].decode()
            if purpose not in ("batch", "assistants", "fine-tune", "vision", "user_data", "evals"):
                return error(400, f"Invalid purpose: {purpose!r}.", param="purpose")
            return ok(self._store_file(data, filename or "upload", purpose))
        if not parts and method == "GET":
            with self._lock:
                listed = list(self._files.values())
            return ok({"object": "list", "data": listed, "has_more": False})
        with self._lock:
            obj = self._files.get(parts[0])
            data = self._file_data.get(parts[0], b"")
        if obj is None:
            return error(404, f"No such File object: {parts[0]}", param="id")
        if len(parts) == 1 and method == "GET":
            return ok(obj)
        if len(parts) == 1 and method == "DELETE":
            with self._lock:
                self._files.pop(parts[0], None)
                self._file_data.pop(parts[0], None)
            return ok({"id": parts[0], "object": "file", "deleted": True})
        if parts[1:] == ["content"] and method == "GET":
            return Reply(200, data, content_type="application/octet-stream")
        return error(404, "Unknown files route.")

    # -- Batches API ------------------------------------------------------------------

    def _batches_api(self, method: str, parts: list[str], body: Any) -> Reply:
        if not parts and method == "POST":
            return self._create_batch(body if isinstance(body, dict) else {})
        if not parts and method == "GET":
            with self._lock:
                data = [public(b) for b in reversed(self._batches.values())]  # newest first, as OpenAI
            return ok({"object": "list", "data": data, "has_more": False,
                        "first_id": data[0]["id"] if data else None,
                        "last_id": data[-1]["id"] if data else None})
        with self._lock:
            batch = self._batches.get(parts[0])
        if batch is None:
            return error(404, f"No batch found with id '{parts[0]}'.")
        if len(parts) == 1 and method == "GET":
            return ok(self._poll_batch(batch))
        if parts[1:] == ["cancel"] and method == "POST":
            if batch["status"] not in ("validating", "in_progress", "finalizing"):
                return error(409, f"Cannot cancel a batch with status '{batch['status']}'.")
            batch.update(status="cancelling", cancelling_at=now())
            return ok(dict(batch))
        return error(404, "Unknown batches route.")

    def _create_batch(self, body: JSON) -> Reply:
        endpoint = body.get("endpoint")
        if endpoint in ("/chat/completions", "/completions"):  # Azure OpenAI's form
            endpoint = "/v1" + endpoint
        if endpoint not in ("/v1/chat/completions", "/v1/completions"):
            return error(400, f"Unsupported endpoint for the fault server: {endpoint!r}.", param="endpoint")
        if body.get("completion_window") != "24h":
            return error(400, "completion_window must be '24h'.", param="completion_window")
        with self._lock:
            found = body.get("input_file_id") in self._files
        if not found:
            return error(404, f"No such File object: {body.get('input_file_id')}", param="input_file_id")
        created = now()
        batch: JSON = {
            "id": self._new_id("batch"), "object": "batch", "endpoint": endpoint, "errors": None,
            "input_file_id": body["input_file_id"], "completion_window": "24h", "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": created,
            "in_progress_at": None, "expires_at": created + 86400, "finalizing_at": None,
            "completed_at": None, "failed_at": None, "expired_at": None, "cancelling_at": None,
            "cancelled_at": None, "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"), "model": None, "usage": None,
        }
        with self._lock:
            self._batches[batch["id"]] = batch
            self._batch_polls[batch["id"]] = 0
        return ok(dict(batch))

    def _poll_batch(self, batch: JSON) -> JSON:
        with self._lock:
            self._batch_polls[batch["id"]] += 1
            polls = self._batch_polls[batch["id"]]
        state = batch["status"]
        if state == "cancelling":
            batch.update(status="cancelled", cancelled_at=now())
        elif state in ("validating", "in_progress", "finalizing"):
            if state == "validating":
                lines, errors = self._validate_batch(batch)
                if errors or self.batch_final == "failed":
                    errors = errors or [{"code": "invalid_request", "message": "The batch failed validation.",
                                         "param": None, "line": None}]
                    batch.update(status="failed", failed_at=now(), errors={"object": "list", "data": errors})
                    return dict(batch)
                batch["_lines"] = lines
                batch.update(status="in_progress", in_progress_at=now(),
                             request_counts={"total": len(lines), "completed": 0, "failed": 0})
            if polls >= self.batch_polls:
                self._finish_batch(batch)
            elif polls == self.batch_polls - 1 and self.batch_polls >= 3:
                batch.update(status="finalizing", finalizing_at=now())
        return public(batch)

    def _validate_batch(self, batch: JSON) -> tuple[list[JSON], list[JSON]]:
        with self._lock:
            data = self._file_data.get(batch["input_file_id"], b"")
        lines: list[JSON] = []
        errors: list[JSON] = []
        seen: set[str] = set()
        for number, text in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if not text.strip():
                continue
            try:
                item = json.loads(text)
            except ValueError:
                errors.append({"code": "invalid_json_line", "line": number, "param": None,
                               "message": f"Line {number} is not valid JSON."})
                continue
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            if not isinstance(custom_id, str) or not isinstance(item.get("body"), dict):
                errors.append({"code": "missing_required_parameter", "line": number, "param": "custom_id",
                               "message": f"Line {number} needs a custom_id and a body."})
            elif item.get("url") not in (batch["endpoint"], batch["endpoint"].removeprefix("/v1")):
                errors.append({"code": "mismatched_url", "line": number, "param": "url",
                               "message": f"Line {number} has url {item.get('url')!r}, "
                               f"the batch is for {batch['endpoint']!r}."})
            elif custom_id in seen:
                errors.append({"code": "duplicate_custom_id", "line": number, "param": "custom_id",
                               "message": f"Duplicate custom_id {custom_id!r}."})
            else:
                seen.add(custom_id)
                lines.append(item)
        if not lines and not errors:
            errors.append({"code": "empty_file", "line": None, "param": None,
                           "message": "The input file has no requests."})
        return lines, errors

    def _finish_batch(self, batch: JSON) -> None:
        lines: list[JSON] = batch.pop("_lines", [])
        endpoint = "chat" if batch["endpoint"] == "/v1/chat/completions" else "completions"
        outputs: list[JSON] = []
        failures: list[JSON] = []
        usage = {"input_tokens": 0, "output_tokens": 0, "cached": 0}
        expired = self.batch_final == "expired"
        for n, item in enumerate(lines):
            line: JSON = {"id": f"batch_req_{batch['id']}_{n}", "custom_id": item["custom_id"],
                          "response": None, "error": None}
            if expired:
                line["error"] = {"code": "batch_expired", "message":
                                 "This request could not be executed before the completion window expired."}
                failures.append(line)
                continue
            raw = json_bytes(item["body"])
            record = self._new_record("POST", item["url"], {}, raw, item["body"])
            record.batch_id, record.custom_id = batch["id"], item["custom_id"]
            behaviour, call = self._choose(endpoint, item["body"], len(raw))
            record.index, record.behaviour = call.index, behaviour
            outcome = behaviour.outcome(call)
            record.finished = time.monotonic()
            if isinstance(outcome, Reply):
                record.status = outcome.status
                try:
                    response_body: Any = json.loads(outcome.body)
                except ValueError:
                    response_body = outcome.body.decode("utf-8", "replace")
                line["response"] = {"status_code": outcome.status, "request_id": f"req_{batch['id']}_{n}",
                                    "body": response_body}
                if outcome.status == 200:
                    u = response_body.get("usage") or {}
                    usage["input_tokens"] += u.get("prompt_tokens", 0)
                    usage["output_tokens"] += u.get("completion_tokens", 0)
                    usage["cached"] += (u.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
                    outputs.append(line)
                else:
                    failures.append(line)
            else:
                line["error"] = {"code": "server_error",
                                 "message": "The request failed: the server dropped the connection."}
                failures.append(line)
        if self.batch_output_order == "reversed":
            outputs.reverse()
            failures.reverse()
        ended = now()
        if outputs:
            data = b"".join(json_bytes(x) + b"\n" for x in outputs)
            name = f"{batch['id']}_output.jsonl"
            batch["output_file_id"] = self._store_file(data, name, "batch_output")["id"]
        if failures:
            data = b"".join(json_bytes(x) + b"\n" for x in failures)
            name = f"{batch['id']}_error.jsonl"
            batch["error_file_id"] = self._store_file(data, name, "batch_output")["id"]
        batch.update(
            request_counts={"total": len(lines), "completed": len(outputs), "failed": len(failures)},
            usage={"input_tokens": usage["input_tokens"],
                   "input_tokens_details": {"cached_tokens": usage["cached"]},
                   "output_tokens": usage["output_tokens"],
                   "output_tokens_details": {"reasoning_tokens": 0},
                   "total_tokens": usage["input_tokens"] + usage["output_tokens"]},
            finalizing_at=batch["finalizing_at"] or ended,
        )
        if expired:
            batch.update(status="expired", expired_at=ended)
        else:
            batch.update(status="completed", completed_at=ended)



def public(batch: JSON) -> JSON:
    return {k: v for k, v in batch.items() if not k.startswith("_")}



def parse_multipart(content_type: str, raw: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``{field: (filename, data)}`` from a multipart/form-data body."""
    boundary = None
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        return {}
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in raw.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.partition(b"\r\n\r\n")
        data = data[:-2] if data.endswith(b"\r\n") else data
        name = filename = None
        for line in head.decode("utf-8", "replace").split("\r\n"):
            if line.lower().startswith("content-disposition:"):
                for param in line.split(";")[1:]:
                    key, _, value = param.strip().partition("=")
                    if key == "name":
                        name = value.strip('"')
                    elif key == "filename":
                        filename = value.strip('"')
        if name:
            fields[name] = (filename, data)
    return fields
