"""What `aggregator check` says about a config mistake: pydantic's complaint turned into a message
that names the wrong value and says what to write instead (`did you mean `url`?`, `use 10m`)."""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping, Sequence
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

_TABS = "found character '\\t' that cannot start any token"


def is_validator_tag(part: object) -> bool:
    """Whether a part of pydantic's error location is no key but a tag it inserts there, like
    "function-after[...]" or a Literal's repr."""
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _model_at(root: type[BaseModel], location: Sequence[object]) -> type[BaseModel] | None:
    """The model class that validates the mapping at `location` (None: not a mapping we know)."""
    model: Any = root
    for part in location:
        if isinstance(part, int):
            continue  # an item of a tuple field: the item type was taken with the field
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        model = _inner(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner(annotation: Any) -> Any:
    """`tuple[X, ...]`, `X | None` and `Annotated[X, ...]` all mean X here."""
    origin = get_origin(annotation)
    if origin in (tuple, list, Union, types.UnionType):
        for argument in get_args(annotation):
            if isinstance(argument, type) and issubclass(argument, BaseModel):
                return argument
    return annotation


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def unknown_key(root: type[BaseModel], location: Sequence[object]) -> str:
    model = _model_at(root, location[:-1])
    if model is None:
        return "unknown key"
    # The root's `path` is set by the loader, never read from the file.
    known = [name for name in model.model_fields if not (model is root and name == "path")]
    close = difflib.get_close_matches(str(location[-1]), known, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean `{close[0]}`?"
    return "unknown key; the keys here are " + ", ".join(f"`{name}`" for name in known)


def message(root: type[BaseModel], location: Sequence[object], error: Mapping[str, Any]) -> str:
    """The message for one pydantic error at `location` (validator tags already removed)."""
    kind = error["type"]
    value = error.get("input")
    key = str(location[-1]) if location else ""
    text = str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return unknown_key(root, location)
    if kind == "missing":
        return f"required key is missing; add `{key}: ...`" if key else "required key is missing"
    if kind == "literal_error":
        expected = str(error.get("ctx", {}).get("expected", "")).replace("'", "")
        if key == "kind" and str(value).lower() in ("rss", "atom", "json", "rdf", "xml"):
            return f"{_show(value)} is not a valid kind; RSS, Atom and JSON feeds are `feed`"
        return f"{_show(value)} is not a valid {key}; use {expected}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{_show(value)} is not a whole number"
    if kind in ("float_parsing", "float_type"):
        return f"{_show(value)} is not a number"
    if kind in ("bool_parsing", "bool_type"):
        return f"{_show(value)} is not true or false"
    if kind in ("tuple_type", "list_type"):
        return f"{_show(value)} is not a list; write [a, b] or one `- item` per line"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{_show(value)} is not a mapping; write `key: value` lines under `{key}`"
    if kind == "string_type":
        return f"{_show(value)} is not text; put it in quotes"
    if kind == "string_pattern_mismatch" and key == "name":
        return f"{_show(value)} is not a usable name; no spaces or slashes (use - instead)"
    return text


def value_problems(model: type[BaseModel], data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Each problem `data` has as a `model` (one source, say), as (its key, the message `check`
    would give): for a command that builds a config entry from its options and must refuse a
    bad one before it does anything else. The key is "" for a problem of the whole entry."""
    try:
        model.model_validate(data)
    except ValidationError as error:
        problems: list[tuple[str, str]] = []
        for item in error.errors():
            location = tuple(part for part in item["loc"] if not is_validator_tag(part))
            key = str(location[0]) if location else ""
            problems.append((key, message(model, location, item)))
        return problems
    return []


def yaml_message(text: str) -> str:
    if _TABS in text:
        return f"{text}; YAML indents with spaces, never tabs"
    return text
