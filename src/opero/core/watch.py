"""Who is told about the attempts of a decorated function: the hooks ``on_attempt``,
``on_wait`` and ``on_give_up``, and observers such as telemetry.

The judge calls :class:`Watch` once per event (an attempt starts, an attempt ends with its
outcome, a wait is over, a call gives up), on every path, in the caller's process; a
function without hooks or observers has no watch at all and pays nothing. Nothing a hook or
an observer raises reaches the call: it is logged and ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from loguru import logger

if TYPE_CHECKING:  # (the hook payloads load with the first watched function)
    from opero.core.hooks import AttemptDetails, GiveUpDetails, WaitDetails


__all__ = ["Observer", "Watch"]

#: what an attempt ended as: ``success``, ``failure``, ``rejected`` or ``timeout``
Outcome = str


class Observer(Protocol):
    """An observer of attempts (telemetry): told what the hooks are told, and the outcome."""

    def attempt(self, details: AttemptDetails) -> Any:
        """An attempt starts; the value returned is given back to :meth:`ended`."""

    def ended(self, token: Any, outcome: Outcome, error: BaseException | None) -> None:
        """The attempt that :meth:`attempt` answered with ``token`` ended."""

    def waited(self, details: WaitDetails) -> None:
        """A wait before an attempt is over."""

    def gave_up(self, details: GiveUpDetails) -> None:
        """A call ends with an exception."""


class _Hooks:
    """The user's ``on_attempt`` hook as an observer: a context manager it returns is
    entered around the attempt and told its outcome through ``__exit__``."""

    __slots__ = ("hook",)

    def __init__(self, hook: Callable[[Any], object]) -> None:
        self.hook = hook

    def attempt(self, details: AttemptDetails) -> Any:
        from opero.core.hooks import call_hook

        manager = call_hook(self.hook, details)
        if manager is None or not hasattr(manager, "__exit__"):
            return None
        try:
            manager.__enter__()  # type: ignore[attr-defined]
        except Exception as exc:
            logger.opt(exception=exc).warning("opero on_attempt context raised; ignored")
            return None
        return manager

    def ended(self, token: Any, outcome: Outcome, error: BaseException | None) -> None:
        if token is None:
            return
        try:
            if error is None:
                token.__exit__(None, None, None)
            else:  # what it returns is ignored: it never suppresses the attempt's error
                token.__exit__(type(error), error, error.__traceback__)
        except Exception as exc:
            logger.opt(exception=exc).warning("opero on_attempt context raised; ignored")

    def waited(self, details: WaitDetails) -> None:
        pass

    def gave_up(self, details: GiveUpDetails) -> None:
        pass


class Watch:
    """The hooks and observers of one decorated function."""

    __slots__ = ("name", "observers", "on_give_up", "on_wait")

    def __init__(
        self,
        name: str,
        on_attempt: Callable[[Any], object] | None,
        on_wait: Callable[[Any], object] | None,
        on_give_up: Callable[[Any], object] | None,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.name = name
        self.on_wait = on_wait
        self.on_give_up = on_give_up
        hooks: list[Observer] = [_Hooks(on_attempt)] if on_attempt is not None else []
        self.observers = (*observers, *hooks)

    @staticmethod
    def of(name: str, options: Any, observers: Sequence[Observer] = ()) -> Watch | None:
        """The watch ``options`` ask for, or None when nothing watches; ``telemetry=True``
        adds the OpenTelemetry observer, told first (its attempt span is current while
        the ``on_attempt`` hook runs)."""
        if options.get("telemetry"):
            from opero.core.telemetry import observer

            observers = (observer(), *observers)
        hooks = (options["on_attempt"], options["on_wait"], options["on_give_up"])
        if all(h is None for h in hooks) and not observers:
            return None
        return Watch(name, *hooks, observers)

    def started(self, round_: int, value: Any, number: int) -> list[Any]:
        from opero.core.hooks import AttemptDetails

        details = AttemptDetails(self.name, round_, value, number)
        return [self._safe(o.attempt, details) for o in self.observers]

    def ended(self, tokens: list[Any], outcome: Outcome, error: BaseException | None) -> None:
        for observer, token in zip(reversed(self.observers), reversed(tokens), strict=True):
            self._safe(observer.ended, token, outcome, error)

    def waited(self, reason: str, seconds: float) -> None:
        from opero.core.hooks import WaitDetails, fire

        details = WaitDetails(self.name, reason, seconds)
        fire(self.on_wait, details)
        for observer in self.observers:
            self._safe(observer.waited, details)

    def gave_up(self, error: BaseException, attempts: int) -> None:
        from opero.core.hooks import GiveUpDetails, fire

        details = GiveUpDetails(self.name, error, attempts)
        fire(self.on_give_up, details)
        for observer in self.observers:
            self._safe(observer.gave_up, details)

    @staticmethod
    def _safe(method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except Exception as exc:
            logger.opt(exception=exc).warning("opero observer {!r} raised; ignored", method)
            return None
