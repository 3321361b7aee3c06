"""Every invalid option fails at decoration time, naming option, value and what is accepted."""

from __future__ import annotations

import inspect

import pytest

from opero import opero
from opero.options import DEFAULTS, MAP_OPTIONS, OPTIONS, resolve


def f(x: int, model: str = "a") -> int:
    return x


BAD = [
    ({"retries": -1}, ValueError, "retries", "-1", ">= 0"),
    ({"retries": 1.5}, TypeError, "retries", "1.5", "int"),
    ({"retries": True}, TypeError, "retries", "True", "int"),
    ({"rate_limit": 0}, ValueError, "rate_limit", "0", "> 0"),
    ({"rate_limit": -3}, ValueError, "rate_limit", "-3", "> 0"),
    ({"rate_limit": float("inf")}, ValueError, "rate_limit", "inf", "finite"),
    ({"rate_limit": "10"}, ValueError, "rate_limit", "'10'", "N/period"),
    ({"rate_limit": "10/fortnight"}, ValueError, "rate_limit", "'10/fortnight'", "minute"),
    ({"rate_limit": "0/minute"}, ValueError, "rate_limit", "'0/minute'", "> 0"),
    ({"rate_limit": []}, ValueError, "rate_limit", "empty", "at least one"),
    ({"rate_limit": [[5]]}, TypeError, "rate_limit", "[5]", "cannot hold a list"),
    ({"rate_limit": b"5/s"}, TypeError, "rate_limit", "b'5/s'", "number"),
    ({"concurrency": 0}, ValueError, "concurrency", "0", ">= 1"),
    ({"concurrency": True}, ValueError, "concurrency", "True", ">= 1"),
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
        resolve({"retires": 3})
    with pytest.raises(TypeError, match="unknown option.*retires"):
        opero(retires=3)  # type: ignore[call-overload]


def test_options_are_frozen() -> None:
    options = resolve({"retries": 5})
    with pytest.raises(TypeError, match="frozen"):
        options["retries"] = 6
    with pytest.raises(TypeError, match="frozen"):
        options.update(retries=6)
    assert options["retries"] == 5
    assert "retries=5" in repr(options)
    assert "cache=" not in repr(options)  # defaults are not repeated


def test_signatures_come_from_the_one_table() -> None:
    from opero import operomap

    for decorator, table in ((opero, OPTIONS), (operomap, {**OPTIONS, **MAP_OPTIONS})):
        params = inspect.signature(decorator).parameters
        assert list(params) == ["func", *table]
        assert params["func"].kind is inspect.Parameter.POSITIONAL_ONLY
        for name, opt in table.items():
            assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
            assert params[name].default == opt.default, name
            assert params[name].annotation is not inspect.Parameter.empty, name
    text = str(inspect.signature(opero))
    assert "retries: int = 3" in text
    assert "cache_ttl: float | None = 3600" in text
    assert "mode: str = 'thread'" in str(inspect.signature(operomap))


def test_help_lists_every_option() -> None:
    import pydoc

    from opero import operomap

    for decorator, names in ((opero, OPTIONS), (operomap, {**OPTIONS, **MAP_OPTIONS})):
        text = pydoc.render_doc(decorator, renderer=pydoc.plaintext)
        for name in names:
            assert f"{name}:" in text or f"{name}=" in text, name


def test_map_options_checked_by_the_table() -> None:
    from opero import operomap

    with pytest.raises(ValueError, match="mode must be one of"):
        operomap(mode="fiber")
    with pytest.raises(ValueError, match="workers must be an int >= 1"):
        operomap(workers=0)
    with pytest.raises(TypeError, match="ordered must be True or False"):
        operomap(ordered="yes")
    with pytest.raises(ValueError, match="go with mode='dask'"):
        operomap(address="tcp://x:1")
    assert resolve({"mode": "pmap"}, map_options=True)["mode"] == "process"


NO_EFFECT = [
    ({"cache_dir": "/tmp/x"}, "cache_dir", "cache_backend='memory'"),
    ({"cache_dir": "/tmp/x", "cache_backend": "redis"}, "cache_dir", "cache_backend='redis'"),
    ({"cache_url": "redis://h/0"}, "cache_url", "rate_limit_backend='memory'"),
    ({"cache_url": "redis://h/0", "cache_backend": "disk"}, "cache_url", "cache_backend='disk'"),
    ({"cache_serializer": "json"}, "cache_serializer", "cache_backend='memory'"),
    ({"cache_serializer": "pickle"}, "cache_serializer", "cache_backend='memory'"),
    ({"on_cache_hit": print, "cache": False}, "on_cache_hit", "cache=False"),
]


@pytest.mark.parametrize(("options", "first", "second"), NO_EFFECT)
def test_options_without_effect_fail_at_decoration(options, first, second) -> None:
    """An explicitly given option that cannot have an effect names both options."""
    from opero import operomap

    for decorator in (opero, operomap):
        with pytest.raises(ValueError) as info:
            decorator(**options)
        assert first in str(info.value)
        assert second in str(info.value)


def test_options_with_effect_accepted(tmp_path) -> None:
    opero(cache_backend="disk", cache_dir=tmp_path, cache_serializer="json")(f)
    opero(cache_backend="redis", cache_url="redis://127.0.0.1:1/0", cache_serializer="json")(f)
    opero(rate_limit=1, rate_limit_backend="redis", cache_url="redis://127.0.0.1:1/0")(f)
    opero(cache=False, cache_backend="disk")(f)  # only explicit *no-effect* pairs are refused
    opero(cache_dir=None, cache_backend="memory")  # None is given, and has no effect either
    opero(on_cache_hit=None, cache=False)(f)


def test_rate_below_one_per_day_refused() -> None:
    with pytest.raises(ValueError, match="one call per day"):
        opero(rate_limit=1 / 100_000)
    opero(rate_limit=1 / 86_400)(f)
