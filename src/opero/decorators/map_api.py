"""The call and ``.iter()`` API of a map: results collected as a list or streamed, sync or
async, with failures gathered into :class:`~opero.OperomapError`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from opero.core.call import Args, Kwargs
from opero.decorators.handoff import Handoff
from opero.decorators.progress import Progress
from opero.errors import OperomapError

if TYPE_CHECKING:
    from opero.maps.map_driver import MapSpec, Run

__all__ = ["ClosingIterator", "MapRunner", "run_sync"]

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end from sync code, even inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    values: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            values.append(asyncio.run(coro))
        except BaseException as exc:
            errors.append(exc)

    helper = threading.Thread(target=target, name="opero-map", daemon=True)
    helper.start()
    helper.join()
    if errors:
        raise errors[0]
    return values[0]


class MapRunner:
    """Collects a map's results as a list, or streams them."""

    def __init__(self, spec: MapSpec, progress: bool, return_exceptions: bool) -> None:
        self.spec = spec
        self.progress = progress
        self.return_exceptions = return_exceptions

    async def collect(
        self,
        items: Iterable[Any],
        args: Args,
        kwargs: Kwargs,
        deadline: float | None = None,
        parent: object = None,
    ) -> list[Any]:
        """Every result (``deadline``: the one enclosing the map call, read by the caller)."""
        from opero.maps.map_driver import MapDriver

        results: list[Any] = []
        failures: list[Exception] = []
        bar = Progress(self.progress, items, self.spec.name, self.spec.judge.counters)
        stream = MapDriver(self.spec, items, args, kwargs, deadline, bar.tally, parent).stream()
        try:
            async for chunk in stream:
                for first, values, failed in chunk:
                    if failed is not None:
                        for pos in failed:
                            values[pos] = _noted(values[pos], first + pos)
                            failures.append(values[pos])
                    results.extend(values)
        finally:
            bar.close()
            await stream.aclose()
        if failures and not self.return_exceptions:
            raise OperomapError(
                f"{self.spec.name}: {len(failures)} of {len(results)} items failed",
                failures,
                results,
            )
        return results

    async def iterate(
        self,
        items: Iterable[Any],
        args: Args,
        kwargs: Kwargs,
        deadline: float | None = None,
        parent: object = None,
    ) -> AsyncIterator[Any]:
        from opero.maps.map_driver import MapDriver

        failures: list[Exception] = []
        count = 0
        bar = Progress(self.progress, items, self.spec.name, self.spec.judge.counters)
        stream = MapDriver(self.spec, items, args, kwargs, deadline, bar.tally, parent).stream()
        try:
            async for chunk in stream:
                for value, failure in _unroll(chunk, failures):
                    count += 1
                    if failure and not self.return_exceptions:
                        continue
                    yield value
        finally:
            bar.close()
            await stream.aclose()
        if failures and not self.return_exceptions:
            raise OperomapError(
                f"{self.spec.name}: {len(failures)} of {count} items failed", failures, []
            )

    def iterate_sync(
        self,
        items: Iterable[Any],
        args: Args,
        kwargs: Kwargs,
        deadline: float | None = None,
        parent: object = None,
    ) -> Iterator[Any]:
        """Drive :meth:`iterate` on a helper thread's event loop; hand results over in chunks."""
        from opero.maps.map_driver import MapDriver

        bar = Progress(self.progress, items, self.spec.name, self.spec.judge.counters)
        handoff = Handoff()

        async def pump() -> None:
            handoff.started()
            stream = MapDriver(self.spec, items, args, kwargs, deadline, bar.tally, parent).stream()
            try:
                async for chunk in stream:
                    await handoff.put(("chunk", chunk))
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the consumer stopped early
                await handoff.put(("error", exc))  # raised by the function itself
                return
            except BaseException as exc:
                await handoff.put(("error", exc))
                return
            finally:  # the driver cleans up here, not in a finalizer task that may be cancelled
                await stream.aclose()
            await handoff.put(("end", None))

        def drive() -> None:
            try:
                asyncio.run(pump())
            except asyncio.CancelledError:  # the consumer stopped early
                pass

        handoff.start(drive)
        return ClosingIterator(self._consume(handoff, bar))

    def _consume(self, handoff: Handoff, bar: Progress) -> Generator[Any, None, None]:
        failures: list[Exception] = []
        count = 0
        try:
            for chunk in handoff.chunks():
                for value, failure in _unroll(chunk, failures):
                    count += 1
                    if failure and not self.return_exceptions:
                        continue
                    yield value
        finally:
            bar.close()
            handoff.stop()
        if failures and not self.return_exceptions:
            raise OperomapError(
                f"{self.spec.name}: {len(failures)} of {count} items failed", failures, []
            )


class ClosingIterator(Iterator[Any]):
    """The sync ``.iter()``: closes the map as soon as it is dropped, even while something
    (a debugger, a tracer, a traceback) still holds the suspended generator behind it."""

    __slots__ = ("_gen",)

    def __init__(self, gen: Generator[Any, None, None]) -> None:
        self._gen = gen

    def __iter__(self) -> ClosingIterator:
        return self

    def __next__(self) -> Any:
        return next(self._gen)

    def close(self) -> None:
        """Stop the map now: its workers, threads and pipes are gone when this returns."""
        self._gen.close()

    def __enter__(self) -> ClosingIterator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self._gen.close()
        except Exception:  # pragma: no cover - a finalizer never raises
            pass


def _unroll(chunk: list[Run], failures: list[Exception]) -> Iterator[tuple[Any, bool]]:
    """Each value of each run with whether it is a failure (noted and collected)."""
    for first, values, failed in chunk:
        if failed is None:
            for value in values:
                yield value, False
            continue
        for pos, value in enumerate(values):
            if pos in failed:
                noted = _noted(value, first + pos)
                failures.append(noted)
                yield noted, True
            else:
                yield value, False


_ITEM_NOTE = "operomap item "


def _noted(exc: Exception, index: int) -> Exception:
    """``exc`` with a note naming item ``index``; an exception object that another item
    already holds (equal keys shared one computation, or the function raised one object
    twice) is copied first, so every item gets its own with only its own index."""
    notes = getattr(exc, "__notes__", None)
    if notes and any(n.startswith(_ITEM_NOTE) for n in notes):
        exc = _copy(exc)
        exc.__notes__ = [n for n in getattr(exc, "__notes__", []) if not n.startswith(_ITEM_NOTE)]
    exc.add_note(f"{_ITEM_NOTE}{index}")
    return exc


def _copy(exc: Exception) -> Exception:
    """A copy of ``exc``, rebuilt as for a process boundary (pickle), else a shallow copy."""
    import copy
    import pickle

    try:
        twin: Exception = pickle.loads(pickle.dumps(exc))
    except Exception:
        twin = copy.copy(exc)
    twin.__cause__, twin.__context__ = exc.__cause__, exc.__context__
    twin.__traceback__ = exc.__traceback__
    return twin
