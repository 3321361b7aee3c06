"""The public API, pinned: a change here is a change for every user."""

from __future__ import annotations

import importlib
import pkgutil

import opero

PUBLIC = {
    "Adaptive",
    "AllFailedError",
    "Attempt",
    "AttemptDetails",
    "BreakerDetails",
    "CacheHitDetails",
    "CacheInfo",
    "CircuitOpenError",
    "DeadlineExceededError",
    "FallbackDetails",
    "GiveUpDetails",
    "Limit",
    "MapFunction",
    "MapStoppedError",
    "OperoBackendWarning",
    "OperoError",
    "OperoFunction",
    "OperomapError",
    "RejectedResultError",
    "RemoteError",
    "RetryBudget",
    "RetryDetails",
    "Service",
    "Stats",
    "UnpicklableError",
    "WaitDetails",
    "WorkerCrashedError",
    "deadline",
    "fallback",
    "opero",
    "operomap",
    "telemetry",
}


def test_types_users_receive_come_from_opero_itself() -> None:
    """stats(), cache_info(), hook payloads and error records are typed by public names."""
    from opero import CacheHitDetails, CacheInfo, RetryDetails, Stats

    seen: list[object] = []

    @opero.opero(retries=1, min_delay=0, on_retry=seen.append, on_cache_hit=seen.append)
    def f(x: int) -> int:
        if not seen:
            raise ValueError(x)
        return x

    assert f(1) == 1 and f(1) == 1
    assert isinstance(f.stats(), Stats)
    assert isinstance(f.cache_info(), CacheInfo)
    assert [type(p) for p in seen] == [RetryDetails, CacheHitDetails]


def test_all_is_pinned() -> None:
    assert set(opero.__all__) == PUBLIC
    assert len(opero.__all__) == len(PUBLIC)


def test_every_public_name_resolves() -> None:
    for name in opero.__all__:
        assert getattr(opero, name) is not None
    from opero import operomap  # the lazy export works with from-imports too

    assert callable(operomap)


def test_error_hierarchy() -> None:
    for name in ("AllFailedError", "OperomapError", "RemoteError", "WorkerCrashedError"):
        assert issubclass(getattr(opero, name), opero.OperoError)
    assert issubclass(opero.AllFailedError, ExceptionGroup)
    assert issubclass(opero.OperomapError, ExceptionGroup)
    assert issubclass(opero.OperoBackendWarning, UserWarning)


def test_testing_helpers() -> None:
    from opero import testing

    assert set(testing.__all__) == {"is_testing", "set_testing"}


def test_every_module_declares_all() -> None:
    for info in pkgutil.walk_packages(opero.__path__, "opero."):
        if info.name == "opero.__main__":
            continue
        module = importlib.import_module(info.name)
        assert isinstance(getattr(module, "__all__", None), list), info.name
        for name in module.__all__:
            assert hasattr(module, name), f"{info.name}.__all__ names a missing {name}"


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        opero.does_not_exist
    except AttributeError as exc:
        assert "does_not_exist" in str(exc)
    else:
        raise AssertionError("no AttributeError")
