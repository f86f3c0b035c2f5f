"""Parameters: Keras-style errors naming the parameter and the received value, defaults, JSON round
trip, and agreement of the JSON Schema with validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from opt_reference import DEFAULTS

from conv3dt_studio.compute import (
    CONV3D_TRANSPOSE_SCHEMA,
    OPTIMIZER_SCHEMA,
    Conv3DTranspose,
    Param,
    Schema,
)
from conv3dt_studio.compute.activations import ACTIVATION_NAMES
from conv3dt_studio.compute.errors import ParameterError
from conv3dt_studio.compute.initializers import INITIALIZER_NAMES

S = CONV3D_TRANSPOSE_SCHEMA

# --------------------------------------------------------------------------- bad values
# (keyword arguments, parameter named in the error, value as shown after "Received: name=")
BAD = [
    ({"size": [3, 3, 3, 3]}, "size", "[3, 3, 3, 3]"),
    ({"size": (3, 3, 3, 3)}, "size", "[3, 3, 3, 3]"),
    ({"size": [3, 3]}, "size", "[3, 3]"),
    ({"size": []}, "size", "[]"),
    ({"size": 0}, "size", "0"),
    ({"size": -2}, "size", "-2"),
    ({"size": [3, 0, 3]}, "size", "[3, 0, 3]"),
    ({"size": [3, -1, 3]}, "size", "[3, -1, 3]"),
    ({"size": 2.5}, "size", "2.5"),
    ({"size": 3.0}, "size", "3.0"),
    ({"size": [3, 3.0, 3]}, "size", "[3, 3.0, 3]"),
    ({"size": "3"}, "size", "'3'"),
    ({"size": True}, "size", "True"),
    ({"size": None}, "size", "None"),
    ({"stride": 0}, "stride", "0"),
    ({"stride": [1, 2, 3, 4]}, "stride", "[1, 2, 3, 4]"),
    ({"stride": [2, "2", 2]}, "stride", "[2, '2', 2]"),
    ({"dilation_rate": -1}, "dilation_rate", "-1"),
    ({"dilation_rate": [1, 1]}, "dilation_rate", "[1, 1]"),
    ({"dilation_rate": 1.5}, "dilation_rate", "1.5"),
    ({"n_filters": 0}, "n_filters", "0"),
    ({"n_filters": -3}, "n_filters", "-3"),
    ({"n_filters": 2.0}, "n_filters", "2.0"),
    ({"n_filters": "3"}, "n_filters", "'3'"),
    ({"n_filters": True}, "n_filters", "True"),
    ({"n_filters": None}, "n_filters", "None"),
    ({"activation": "ReLU"}, "activation", "'ReLU'"),
    ({"activation": "swish2"}, "activation", "'swish2'"),
    ({"activation": None}, "activation", "None"),
    ({"activation": 1}, "activation", "1"),
    ({"use_bias": "yes"}, "use_bias", "'yes'"),
    ({"use_bias": 1}, "use_bias", "1"),
    ({"padding": "same"}, "padding", "'same'"),
    ({"padding": 0}, "padding", "0"),
    ({"data_format": "channels_middle"}, "data_format", "'channels_middle'"),
    ({"data_format": "NCDHW"}, "data_format", "'NCDHW'"),
    ({"filter_initializer": "glorot"}, "filter_initializer", "'glorot'"),
    ({"bias_initializer": "identity"}, "bias_initializer", "'identity'"),
    ({"bias_initializer": "orthogonal"}, "bias_initializer", "'orthogonal'"),
    ({"constant_value": float("nan")}, "constant_value", "nan"),
    ({"constant_value": float("inf")}, "constant_value", "inf"),
    ({"constant_value": "0.1"}, "constant_value", "'0.1'"),
    ({"training": "true"}, "training", "'true'"),
    ({"store": 1}, "store", "1"),
    ({"update": None}, "update", "None"),
    ({"lda_coeff": float("nan")}, "lda_coeff", "nan"),
    ({"lda_coeff": float("inf")}, "lda_coeff", "inf"),
    ({"lda_coeff": float("-inf")}, "lda_coeff", "-inf"),
    ({"lda_coeff": "1"}, "lda_coeff", "'1'"),
    ({"lda_coeff": True}, "lda_coeff", "True"),
    ({"output_padding": -1, "stride": 2}, "output_padding", "-1"),
    ({"output_padding": [1, 1], "stride": 2}, "output_padding", "[1, 1]"),
    ({"output_padding": [2, 0, 0], "stride": 2}, "output_padding", "[2, 0, 0]"),
    ({"output_padding": 1}, "output_padding", "[1, 1, 1]"),
    ({"output_padding": [0, 0, 3], "stride": [2, 2, 3]}, "output_padding", "[0, 0, 3]"),
    ({"output_padding": 1.0, "stride": 2}, "output_padding", "1.0"),
    ({"optimizer": "adam"}, "optimizer", "'adam'"),
    ({"optimizer": {"algorithm": "adamw"}}, "algorithm", "'adamw'"),
    ({"optimizer": {"algorithm": "SGD"}}, "algorithm", "'SGD'"),
    ({"optimizer": {"learning_rate": -0.1}}, "learning_rate", "-0.1"),
    ({"optimizer": {"learning_rate": "0.1"}}, "learning_rate", "'0.1'"),
    ({"optimizer": {"learning_rate": float("nan")}}, "learning_rate", "nan"),
    ({"optimizer": {"learning_rate": float("inf")}}, "learning_rate", "inf"),
    ({"optimizer": {"beta_1": 1.5}}, "beta_1", "1.5"),
    ({"optimizer": {"beta_1": -0.1}}, "beta_1", "-0.1"),
    ({"optimizer": {"beta_2": 2}}, "beta_2", "2"),
    ({"optimizer": {"algorithm": "sgd", "beta_1": 1.0}}, "beta_1", "1.0"),  # / (1 - beta_1^t)
    ({"optimizer": {"beta_2": 1}}, "beta_2", "1"),
    ({"optimizer": {"epsilon": 0.0}}, "epsilon", "0.0"),
    ({"optimizer": {"epsilon": -1e-7}}, "epsilon", "-1e-07"),
    ({"optimizer": {"momentum": 1.01}}, "momentum", "1.01"),
    ({"optimizer": {"momentum": None}}, "momentum", "None"),
]


@pytest.mark.parametrize("kwargs, param, shown", BAD, ids=[f"{b[1]}={b[2]}" for b in BAD])
def test_bad_value_error_names_parameter_and_value(kwargs, param, shown):
    with pytest.raises(ParameterError) as err:
        Conv3DTranspose(**kwargs)
    msg = str(err.value)
    assert msg.startswith(f"Invalid value for `{param}`: expected "), msg
    assert msg.endswith(f"Received: {param}={shown}"), msg
    assert "\n" not in msg


def test_an_exclusive_maximum_is_said_and_kept():
    with pytest.raises(
        ParameterError, match=r"expected a number >= 0 and < 1\. Received: beta_1=1\.0"
    ):
        Conv3DTranspose(optimizer={"beta_1": 1.0})
    assert Conv3DTranspose(optimizer={"beta_1": 0.999999}).config["optimizer"]["beta_1"] == 0.999999


def test_size_four_values_exact_message():
    with pytest.raises(ParameterError) as err:
        Conv3DTranspose(size=[3, 3, 3, 3])
    assert str(err.value) == (
        "Invalid value for `size`: expected 1 or 3 positive integers. Received: size=[3, 3, 3, 3]"
    )


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"filters": 3}, "filters"),
        ({"kernel_size": 3}, "kernel_size"),
        ({"strides": 2}, "strides"),
        ({"optimizer": {"lr": 0.1}}, "lr"),
        ({"optimizer": {"rho": 0.9}}, "rho"),
    ],
)
def test_unknown_keys_are_named(kwargs, key):
    with pytest.raises(ParameterError) as err:
        Conv3DTranspose(**kwargs)
    msg = str(err.value)
    assert f"`{key}`" in msg
    assert f"Received: {key}=" in msg


def test_name_must_be_a_string():
    with pytest.raises(ParameterError, match="`name`"):
        Conv3DTranspose(name=3)


def test_problems_lists_every_error_at_once():
    errs = S.problems({"size": 0, "stride": -1, "activation": "nope", "bogus": 1})
    text = " | ".join(map(str, errs))
    assert len(errs) == 4
    for name in ("size", "stride", "activation", "bogus"):
        assert f"`{name}`" in text
    assert S.problems({"size": 3}) == []


# --------------------------------------------------------------------------- good values


@pytest.mark.parametrize(
    "param, value, normalised",
    [
        ("size", 2, (2, 2, 2)),
        ("size", [4], (4, 4, 4)),
        ("size", (1, 2, 5), (1, 2, 5)),
        ("size", np.array([3, 2, 1]), (3, 2, 1)),
        ("size", [np.int64(2), 3, 4], (2, 3, 4)),
        ("stride", 3, (3, 3, 3)),
        ("dilation_rate", [1, 2, 3], (1, 2, 3)),
        ("n_filters", np.int32(7), 7),
        ("lda_coeff", -0.5, -0.5),
        ("lda_coeff", 0, 0.0),
        ("constant_value", -2, -2.0),
        ("use_bias", np.bool_(False), False),
        ("output_padding", None, None),
    ],
)
def test_good_values_are_normalised(param, value, normalised):
    cfg = S.validate({param: value})
    assert cfg[param] == normalised
    assert type(cfg[param]) is type(normalised)


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_every_activation_accepted(name):
    assert Conv3DTranspose(activation=name).config["activation"] == name


@pytest.mark.parametrize("name", INITIALIZER_NAMES)
def test_every_filter_initializer_accepted(name):
    assert Conv3DTranspose(filter_initializer=name).config["filter_initializer"] == name


def test_output_padding_below_stride_accepted():
    cfg = Conv3DTranspose(output_padding=[1, 0, 2], stride=[2, 1, 3]).config
    assert cfg["output_padding"] == (1, 0, 2)


def test_partial_optimizer_keeps_defaults():
    layer = Conv3DTranspose(optimizer={"algorithm": "sgd", "learning_rate": 0.01})
    assert layer.config["optimizer"] == {
        "algorithm": "sgd",
        "learning_rate": 0.01,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-7,
        "momentum": 0.9,
    }


def test_defaults():
    d = S.defaults()
    expected = {
        "n_filters": 3,
        "size": (3, 3, 3),
        "stride": (1, 1, 1),
        "dilation_rate": (1, 1, 1),
        "use_bias": True,
        "padding": False,
        "data_format": "channels_first",
        "optimizer": DEFAULTS,  # the optimizer table, in opt_reference
        "filter_initializer": "glorot_uniform",
        "bias_initializer": "zeros",
        "constant_value": 0.0,
        "training": True,
        "store": False,
        "update": True,
        "lda_coeff": 1.0,
        "output_padding": None,
    }
    for k, v in expected.items():
        assert d[k] == v, k
    assert d["activation"] in ACTIVATION_NAMES
    assert set(d) == set(expected) | {"activation"}
    assert Conv3DTranspose().config == d


# --------------------------------------------------------------------------- JSON

CONFIGS = [
    {},
    {"size": 2, "stride": [1, 2, 3], "dilation_rate": [2, 1, 1], "activation": "gelu"},
    {"padding": True, "data_format": "channels_last", "use_bias": False, "lda_coeff": -2.5},
    {
        "optimizer": {"algorithm": "nadam", "beta_2": 0.5},
        "output_padding": [1, 0, 1],
        "stride": 2,
        "filter_initializer": "constant",
        "constant_value": 0.3,
    },
    {"store": True, "update": False, "training": False, "n_filters": 1},
]


@pytest.mark.parametrize("values", CONFIGS)
def test_json_round_trip(values):
    cfg = S.validate(values)
    data = json.loads(json.dumps(S.to_json(cfg)))
    assert S.validate(data) == cfg
    assert S.to_json(S.validate(data)) == data


@pytest.mark.parametrize("values", CONFIGS)
def test_layer_get_config_round_trip(values):
    layer = Conv3DTranspose(name="round_trip_layer", **values)
    cfg = json.loads(json.dumps(layer.get_config()))
    assert cfg["name"] == "round_trip_layer"
    again = Conv3DTranspose(**cfg)
    assert again.config == layer.config
    assert again.name == layer.name


def test_optimizer_schema_round_trip():
    cfg = OPTIMIZER_SCHEMA.validate({"algorithm": "rmsprop", "epsilon": 1e-3})
    assert OPTIMIZER_SCHEMA.validate(json.loads(json.dumps(OPTIMIZER_SCHEMA.to_json(cfg)))) == cfg


# A small validator for the JSON Schema keywords the project uses (draft 2020-12 semantics).
KNOWN_KEYWORDS = {
    "type",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "oneOf",
    "anyOf",
    "items",
    "minItems",
    "maxItems",
    "properties",
    "additionalProperties",
    "description",
    "default",
    "title",
    "required",
    "$schema",
    "$id",
    "const",
}


def _type_ok(t, v):
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t == "boolean":
        return isinstance(v, bool)
    if t == "string":
        return isinstance(v, str)
    if t == "null":
        return v is None
    if t == "array":
        return isinstance(v, list)
    if t == "object":
        return isinstance(v, dict)
    raise AssertionError(f"unknown JSON type {t!r}")


def conforms(schema: dict, v) -> bool:
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_ok(t, v) for t in types):
            return False
    if "enum" in schema and v not in schema["enum"]:
        return False
    if "const" in schema and v != schema["const"]:
        return False
    num = isinstance(v, (int, float)) and not isinstance(v, bool)
    if num and "minimum" in schema and v < schema["minimum"]:
        return False
    if num and "maximum" in schema and v > schema["maximum"]:
        return False
    if num and "exclusiveMinimum" in schema and v <= schema["exclusiveMinimum"]:
        return False
    if num and "exclusiveMaximum" in schema and v >= schema["exclusiveMaximum"]:
        return False
    if "oneOf" in schema and sum(conforms(s, v) for s in schema["oneOf"]) != 1:
        return False
    if "anyOf" in schema and not any(conforms(s, v) for s in schema["anyOf"]):
        return False
    if isinstance(v, list):
        if "minItems" in schema and len(v) < schema["minItems"]:
            return False
        if "maxItems" in schema and len(v) > schema["maxItems"]:
            return False
        if "items" in schema and not all(conforms(schema["items"], x) for x in v):
            return False
    if isinstance(v, dict):
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False and any(k not in props for k in v):
            return False
        if any(k not in v for k in schema.get("required", [])):
            return False
        if not all(conforms(props[k], x) for k, x in v.items() if k in props):
            return False
    return True


def _walk(schema):
    yield schema
    for key in ("oneOf", "anyOf"):
        for s in schema.get(key, []):
            yield from _walk(s)
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"])
    for s in schema.get("properties", {}).values():
        yield from _walk(s)


def test_json_schema_structure():
    js = json.loads(json.dumps(S.json_schema()))
    assert js["type"] == "object"
    assert js["additionalProperties"] is False
    assert list(js["properties"]) == S.names()
    for name, prop in js["properties"].items():
        assert isinstance(prop.get("description"), str) and prop["description"], name
    assert js["properties"]["activation"]["enum"] == list(ACTIVATION_NAMES)
    opt = js["properties"]["optimizer"]
    assert opt["type"] == "object"
    assert set(opt["properties"]) == set(OPTIMIZER_SCHEMA.names())
    for sub in _walk(js):
        unknown = set(sub) - KNOWN_KEYWORDS
        assert not unknown, f"not JSON Schema 2020-12 keywords: {unknown}"
        if "type" in sub:
            assert sub["type"] in (
                "object",
                "array",
                "integer",
                "number",
                "boolean",
                "string",
                "null",
            )
        for key in ("minItems", "maxItems"):
            if key in sub:
                assert isinstance(sub[key], int) and sub[key] >= 0


@pytest.mark.parametrize("values", CONFIGS)
def test_valid_configs_conform_to_json_schema(values):
    data = json.loads(json.dumps(S.to_json(S.validate(values))))
    assert conforms(S.json_schema(), data)
    assert conforms(S.json_schema(), json.loads(json.dumps(values)))


def _has_nonfinite(v) -> bool:
    if isinstance(v, dict):
        return any(_has_nonfinite(x) for x in v.values())
    return isinstance(v, float) and not math.isfinite(v)


# JSON Schema's "integer" also matches numbers such as 3.0 (zero fractional part), so those are
# beyond what a JSON Schema can refuse; and so are cross-parameter constraints (output_padding).
_INTEGRAL_FLOAT = ("size=3.0", "size=[3, 3.0, 3]", "n_filters=2.0")
JSON_BAD = [
    b
    for b in BAD
    if (b[1] != "output_padding" or b[0]["output_padding"] in (-1, [1, 1]))
    and f"{b[1]}={b[2]}" not in _INTEGRAL_FLOAT
]


@pytest.mark.parametrize(
    "kwargs", [b[0] for b in JSON_BAD], ids=[f"{b[1]}={b[2]}" for b in JSON_BAD]
)
def test_json_schema_rejects_what_validation_rejects(kwargs):
    """Per-parameter constraints: whatever JSON data validation refuses, the JSON Schema refuses
    too (cross-parameter constraints such as output_padding < stride are out of its reach)."""
    data = json.loads(json.dumps(kwargs, allow_nan=True))
    has_nonfinite = _has_nonfinite(kwargs)
    if has_nonfinite:
        # NaN / Infinity are not JSON numbers at all: strict JSON refuses them
        with pytest.raises(ValueError):
            json.dumps(kwargs, allow_nan=False)
        return
    assert not conforms(S.json_schema(), data), data


def test_param_declaration_errors():
    with pytest.raises(ValueError):
        Param("x", "complex", 0, "bad kind")
    with pytest.raises(ValueError):
        Param("x", "choice", "a", "no choices")
    with pytest.raises(ValueError):
        Param("x", "cluster", None, "no fields")


def test_schema_rejects_non_mapping():
    with pytest.raises(ParameterError) as err:
        Schema((Param("a", "int", 1, "a"),)).validate([1], where="thing")
    assert "`thing`" in str(err.value)
    assert "Received: thing=[1]" in str(err.value)


# --------------------------------------------------------------------------- jsonschema


def test_json_schema_is_valid_draft_2020_12():
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(S.json_schema())
    Draft202012Validator.check_schema(OPTIMIZER_SCHEMA.json_schema())


@pytest.mark.parametrize("values", CONFIGS)
def test_jsonschema_accepts_valid_configs(values):
    from jsonschema import Draft202012Validator

    v = Draft202012Validator(S.json_schema())
    assert v.is_valid(json.loads(json.dumps(S.to_json(S.validate(values)))))
    assert v.is_valid(json.loads(json.dumps(values)))


@pytest.mark.parametrize(
    "kwargs",
    [b[0] for b in JSON_BAD if not _has_nonfinite(b[0])],
    ids=[f"{b[1]}={b[2]}" for b in JSON_BAD if not _has_nonfinite(b[0])],
)
def test_jsonschema_rejects_invalid_values(kwargs):
    from jsonschema import Draft202012Validator

    assert not Draft202012Validator(S.json_schema()).is_valid(json.loads(json.dumps(kwargs)))
