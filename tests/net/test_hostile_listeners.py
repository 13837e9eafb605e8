"""Hostile input on the console listeners (OSC over real UDP, ZeroMQ over real CURVE sockets) and the OpenTrackIO
decoder: deep JSON, shared/self-referencing CBOR, too many frames. Each is answered with a clear error (or
counted), in bounded time and memory, and the listener goes on serving the next good command.

The fixtures are those of the transports' own tests (a real ControlHub, a frame-driver thread, kernel-chosen
loopback ports, everything closed at teardown).
"""

from __future__ import annotations

import json
import tracemalloc

import cbor2
import pytest
import zmq

from stagectl.console.jsonbounds import MAX_DEPTH, JsonTooDeep, depth, loads
from stagectl.console.osc_transport import OscArgError, parse_args
from stagectl.console.zmq import MAX_REQUEST_FRAMES
from stagectl.tracking.codecs import opentrackio as otrk
from stagectl.tracking.errors import DecodeError, FieldError

from .test_console_osc import Client, driver, hub, make_console, stage  # noqa: F401 - fixtures
from .test_console_zmq import Env, _send_raw, env  # noqa: F401 - fixtures
from .conftest import wait_for

DEEP = "[" * 20_000 + "]" * 20_000  # a RecursionError for json.loads


# ------------------------------------------------------------------------------------------ the bounded parser


def test_bounded_json_refuses_deep_text_before_parsing_it() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(JsonTooDeep, match=f"nested deeper than {MAX_DEPTH} levels"):
            loads("[" * 500_000)  # 500 KB of brackets: refused by the scan, nothing built
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024
    assert isinstance(JsonTooDeep("x"), ValueError)  # callers catching malformed JSON catch this too
    at_limit = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert depth(at_limit) == MAX_DEPTH and loads(at_limit) is not None
    with pytest.raises(JsonTooDeep):
        loads("[" + at_limit + "]")
    # brackets inside strings do not count; escaped quotes do not end a string
    text = json.dumps({"s": "[" * 100 + '\\"' + "{" * 100, "n": [[1]]})
    assert depth(text) == 3 and loads(text)["n"] == [[1]]


# ------------------------------------------------------------------------------------------------------- OSC


def test_osc_deep_json_arguments_are_one_line_errors() -> None:
    with pytest.raises(OscArgError, match=f"keyed form: JSON nested deeper than {MAX_DEPTH} levels"):
        parse_args("card.add", ['{"wall": ' + DEEP + "}"])
    with pytest.raises(OscArgError, match=f"nested deeper than {MAX_DEPTH} levels"):
        parse_args("camera.set", ["cam", "smoothing", DEEP])


def test_osc_console_answers_deep_json_with_an_error_ack_and_goes_on(make_console, driver) -> None:  # noqa: F811
    console = make_console()
    c = Client(console)
    c.send("/stagectl/card/add", '{"wall": ' + "[" * 8000 + "]" * 8000 + "}")
    ack = c.ack()
    assert ack is not None, "no answer: the datagram's handler died"
    command, ok, frame, message = ack
    assert (command, ok, frame) == ("card.add", 0, -1)
    assert f"JSON nested deeper than {MAX_DEPTH} levels" in message and "\n" not in message
    c.send("/stagectl/camera/set", "cam", "smoothing", "[" * 8000)
    ack = c.ack()
    assert ack is not None and ack[1] == 0 and "nested deeper" in ack[3]
    assert console.stats()["malformed"] == 2 and console.stats()["errors"] == 0
    c.send("/stagectl/status")
    ack = c.ack()
    assert ack is not None and ack[:2] == ("status", 1)


# ------------------------------------------------------------------------------------------------------ ZeroMQ


def test_zmq_console_refuses_deep_requests_and_long_envelopes_and_goes_on(env: Env) -> None:  # noqa: F811
    d = env.raw(zmq.DEALER, env.keys())
    # deep, but parseable by json.loads: before the fix it reached the hub
    deep_args = json.dumps({"command": "card.add", "args": {"wall": json.loads("[" * 200 + "]" * 200)}})
    reply = _send_raw(d, deep_args.encode())
    assert reply is not None and reply["ok"] is False
    assert reply["error"] == (f'request nested deeper than {MAX_DEPTH} levels: expected {{"command": name, '
                              '"args": {...}}')
    reply = _send_raw(d, ("[" * 300_000).encode())  # deeper than json.loads can go
    assert reply is not None and "nested deeper" in reply["error"]
    # a DEALER envelope of 40 tag frames: refused without copying it back (no delimiter in the first frames)
    d.send_multipart([f"tag{i}".encode() for i in range(40)] + [b"", b'{"command": "status"}'])
    # a request with too many frames after a short envelope: answered
    reply = _send_raw(d, [b'{"command": "status"}'] * (MAX_REQUEST_FRAMES + 2))
    assert reply is not None and reply["error"] == (f"request has {MAX_REQUEST_FRAMES + 4} frames: at most "
                                                    f"{MAX_REQUEST_FRAMES}")
    assert wait_for(lambda: env.console.stats()["bad_requests"] == 4, 3.0), env.console.stats()
    reply = _send_raw(d, b'{"command": "status"}')
    assert reply is not None and reply["ok"] is True


# ------------------------------------------------------------------------------------------------- OpenTrackIO


def _shared_bomb(levels: int) -> bytes:
    x: list = [1]
    for _ in range(levels):
        x = [x, x]  # with value sharing: one object referenced twice per level, 2**levels leaves when expanded
    return cbor2.dumps({"custom": x}, value_sharing=True)


def test_opentrackio_refuses_self_referencing_and_shared_cbor_values() -> None:
    cyclic = bytes.fromhex("a166637573746f6dd81c81d81d00")  # {"custom": shareable([sharedref(0)])}
    with pytest.raises(FieldError, match="custom: a value that is shared or contains itself"):
        otrk.decode_sample(cyclic, otrk.ENCODING_CBOR)
    bomb = _shared_bomb(30)  # 2**30 leaves for anything that walks or re-encodes it
    assert len(bomb) < 300
    tracemalloc.start()
    try:
        with pytest.raises(FieldError, match="shared or contains itself"):
            otrk.decode_sample(bomb, otrk.ENCODING_CBOR)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


def test_opentrackio_bounds_the_nesting_of_kept_unknown_values() -> None:
    ok = '{"custom": ' + "[" * (otrk.MAX_RAW_DEPTH - 1) + "1" + "]" * (otrk.MAX_RAW_DEPTH - 1) + "}"
    assert "custom" in otrk.decode_sample(ok.encode(), otrk.ENCODING_JSON).raw
    for text in ('{"custom": ' + "[" * 500 + "]" * 500 + "}",  # parses: json.loads goes ~1000 deep
                 '{"custom": ' + '{"a": ' * 200 + "1" + "}" * 200 + "}"):
        with pytest.raises(FieldError, match=f"custom: nested deeper than {otrk.MAX_RAW_DEPTH} levels"):
            otrk.decode_sample(text.encode(), otrk.ENCODING_JSON)
    cbor = cbor2.dumps({"custom": json.loads("[" * 300 + "]" * 300)})  # under cbor2's own 400 limit
    with pytest.raises(DecodeError, match="nested deeper"):
        otrk.decode_sample(cbor, otrk.ENCODING_CBOR)
