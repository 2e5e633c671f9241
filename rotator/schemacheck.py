"""JSON Schema validation with one plain message naming the bad field's path."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from rotator.errors import BadInput
from rotator.yamlload import json_path

_UNEXPECTED = re.compile(r"\('(?P<name>[^']+)' (?:was|were) unexpected\)")


def _describe(err: ValidationError) -> tuple[str, str]:
    path = list(err.absolute_path)
    if err.validator == "additionalProperties":
        m = _UNEXPECTED.search(err.message)
        if m:
            return json_path([*path, m["name"]]), "unknown field"
    if err.validator == "required":
        return json_path(path), err.message
    return json_path(path), err.message


def validate(document: Any, schema: dict[str, Any], *, source: str) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    error = best_match(validator.iter_errors(document))
    if error is not None:
        path, message = _describe(error)
        raise BadInput(f"{source}: {path}: {message}", resource=source)
