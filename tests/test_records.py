"""``@record`` behaves as ``@dataclass(frozen=True)`` does, without generating __eq__/__hash__/__repr__."""

from __future__ import annotations

import copy
import dataclasses
import math
import pickle
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import pytest

from monagent import api, config
from monagent.records import config_record, record


def _twins() -> Tuple[Any, Any]:
    """The same class body made by @record and by @dataclass(frozen=True)."""

    def body() -> Dict[str, Any]:
        return {
            "__annotations__": {"a": "int", "b": "str", "secret": "str", "note": "str", "tags": "Tuple[str, ...]"},
            "b": "x",
            "secret": field(default="s3cret", repr=False),
            "note": field(default="", compare=False),
            "tags": (),
        }

    ours = record(type("Sample", (), body()))
    theirs = dataclass(frozen=True)(type("Sample", (), body()))
    return ours, theirs


@pytest.mark.parametrize(
    "left,right",
    [
        ((1, "x", "s", "n", ()), (1, "x", "s", "n", ())),
        ((1, "x", "s", "n", ()), (2, "x", "s", "n", ())),
        ((1, "x", "s", "n", ()), (1, "y", "s", "n", ())),
        ((1, "x", "s", "n", ()), (1, "x", "t", "n", ())),  # repr=False still compares
        ((1, "x", "s", "n", ()), (1, "x", "s", "other", ())),  # compare=False does not
        ((1, "x", "s", "n", ("a",)), (1, "x", "s", "n", ("b",))),
    ],
)
def test_equality_hash_and_repr_match_dataclass(left: Tuple[Any, ...], right: Tuple[Any, ...]) -> None:
    ours, theirs = _twins()
    o1, o2 = ours(*left), ours(*right)
    t1, t2 = theirs(*left), theirs(*right)
    assert (o1 == o2) == (t1 == t2)
    assert (o1 != o2) == (t1 != t2)
    assert hash(o1) == hash(o1) and ((hash(o1) == hash(o2)) if o1 == o2 else True)
    assert repr(o1) == repr(t1)
    assert "s3cret" not in repr(ours(1))


def test_repr_hides_fields_marked_repr_false_and_shows_the_rest() -> None:
    ours, _ = _twins()
    assert repr(ours(5, "y", "hunter2", "n")) == "Sample(a=5, b='y', note='n', tags=())"


def test_instances_of_different_classes_never_compare_equal() -> None:
    @record
    class One:
        x: int

    @record
    class Other:
        x: int

    assert One(1) != Other(1)
    assert not (One(1) == Other(1))
    assert One(1) != (1,)
    assert One(1) == One(1)


def test_a_nan_field_compares_as_a_dataclass_does_by_identity() -> None:
    @record
    class Reading:
        value: float

    nan = math.nan
    assert Reading(nan) == Reading(nan)  # the same object: tuples compare by identity first
    assert Reading(float("nan")) != Reading(float("nan"))


def test_still_a_frozen_dataclass() -> None:
    @record
    class Point:
        x: int
        y: int = 0
        labels: List[str] = field(default_factory=list)

    p = Point(1)
    assert dataclasses.is_dataclass(p)
    assert [f.name for f in dataclasses.fields(Point)] == ["x", "y", "labels"]
    assert dataclasses.replace(p, y=3) == Point(1, 3)
    assert dataclasses.asdict(p) == {"x": 1, "y": 0, "labels": []}
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(_Pickled(2, 5))) == _Pickled(2, 5)
    assert copy.deepcopy(p) == p
    with pytest.raises(TypeError):
        hash(p)  # a list field is unhashable, as with dataclass


def test_methods_the_body_defines_are_kept() -> None:
    @record
    class Custom:  # noqa: PLW1641 - the point: dataclass adds the hash
        x: int

        def __repr__(self) -> str:
            return "custom"

        def __eq__(self, other: object) -> bool:
            return True

    assert repr(Custom(1)) == "custom"
    assert Custom(1) == Custom(2)
    assert hash(Custom(1)) == hash(Custom(1))  # __eq__ in the body: hash still added, as dataclass does

    @record
    class Unhashable:
        x: int
        __hash__ = None  # type: ignore[assignment]

    with pytest.raises(TypeError):
        hash(Unhashable(1))


def test_field_hash_flag_decides_what_is_hashed() -> None:
    @record
    class Keyed:
        key: str
        cache: Optional[Dict[str, int]] = field(default=None, hash=False)

    assert hash(Keyed("a", {"x": 1})) == hash(Keyed("a", None))


def test_a_subclass_compares_over_all_fields() -> None:
    @record
    class Base:
        a: int

    @record
    class Derived(Base):
        b: int = 0

    assert Derived(1, 2) == Derived(1, 2)
    assert Derived(1, 2) != Derived(1, 3)
    assert Derived(1, 2) != Base(1)
    assert repr(Derived(1, 2)) == "test_a_subclass_compares_over_all_fields.<locals>.Derived(a=1, b=2)"


def test_recursive_repr_is_guarded() -> None:
    @record
    class Box:
        items: List[Any]

    box = Box([])
    box.items.append(box)
    assert repr(box) == "test_recursive_repr_is_guarded.<locals>.Box(items=[...])"


def test_the_public_and_config_types_share_the_methods_instead_of_generating_them() -> None:
    # The point of @record: no per-class generated code (import time of every command).
    shared = api.Result.__eq__.__code__
    for cls in (api.Metric, api.Threshold, api.MetricSpec, config.CheckConfig, config.AgentConfig):
        assert cls.__eq__.__code__ is shared, cls
        assert cls.__hash__.__code__ is api.Result.__hash__.__code__, cls
    assert api.Result("disk /") == api.Result("disk /")
    assert api.Result("disk /") != api.Result("disk /var")
    assert repr(api.Result("x")).startswith("Result(subject='x', metrics=()")


@record
class _Pickled:
    x: int
    y: int = 0


@config_record
class _Settings:
    name: str
    retries: int = 3
    tags: Tuple[str, ...] = ()
    token: str = field(default="", repr=False)


def test_a_config_record_is_frozen_after_init() -> None:
    s = _Settings("a", 5)
    assert (s.name, s.retries, s.tags) == ("a", 5, ())
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.name = "b"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.retries = 4  # type: ignore[misc]  # a field set from its default, too
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.extra = 1  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del s.name
    assert s == _Settings("a", 5) and hash(s) == hash(_Settings("a", 5))
    assert s != _Settings("a", 6)
    assert repr(_Settings("a", token="hunter2")) == "_Settings(name='a', retries=3, tags=())"


def test_a_config_record_works_with_dataclasses_and_pickle() -> None:
    s = _Settings("a")
    assert dataclasses.replace(s, retries=1) == _Settings("a", 1)
    assert dataclasses.asdict(s) == {"name": "a", "retries": 3, "tags": (), "token": ""}
    assert pickle.loads(pickle.dumps(s)) == s
    assert copy.deepcopy(s) == s and copy.copy(s) == s
    assert dataclasses.fields(_Settings)[0].name == "name"


def test_a_config_record_reports_itself_frozen_so_a_plugin_may_subclass_it() -> None:
    assert _Settings.__dataclass_params__.frozen  # type: ignore[attr-defined]

    @dataclass(frozen=True)
    class Mine(_Settings):
        extra: int = 0

    assert Mine("a", extra=2).extra == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        Mine("a").extra = 3  # type: ignore[misc]
    with pytest.raises(TypeError, match="non-frozen"):

        @dataclass
        class Loose(_Settings):
            extra: int = 0


def test_a_config_record_generates_only_its_init() -> None:
    @config_record
    class Other:
        x: int

    assert Other.__setattr__.__code__ is _Settings.__setattr__.__code__
    assert Other.__eq__.__code__ is _Settings.__eq__.__code__
    assert Other.__init__.__code__ is not _Settings.__init__.__code__  # the one dataclasses writes


def test_a_config_record_with_a_dataclass_base_is_a_plain_record() -> None:
    @config_record
    class Child(_Settings):
        extra: int = 0

    c = Child("a", extra=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.extra = 2  # type: ignore[misc]
    assert c == Child("a", extra=1) and c != _Settings("a")
