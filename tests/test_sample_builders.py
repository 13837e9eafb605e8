"""The codecs' per-packet builders (``new_*`` in stagectl.core.sample, the FreeD packet's and the OTrk
transport's) build exactly what the classes' own keyword constructors build.

A builder writes the fields with plain slot stores into a twin class and then switches the instance's class, so
nothing but these checks ties its parameters to the dataclass: each builder must take the class's fields by the
same names, in the same order, with the same defaults, and give an instance of the class itself that is equal,
hashes, prints, pickles, copies with ``dataclasses.replace`` and stays frozen like one from the class.
"""

from __future__ import annotations

import dataclasses
import inspect
import pickle
import typing

import pytest

import stagectl.core.sample as sample_module
from stagectl.core.sample import MotionLimits, TrackingSample, new_tracking_sample, slots_twin
from stagectl.tracking.codecs import freed
from stagectl.tracking.codecs.opentrackio import transport



def _builders() -> list[tuple[object, type]]:
    out = []
    for name in sample_module.__all__:
        if name.startswith("new_"):
            fn = getattr(sample_module, name)
            out.append((fn, typing.get_type_hints(fn)["return"]))
    out += [(transport._new_header, transport.OTrkHeader), (transport._new_datagram, transport.OTrkDatagram),
            (transport._new_complete, transport.CompletePayload)]
    return out


def test_every_per_packet_class_has_one_builder() -> None:
    classes = {getattr(sample_module, n) for n in sample_module.__all__}
    dataclass_types = {c for c in classes if isinstance(c, type) and dataclasses.is_dataclass(c)}
    built = [cls for _, cls in _builders()]
    assert len(built) == len(set(built))
    assert dataclass_types - set(built) == {MotionLimits}  # checks its values: built by its own constructor


def _alike(a, b, cls, values: dict) -> None:
    """``a`` (a builder's) is what ``b`` (the class's) is, in every way a caller can see."""
    fields = dataclasses.fields(cls)
    assert type(a) is cls and a == b and hash(a) == hash(b) and repr(a) == repr(b)
    assert [getattr(a, f.name) for f in fields] == list(values.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(a, fields[0].name, "other")
    assert not hasattr(a, "__dict__")
    assert pickle.loads(pickle.dumps(a)) == a
    assert dataclasses.replace(a, **{fields[0].name: "w"}) == cls(**{**values, fields[0].name: "w"})


@pytest.mark.parametrize(("make", "cls"), _builders(), ids=lambda x: getattr(x, "__name__", ""))
def test_a_builder_builds_what_the_keyword_constructor_builds(make, cls) -> None:
    fields = dataclasses.fields(cls)
    params = list(inspect.signature(make).parameters.values())
    assert [p.name for p in params] == [f.name for f in fields]
    for p, f in zip(params, fields):
        if f.default_factory is not dataclasses.MISSING:  # TrackingSample.raw: None -> a fresh dict
            assert p.default is None
        else:
            assert p.default == (inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default), f.name
    values = {f.name: f"v{i}" for i, f in enumerate(fields)}
    _alike(make(**values), cls(**values), cls, values)
    required = {f.name: values[f.name] for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    assert make(**required) == cls(**required)  # the defaults agree


def test_the_freed_packet_builder_takes_the_fields_in_message_order() -> None:
    values = {f.name: f"v{i}" for i, f in enumerate(dataclasses.fields(freed.FreeDPacket))}
    _alike(freed._new_packet(tuple(values.values())), freed.FreeDPacket(**values), freed.FreeDPacket, values)


def test_the_sample_builder_gives_each_sample_its_own_raw_dict() -> None:
    x, y = new_tracking_sample(protocol="FreeD"), new_tracking_sample(protocol="FreeD")
    assert x == TrackingSample("FreeD") and x.raw == {} and x.raw is not y.raw
    raw = {"spare": 3}
    assert new_tracking_sample(protocol="FreeD", raw=raw).raw is raw


def test_slots_twin_refuses_classes_the_trick_does_not_suit() -> None:
    @dataclasses.dataclass(slots=True)
    class Mutable:
        a: int = 0

    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int = 0

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int = 0

        def __post_init__(self) -> None:
            pass

    for cls in (Mutable, NoSlots, Checked, MotionLimits, dict):
        with pytest.raises(TypeError):
            slots_twin(cls)
