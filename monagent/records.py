"""``@record``: a frozen dataclass whose ``__eq__``, ``__hash__`` and ``__repr__`` are shared functions.

``dataclasses.dataclass(frozen=True)`` writes six methods per class as source text and ``exec``s each
one: about 0.14 ms apiece on Python 3.11, so 0.8 ms a class and some 30 ms of every ``monagent``
command's start-up for the classes it imports. ``@record`` lets ``dataclasses`` generate only what
needs a per-class signature (``__init__``) or what it forbids replacing (the frozen ``__setattr__``
and ``__delattr__``), and gives the class ``__eq__``, ``__hash__`` and ``__repr__`` built from
``operator.attrgetter`` over its fields: half the cost at import, the same cost per call.

The result is a frozen dataclass in every respect the rest of the code and plugins rely on:
``dataclasses.fields``, ``replace``, ``asdict``, ``is_dataclass``, ``FrozenInstanceError`` on
assignment, pickling, and the same equality, hashing and ``repr`` as ``@dataclass(frozen=True)``:
fields with ``compare=False``, ``hash=`` or ``repr=False`` are honoured, instances of different
classes are never equal, and a method the class body defines itself is kept.
"""

from __future__ import annotations

import dataclasses
import operator
import reprlib
from typing import TYPE_CHECKING, Any, Callable, Sequence, Tuple, Type, TypeVar, cast

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**_kwargs: Any) -> Callable[[Any], Any]:
        return lambda function: function


T = TypeVar("T")


def _values(names: Sequence[str]) -> Callable[[Any], Tuple[Any, ...]]:
    """A function giving the tuple of ``names``' values of an object (attrgetter, so in C)."""
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        one = operator.attrgetter(names[0])
        return lambda obj: (one(obj),)
    return operator.attrgetter(*names)


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def record(cls: Type[T]) -> Type[T]:
    """``@dataclass(frozen=True)``, with the shared comparison, hash and repr described above."""
    return cast("Type[T]", _finish(dataclasses.dataclass(frozen=True, eq=False, repr=False)(cls)))


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def config_record(cls: Type[T]) -> Type[T]:
    """``@record`` for types built a handful of times per process: the configuration's, a loaded
    plugin's description. ``dataclasses`` writes only ``__init__``; a shared ``__setattr__`` lets
    ``__init__`` set each field once and refuses every other assignment (``FrozenInstanceError``),
    as the frozen one does, and ``__delattr__`` refuses all. Defining the class costs a third of
    ``@record``'s; building an instance costs a Python call per field (~0.25 us), so never for
    values made per sample or per process (those are ``@record``).

    The class reports itself frozen (``__dataclass_params__.frozen``), so a plugin's
    ``@dataclass(frozen=True)`` may subclass it; a class with a dataclass base is made by ``@record``.
    """
    if any(dataclasses.is_dataclass(base) for base in cls.__mro__[1:]):
        return record(cls)
    if "__setattr__" in cls.__dict__ or "__delattr__" in cls.__dict__:
        raise TypeError(f"cannot overwrite __setattr__ or __delattr__ in frozen class {cls.__name__}")
    made: Any = dataclasses.dataclass(eq=False, repr=False)(cls)
    params = made.__dataclass_params__
    params.frozen = params.eq = params.repr = True  # what the class does, for dataclasses and readers
    names = frozenset(f.name for f in dataclasses.fields(made))
    assign = object.__setattr__

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if name in names and name not in self.__dict__:
            assign(self, name, value)  # __init__ setting a field the first time
        else:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self: Any, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    _attach(made, __setattr__)
    _attach(made, __delattr__)
    return cast("Type[T]", _finish(made))


def _finish(made: Any) -> Any:
    """Give ``made`` the shared ``__eq__``, ``__hash__`` and ``__repr__`` (unless its body has them)."""
    fields = dataclasses.fields(made)
    own = set(made.__dict__)  # the body's own methods, before any is attached
    # As dataclasses decides: a __hash__ of the body's own is kept, unless it is the None that
    # defining __eq__ in the body implies.
    explicit_hash = "__hash__" in own and (made.__dict__["__hash__"] is not None or "__eq__" not in own)
    if "__eq__" not in own:
        compared = _values([f.name for f in fields if f.compare])

        def __eq__(self: Any, other: Any) -> Any:
            if other.__class__ is self.__class__:
                return compared(self) == compared(other)
            return NotImplemented

        _attach(made, __eq__)
    if not explicit_hash:
        hashed = _values([f.name for f in fields if (f.compare if f.hash is None else f.hash)])

        def __hash__(self: Any) -> int:
            return hash(hashed(self))

        _attach(made, __hash__)
    if "__repr__" not in own:
        names = [f.name for f in fields if f.repr]
        shown = _values(names)

        @reprlib.recursive_repr()
        def __repr__(self: Any) -> str:
            pairs = ", ".join(f"{name}={value!r}" for name, value in zip(names, shown(self)))
            return f"{self.__class__.__qualname__}({pairs})"

        _attach(made, __repr__)
    return made


def _attach(cls: type, function: Callable[..., Any]) -> None:
    function.__qualname__ = f"{cls.__qualname__}.{function.__name__}"
    function.__module__ = cls.__module__
    setattr(cls, function.__name__, function)
