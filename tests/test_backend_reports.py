"""How backend trouble is reported: short (a value shows at most a few hundred characters),
once a minute per backend *location* (every refused directory is named), and a malformed
``cache_url`` refused when the function is decorated (naming ``cache_url``, never the
password)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from loguru import logger

from opero import OperoBackendWarning, opero

LIMIT = 1_000  # "a few hundred characters" of the value, plus the message around it


class Undecodable:
    """Pickles fine; unpickling it fails with an error that carries 5 MB of bytes."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (json.loads, (b"\xff" * 5_000_000,))


CALLS: list[int] = []


def undecodable(x: int) -> object:
    CALLS.append(x)
    return Undecodable()


def test_a_huge_undecodable_value_is_reported_in_a_few_hundred_characters(
    tmp_path: Path,
) -> None:
    f = opero(cache_backend="disk", cache_dir=tmp_path)(undecodable)
    CALLS.clear()
    f(1)  # stored (5 MB)
    records: list[str] = []
    logger.enable("opero")
    sink = logger.add(lambda m: records.append(str(m)), level="WARNING")
    try:
        with pytest.warns(OperoBackendWarning, match="disk backend failed") as caught:
            assert isinstance(f(1), Undecodable)  # a miss: computed again
    finally:
        logger.remove(sink)
        logger.disable("opero")
    assert CALLS == [1, 1]
    assert records, "logged at WARNING"
    assert "UnicodeDecodeError" in str(caught[0].message)
    for text in [str(w.message) for w in caught] + records:
        assert len(text) < LIMIT, f"{len(text):,} characters"


def test_every_refused_directory_is_reported(tmp_path: Path) -> None:
    refused = []
    for n in range(7):
        shared = tmp_path / f"shared-{n}"
        shared.mkdir()
        shared.chmod(0o777)
        refused.append(shared)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for shared in refused:
            assert opero(cache_backend="disk", cache_dir=shared)(lambda x: x + 1)(1) == 2
    messages = [str(w.message) for w in caught if issubclass(w.category, OperoBackendWarning)]
    assert len(messages) == 7
    for shared, message in zip(refused, messages, strict=True):
        assert str(shared) in message and "writable by group or others" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second refusal of one directory: not again
        assert opero(cache_backend="disk", cache_dir=refused[0])(lambda x: x + 2)(1) == 3


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2@localhost:63x9/0",  # port not a number
        "redis://user:hunter2@localhost:6379/zero",  # db not a number
        "redis://:hunter2@localhost:6379/0?db=x",  # db in the query, not a number
        "http://:hunter2@localhost:6379/0",  # not a Redis scheme
        "localhost:6379",  # no scheme at all
        "redis://:hunter2@localhost:6379/0?socket_timeout=soon",  # a query option redis-py rejects
        "redis://:hunter2@[::1:6379/0",  # a broken address
        "unix://:hunter2@/tmp/redis.sock?db=one",
    ],
)
def test_a_malformed_cache_url_fails_at_decoration(url: str) -> None:
    with pytest.raises(ValueError, match="cache_url") as info:
        opero(cache_backend="redis", cache_url=url)
    shown = f"{info.value} {info.value!r} {info.value.__cause__!r} {info.value.__context__!r}"
    assert "hunter2" not in shown


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:6379/0",
        "redis://localhost",
        "rediss://user:hunter2@cache.example:6380/3",
        "redis://:hunter2@localhost:6379?db=2",
        "unix:///tmp/redis.sock?db=1",
        "redis://localhost:6379/0?socket_timeout=0.5&health_check_interval=10",
    ],
)
def test_a_wellformed_cache_url_is_accepted(url: str) -> None:
    opero(cache_backend="redis", cache_url=url)(lambda: 1)  # nothing connects yet
    opero(rate_limit_backend="redis", rate_limit=5, cache_url=url)(lambda: 1)
