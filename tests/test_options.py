"""Every invalid option fails at decoration time, naming option, value and what is accepted."""

from __future__ import annotations

import inspect
import re

import pytest

from opero import opero
from opero.core.options import DEFAULTS, Options


def f(x: int, model: str = "a") -> int:
    return x


BAD = [
    ({"retries": -1}, ValueError, "retries", "-1", ">= 0"),
    ({"retries": 1.5}, TypeError, "retries", "1.5", "int"),
    ({"retries": True}, TypeError, "retries", "True", "int"),
    ({"rate_limit": 0}, ValueError, "rate_limit", "0", "> 0"),
    ({"rate_limit": -3}, ValueError, "rate_limit", "-3", "> 0"),
    ({"rate_limit": float("inf")}, ValueError, "rate_limit", "inf", "finite"),
    ({"rate_limit": "10"}, TypeError, "rate_limit", "'10'", "number"),
    (
        {"cache_backend": "mongo"},
        ValueError,
        "cache_backend",
        "'mongo'",
        "'memory', 'disk', 'redis'",
    ),
    (
        {"rate_limit_backend": "etcd"},
        ValueError,
        "rate_limit_backend",
        "'etcd'",
        "'memory', 'redis'",
    ),
    ({"cache_serializer": "yaml"}, ValueError, "cache_serializer", "'yaml'", "'pickle', 'json'"),
    ({"max_delay": 1, "min_delay": 2}, ValueError, "max_delay", "1", "min_delay"),
    ({"min_delay": -0.1}, ValueError, "min_delay", "-0.1", ">= 0"),
    ({"backoff_factor": 0.5}, ValueError, "backoff_factor", "0.5", ">= 1"),
    ({"timeout": 0}, ValueError, "timeout", "0", "> 0"),
    ({"cache_ttl": 0}, ValueError, "cache_ttl", "0", "> 0"),
    ({"cache_ttl": -5}, ValueError, "cache_ttl", "-5", "> 0"),
    ({"cache_maxsize": 0}, ValueError, "cache_maxsize", "0", ">= 1"),
    ({"retry_on": ValueError()}, TypeError, "retry_on", "ValueError()", "exception type"),
    ({"retry_on": ()}, TypeError, "retry_on", "()", "exception type"),
    ({"retry_on": (ValueError, int)}, TypeError, "retry_on", "int", "exception type"),
    ({"cache": "yes"}, TypeError, "cache", "'yes'", "True or False"),
    ({"jitter": 1}, TypeError, "jitter", "1", "True or False"),
    ({"cache_key": 3}, TypeError, "cache_key", "3", "callable"),
    ({"on_retry": "x"}, TypeError, "on_retry", "'x'", "callable"),
    ({"cache_namespace": ""}, TypeError, "cache_namespace", "''", "non-empty str"),
    ({"arg_fallback": 3}, TypeError, "arg_fallback", "3", "parameter"),
]


@pytest.mark.parametrize(("options", "error", "name", "value", "accepted"), BAD)
def test_invalid_option_fails_at_decoration(options, error, name, value, accepted) -> None:
    with pytest.raises(error) as info:
        opero(**options)(f)
    message = str(info.value)
    assert name in message
    assert value in message
    assert accepted in message


def test_arg_fallback_unknown_parameter_fails_at_decoration() -> None:
    with pytest.raises(ValueError, match=r"arg_fallback='modle'.*parameters are: x, model"):
        opero(arg_fallback="modle")(f)


def test_async_hook_refused() -> None:
    async def hook(details: object) -> None: ...

    with pytest.raises(TypeError, match="on_fallback must be a plain callable"):
        opero(on_fallback=hook)(f)


def test_boundaries_accepted() -> None:
    opero(retries=0, min_delay=0, max_delay=0, backoff_factor=1, rate_limit=0.5, cache_ttl=None)(f)
    opero(retry_on=ValueError, cache_maxsize=1, timeout=0.01)(f)


def test_decorator_defaults_match_options_defaults() -> None:
    params = inspect.signature(opero).parameters
    for name, default in DEFAULTS.items():
        assert params[name].default == default, name
    assert set(params) - {"func"} == set(DEFAULTS)


def test_unknown_option_named() -> None:
    with pytest.raises(TypeError, match="unknown option.*retires"):
        Options(retires=3)


def test_options_are_frozen() -> None:
    with pytest.raises(AttributeError, match=re.escape("retries")):
        Options().retries = 5
    assert "retries=5" in repr(Options(retries=5))
