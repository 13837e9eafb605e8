"""Bad commands shared by the validation and the hub tests: (name, args, the exact one-line error).

They run against the demo stage (walls main and ceiling; outputs tessera-a/out1, tessera-a/out2,
tessera-b/out3; camera cam-a on tracking source tracker-a) with two light cards, card-1 and card-2, on main.
"""

from __future__ import annotations

OUTPUTS = "tessera-a/out1, tessera-a/out2, tessera-b/out3"
GROUP_NAMES = "card, color, pattern, output, chroma, camera, inner, content, record, stage"

BAD: list[tuple[str, object, str]] = [
    (
        "nope",
        {},
        "unknown command 'nope'; commands: status, state, help, stage.reload, content.select, camera.set, "
        "chroma.set, card.add, card.set, card.move, card.resize, card.remove, color.set, color.reset, "
        "color.calibration, color.look, color.patches, pattern.set, output.blackout, inner.set, record.start, "
        "record.stop, record.follow",
    ),
    ("card.remove", [1], "card.remove: expected the arguments as a mapping of names to values, got [1]"),
    (
        "card.add",
        {"wall": "main"},
        "card.add: rect: required argument is missing ([u0, v0, u1, v1]: rectangle in wall UV (origin "
        "top-left, v down), "
        "u0 < u1, v0 < v1)",
    ),
    (
        "card.add",
        {"wall": "main", "rect": [0.5, 0.1, 0.2, 0.3]},
        "card.add: rect: expected [u0, v0, u1, v1] with u0 < u1, v0 < v1 in wall UV, got [0.5, 0.1, 0.2, "
        "0.3]",
    ),
    (
        "card.add",
        {"wall": "main", "rect": [0.1, 0.1, 0.2]},
        "card.add: rect: expected [u0, v0, u1, v1] with u0 < u1, v0 < v1 in wall UV (each -10..10), got "
        "[0.1, 0.1, 0.2]",
    ),
    (
        "card.add",
        {"wall": "side", "rect": [0.1, 0.1, 0.2, 0.2]},
        "card.add: wall: expected one of main, ceiling (walls), got 'side'",
    ),
    (
        "card.add",
        {"wall": "main", "rect": [0.1, 0.1, 0.2, 0.2], "layer": "top"},
        "card.add: layer: expected one of over, under, got 'top'",
    ),
    (
        "card.add",
        {"wall": "main", "rect": [0.1, 0.1, 0.2, 0.2], "color": [1, 1]},
        "card.add: color: expected [r, g, b] linear-light values 0..1000, got [1, 1]",
    ),
    (
        "card.add",
        {"wall": "main", "rect": [0.1, 0.1, 0.2, 0.2], "intensity": -1},
        "card.add: intensity: expected a number 0..1000, got -1",
    ),
    (
        "card.add",
        {"wall": "main", "rect": [0.1, 0.1, 0.2, 0.2], "intensity": float("nan")},
        "card.add: intensity: expected a number 0..1000, got NaN",
    ),
    (
        "card.add",
        {"wall": "main", "rect": [0.1, 0.1, 0.2, 0.2], "intensity": True},
        "card.add: intensity: expected a number 0..1000, got true",
    ),
    (
        "card.add",
        {"wall": "main", "rect": [0.1, 0.1, 0.2, 0.2], "bogus": 1},
        "card.add: bogus: unknown argument; expected one of: wall, rect, id, color, intensity, layer, "
        "feather_px",
    ),
    (
        "card.add",
        {"wall": "main", "rect": [0.1, 0.1, 0.2, 0.2], "id": "card-2"},
        "card.add: id: light card 'card-2' exists already; cards: card-1, card-2",
    ),
    ("card.set", {"id": "x", "intensity": 2}, "card.set: id: no light card 'x'; cards: card-1, card-2"),
    (
        "card.set",
        {"id": "card-1"},
        "card.set: expected at least one of rect, color, intensity, layer, feather_px",
    ),
    (
        "card.set",
        {"id": "card-1", "feather_px": -2},
        "card.set: feather_px: expected a number 0..100000, got -2",
    ),
    ("card.move", {"id": "card-1", "u": "a", "v": 0}, "card.move: u: expected a number -10..10, got 'a'"),
    (
        "card.resize",
        {"id": "card-1", "width": 0, "height": 0.1},
        "card.resize: width: expected a number > 0 and <= 20, got 0",
    ),
    ("card.remove", {"id": "card-9"}, "card.remove: id: no light card 'card-9'; cards: card-1, card-2"),
    (
        "pattern.set",
        {"output": "p9/x", "kind": "aruco"},
        f"pattern.set: output: no output 'p9/x'; outputs: {OUTPUTS}",
    ),
    (
        "pattern.set",
        {"output": "tessera-a/out1", "kind": "zebra"},
        "pattern.set: kind: expected one of none, cabinet_id, color_bars, checkerboard, aruco, solid, "
        "white_flash, "
        "got 'zebra'",
    ),
    (
        "pattern.set",
        {"output": "tessera-a/out1", "kind": "solid", "burn_in": ["frame", "date"]},
        'pattern.set: burn_in: expected a list of frame, timecode, got ["frame", "date"]',
    ),
    (
        "pattern.set",
        {"output": "tessera-a/out1", "kind": "checkerboard", "squares": 1.5},
        "pattern.set: squares: expected a whole number 1..64, got 1.5",
    ),
    (
        "output.blackout",
        {"output": "tessera-a/out1", "on": "maybe"},
        "output.blackout: on: expected true or false, got 'maybe'",
    ),
    (
        "output.blackout",
        {"output": "out1", "on": True},
        f"output.blackout: output: no output 'out1'; outputs: all, {OUTPUTS}",
    ),
    (
        "color.set",
        {"target": "floor", "exposure": 1},
        "color.set: target: expected one of main, ceiling, inner (walls, or inner), got 'floor'",
    ),
    (
        "color.set",
        {"target": "main", "gains": [1, 1, 1], "temperature": 5600},
        "color.set: give white balance as gains or as temperature/tint, not both",
    ),
    (
        "color.set",
        {"target": "main", "temperature": 1000},
        "color.set: temperature: expected a number 1667..25000, got 1000",
    ),
    (
        "color.set",
        {"target": "main"},
        "color.set: expected at least one of exposure, temperature, tint, gains, slope, offset, power, "
        "saturation, lut",
    ),
    (
        "color.set",
        {"target": "inner", "power": [1, 0, 1]},
        "color.set: power: expected [r, g, b] power, each > 0 and <= 100, got [1, 0, 1]",
    ),
    ("color.reset", {"target": "ceiling"}, "color.reset: target: 'ceiling' has no colour correction"),
    (
        "color.calibration",
        {"target": "all", "on": False},
        "color.calibration: target: expected a calibrated output, but the stage has none (colour: "
        "outputs.<key>.calibration or walls.<wall>.calibration), got 'all'",
    ),
    ("color.calibration", {"target": "all"}, "color.calibration: on: required argument is missing (bool: show the "
     "calibration (true) or the output's uncalibrated signal (false), for A/B on camera)"),
    (
        "camera.set",
        {"camera": "cam-b", "freeze": True},
        "camera.set: camera: expected one of cam-a, got 'cam-b'",
    ),
    (
        "camera.set",
        {"camera": "cam-a"},
        "camera.set: expected at least one of tracking, delay_frames, smoothing, overscan_percent, "
        "soft_edge, freeze",
    ),
    (
        "camera.set",
        {"camera": "cam-a", "overscan_percent": 150},
        "camera.set: overscan_percent: expected a percentage 0..100 or [left, right, bottom, top] each "
        "0..100, got 150",
    ),
    (
        "camera.set",
        {"camera": "cam-a", "overscan_percent": [1, 2, 3]},
        "camera.set: overscan_percent: expected a percentage 0..100 or [left, right, bottom, top] each "
        "0..100, "
        "got [1, 2, 3]",
    ),
    (
        "camera.set",
        {"camera": "cam-a", "soft_edge": 0.6},
        "camera.set: soft_edge: expected a number 0..0.5, got 0.6",
    ),
    (
        "camera.set",
        {"camera": "cam-a", "smoothing": {"beta": 1}},
        'camera.set: smoothing: expected "off" or {"min_cutoff_hz": Hz > 0 and <= 1000, "beta": 0..1000 '
        '(optional), "d_cutoff_hz": Hz > 0 and <= 1000 (optional)}, got {"beta": 1}',
    ),
    (
        "camera.set",
        {"camera": "cam-a", "delay_frames": -1},
        "camera.set: delay_frames: expected a number 0..30, got -1",
    ),
    (
        "camera.set",
        {"camera": "cam-a", "tracking": "tracker-z"},
        "camera.set: tracking: expected one of tracker-a (tracking sources), got 'tracker-z'",
    ),
    (
        "chroma.set",
        {"color": [0, 300, 0]},
        "chroma.set: color: expected [r, g, b] 8-bit sRGB codes, each 0..255, got [0, 300, 0]",
    ),
    ("chroma.set", {}, "chroma.set: expected at least one of enabled, color"),
    ("inner.set", {"enabled": "yes"}, "inner.set: enabled: expected true or false, got 'yes'"),
    ("inner.set", {}, "inner.set: enabled: required argument is missing (bool: composite the inner frusta)"),
    ("record.stop", {}, "record.stop: no take is being recorded"),
    (
        "record.follow",
        {"source": "tracker-a"},
        'record.follow: source: expected an OpenTrackIO tracking source of the stage ((none)) or "off", got '
        "'tracker-a'",
    ),
    (
        "record.follow",
        {},
        'record.follow: source: required argument is missing (OpenTrackIO tracking source | "off": the source '
        'whose tracker.recording starts and stops takes; "off" (or null): stop following)',
    ),
    ("stage.reload", {"path": "x.yaml"}, "stage.reload: path: unknown argument; expected one of: (none)"),
    ("help", {"command": "card.fly"}, None),  # checked by prefix: lists every command
]
