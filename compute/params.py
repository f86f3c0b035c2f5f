"""One declaration per parameter.

A :class:`Param` states a parameter's name, kind, default, bounds or choices, group and one-line help.
A :class:`Schema` is an ordered set of them, plus the constraints between them (functions of the
validated values that raise :class:`ParameterError` naming the parameter at fault). That single
declaration drives validation (with Keras-style messages), defaults, conversion to and from plain JSON data, a JSON Schema fragment, and - in the
editor - the property widgets.

Kinds:
    ``int``, ``float``, ``bool``, ``str``   scalars (``str`` may be empty; ``choice`` is an enum)
    ``choice``                               one of ``choices``
    ``int3``                                 one int or exactly three ints (depth, height, width),
                                             normalised to a tuple of three
    ``shape``                                a tuple of one or more positive ints (a tensor shape)
    ``cluster``                              a nested :class:`Schema` given as ``fields``
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ParameterError

INT32_MAX = 2**31 - 1
FLOAT32_MAX = float(np.finfo(np.float32).max)  # a float parameter must be finite as float32
MAX_SHAPE_AXES = 32  # NumPy's array rank limit (32 in NumPy 1, 64 in NumPy 2): portable
SHAPE_TEXT = f"a sequence of 1 to {MAX_SHAPE_AXES} positive integers (each < 2**31)"
# a check between parameters: takes the validated values, raises ParameterError(..., param=...)
Constraint = Callable[[dict[str, Any]], None]
KINDS = ("int", "float", "bool", "str", "choice", "int3", "shape", "cluster")


@dataclass(frozen=True)
class Param:
    """Declaration of one parameter."""

    name: str
    kind: str
    default: Any
    help: str
    group: str = "layer"
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    choices: tuple[str, ...] = ()
    fields: Schema | None = None
    optional: bool = False  # beyond the toolkit's cluster (e.g. output_padding, name)
    nullable: bool = False  # None is an allowed value (meaning "not set")

    def __post_init__(self) -> None:
        if self.kind in ("int", "int3") and self.maximum is None:
            # integers are 32-bit signed (NumPy shapes, seeds, the editor's spin boxes)
            object.__setattr__(self, "maximum", INT32_MAX)
        if self.kind not in KINDS:
            raise ValueError(f"Param {self.name!r}: unknown kind {self.kind!r}")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"Param {self.name!r}: a choice needs choices")
        if self.kind == "cluster" and self.fields is None:
            raise ValueError(f"Param {self.name!r}: a cluster needs fields")

    @property
    def nested(self) -> Schema:
        """The fields of a ``cluster`` (every cluster has them: see ``__post_init__``)."""
        if self.fields is None:
            raise TypeError(f"Param {self.name!r} of kind {self.kind!r} has no fields")
        return self.fields

    # ------------------------------------------------------------------ validation
    def _fail(self, expected: str, value: Any) -> ParameterError:
        return ParameterError(
            f"Invalid value for `{self.name}`: expected {expected}. Received: {self.name}={value!r}",
            param=self.name,
        )

    def describe(self) -> str:
        """What is allowed, in words (used in error messages and tooltips)."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "bool":
            return "True or False"
        if self.kind == "int3":
            return f"1 or 3 integers {self._bounds_text() or ''}".rstrip()
        if self.kind == "cluster":
            return "a dict with keys " + ", ".join(self.nested.names())
        if self.kind == "str":
            return "a string"
        if self.kind == "shape":
            return SHAPE_TEXT
        noun = "an integer" if self.kind == "int" else "a number"
        bounds = self._bounds_text()
        return f"{noun} {bounds}" if bounds else noun

    def _bounds_text(self) -> str:
        lo, hi = self.minimum, self.maximum
        left = f"{'>' if self.exclusive_minimum else '>='} {_fmt(lo)}" if lo is not None else ""
        right = f"{'<' if self.exclusive_maximum else '<='} {_fmt(hi)}" if hi is not None else ""
        return " and ".join(t for t in (left, right) if t)

    def _in_bounds(self, v: float) -> bool:
        if self.minimum is not None and (
            v <= self.minimum if self.exclusive_minimum else v < self.minimum
        ):
            return False
        return not (
            self.maximum is not None
            and (v >= self.maximum if self.exclusive_maximum else v > self.maximum)
        )

    def validate(self, value: Any) -> Any:
        """Return the normalised value or raise :class:`ParameterError`."""
        if value is None and self.nullable:
            return None
        kind = self.kind
        if kind == "bool":
            if isinstance(value, (bool, _np_bool())):
                return bool(value)
            raise self._fail(self.describe(), value)
        if kind == "int":
            if not _is_int(value) or not self._in_bounds(int(value)):
                raise self._fail(self.describe(), value)
            return int(value)
        if kind == "float":
            if not _is_real(value) or not math.isfinite(float(value)):
                raise self._fail(self.describe(), value)
            if abs(float(value)) > FLOAT32_MAX:  # finite in JSON, infinite as float32
                raise self._fail(f"{self.describe()} that float32 holds (|x| <= 3.4e38)", value)
            if not self._in_bounds(float(value)):
                raise self._fail(self.describe(), value)
            return float(value)
        if kind == "str":
            if not isinstance(value, str):
                raise self._fail(self.describe(), value)
            return value
        if kind == "choice":
            if not isinstance(value, str) or value not in self.choices:
                raise self._fail(self.describe(), value)
            return value
        if kind == "int3":
            return self._validate_int3(value)
        if kind == "shape":
            ok = isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping))
            items = list(value) if ok else []
            if not 1 <= len(items) <= MAX_SHAPE_AXES or not all(
                _is_int(v) and 1 <= v <= INT32_MAX for v in items
            ):
                raise self._fail(SHAPE_TEXT, _plain(value))
            return tuple(int(v) for v in items)
        return self.nested.validate(value, where=self.name)

    def _validate_int3(self, value: Any) -> tuple[int, int, int]:
        expected = "1 or 3 " + ("positive integers" if self.minimum == 1 else "integers")
        if self.minimum not in (None, 1):
            expected += f" {self._bounds_text()}"
        if _is_int(value):
            items = [int(value)] * 3
        elif isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping)):
            items = list(value)
            if len(items) == 1:
                items = items * 3
            if len(items) != 3 or not all(_is_int(v) for v in items):
                raise self._fail(expected, _plain(value))
            items = [int(v) for v in items]
        else:
            raise self._fail(expected, value)
        if not all(self._in_bounds(v) for v in items):
            raise self._fail(expected, _plain(value))
        return items[0], items[1], items[2]

    # ------------------------------------------------------------------ JSON
    def to_json(self, value: Any) -> Any:
        if self.kind in ("int3", "shape") and value is not None:
            return list(value)
        if self.kind == "cluster":
            return self.nested.to_json(value)
        return value

    def json_schema(self) -> dict[str, Any]:
        """A JSON Schema fragment for this parameter (draft 2020-12)."""
        out: dict[str, Any]
        if self.kind == "cluster":
            out = self.nested.json_schema()
        elif self.kind == "int3":
            item: dict[str, Any] = {"type": "integer"}
            if self.minimum is not None:
                item["minimum"] = self.minimum
            out = {
                "oneOf": [
                    item,
                    {"type": "array", "items": item, "minItems": 1, "maxItems": 1},
                    {"type": "array", "items": item, "minItems": 3, "maxItems": 3},
                ]
            }
        elif self.kind == "shape":
            out = {
                "type": "array",
                "items": {"type": "integer", "minimum": 1, "maximum": INT32_MAX},
                "minItems": 1,
                "maxItems": MAX_SHAPE_AXES,
            }
        elif self.kind == "choice":
            out = {"enum": list(self.choices)}
        else:
            out = {
                "type": {"int": "integer", "float": "number", "bool": "boolean"}.get(
                    self.kind, "string"
                )
            }
            if self.minimum is not None:
                key = "exclusiveMinimum" if self.exclusive_minimum else "minimum"
                out[key] = self.minimum
            if self.maximum is not None:
                out["exclusiveMaximum" if self.exclusive_maximum else "maximum"] = self.maximum
        out["description"] = self.help
        if self.nullable:
            out = {"anyOf": [out, {"type": "null"}], "description": self.help}
        return out


@dataclass(frozen=True)
class Schema:
    """An ordered collection of :class:`Param` declarations and the constraints between them."""

    params: tuple[Param, ...]
    # cross-parameter checks, run on the validated values once every parameter is valid
    constraints: tuple[Constraint, ...] = ()
    by_name: dict[str, Param] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {p.name: p for p in self.params})

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params)

    def __getitem__(self, name: str) -> Param:
        return self.by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def groups(self) -> dict[str, list[Param]]:
        out: dict[str, list[Param]] = {}
        for p in self.params:
            out.setdefault(p.group, []).append(p)
        return out

    def defaults(self) -> dict[str, Any]:
        return {
            p.name: (p.nested.defaults() if p.kind == "cluster" else p.validate(p.default))
            for p in self.params
        }

    def extended(self, *params: Param) -> Schema:
        """This schema with more parameters (same constraints)."""
        return Schema((*self.params, *params), self.constraints)

    def validate(
        self, values: Any, where: str = "parameters", constraints: bool = True
    ) -> dict[str, Any]:
        """Defaults completed by ``values``; raise the first problem as :class:`ParameterError`."""
        errors, out = self._check(values, where, constraints)
        if errors:
            raise errors[0]
        return out

    def problems(
        self, values: Any, where: str = "parameters", constraints: bool = True
    ) -> list[ParameterError]:
        """Every problem at once (empty when ``values`` is valid). The constraints are checked
        when every parameter is valid on its own (``constraints=False``: not at all)."""
        return self._check(values, where, constraints)[0]

    def _check(
        self, values: Any, where: str, constraints: bool = True
    ) -> tuple[list[ParameterError], dict[str, Any]]:
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            err = ParameterError(
                f"Invalid value for `{where}`: expected a dict with keys "
                f"{', '.join(self.names())}. Received: {where}={values!r}"
            )
            return [err], {}
        errors: list[ParameterError] = []
        unknown = [k for k in values if k not in self.by_name]
        for key in unknown:
            errors.append(
                ParameterError(
                    f"Unknown parameter `{key}` in {where}: expected one of "
                    f"{', '.join(self.names())}. Received: {key}={values[key]!r}",
                    param=key,
                )
            )
        out = self.defaults()
        for p in self.params:
            if p.name not in values:
                continue
            try:
                out[p.name] = p.validate(values[p.name])
            except ParameterError as exc:
                errors.append(exc)
        if constraints and not errors:
            for check in self.constraints:
                try:
                    check(out)
                except ParameterError as exc:
                    errors.append(exc)
        return errors, out

    def to_json(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {p.name: p.to_json(values[p.name]) for p in self.params if p.name in values}

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {p.name: p.json_schema() for p in self.params},
            "additionalProperties": False,
        }


def _np_bool() -> type:
    import numpy as np

    return np.bool_


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, _np_bool()))


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, _np_bool()))


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)


def _plain(value: Any) -> Any:
    """Tuples and arrays shown as lists in messages, as the user most likely typed them; a text
    as it was typed (not as a list of its characters)."""
    if isinstance(value, (str, bytes)):
        return value
    try:
        return [v.item() if hasattr(v, "item") else v for v in value]
    except TypeError:
        return value
