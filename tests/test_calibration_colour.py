"""`stagectl calibrate colour` on synthetic walls: the patch sequence encoded by the output's own pipeline, pushed
through a known wall (3x3 + per-channel 1D curve), filmed by a numpy camera (exposure, ACES AP0 camera RGB, noise,
a small misregistration), written as 16-bit TIFF frames and solved by the CLI; the correction is checked by filming
the corrected patches through the same wall, and the CLF through OCIO against the numpy correction."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from stagectl.cli import main as cli_main
from stagectl.color import calibration as C
from stagectl.color.ocio import load_config, ocio_module
from stagectl.color.stagefile import config_for
from stagectl.color.transfer import Transfer, dequantize, pq_decode_nits, pq_encode_nits

CANVAS = (384, 216)
CAM = (320, 180)
FPP, SLATE, RAMP = 4, 3, 16
TIFF_SCALE = 2.0  #: the TIFFs put camera linear 2.0 at full scale (--capture-scale 2)
SEQ_ARGS = ["--capture-scale", "2", "--frames-per-patch", str(FPP), "--slate-frames", str(SLATE), "--ramp-steps", str(RAMP)]

STAGE = """\
schema_version: 1
name: Colour test
frame_rate: 24
walls:
  - name: wall
    type: flat
    center: [0.0, 4.0, 1.5]
    rotation: [0, 0, 0]
    cabinets: [2, 1]
    cabinet: {size_mm: [500, 500], pixels: [192, 216]}
processors:
  - name: proc
    kind: generic
    outputs:
      - name: out1
        canvas: [384, 216]
        mappings:
          - {wall: wall, rect: [0, 0, 384, 216], at: [0, 0]}
tracking:
  - name: tracker
    protocol: freed
    bind: 127.0.0.1
    port: 40000
    camera_id: 1
cameras:
  - name: cam
    tracking: tracker
    sensor_mm: [24.89, 14.0]
colour:
  config: studio-config-latest
  working_space: Linear Rec.709 (sRGB)
  output:
    canvas: {format: rgb10_a2, transfer: pq, peak_nits: 1000, range: full}
"""

#: the synthetic wall: per-channel curve drive_c = peak * gain_c * (x / peak)^gamma_c on the PQ-decoded signal,
#: then a 3x3 (rows sum ~1: the panel's primaries seen in Rec.2020), clipped per channel at `clip` x peak
WALL_M = np.array([[0.93, 0.06, 0.01], [0.04, 0.92, 0.04], [0.01, 0.05, 0.94]])
WALL_GAIN = np.array([0.99, 1.0, 1.01])
WALL_GAMMA = np.array([1.03, 1.02, 1.015])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("colour")
    stage = d / "stage.yaml"
    stage.write_text(STAGE, encoding="utf-8")
    cfg = config_for("ocio://studio-config-latest")
    seq = C.make_sequence(cfg, "Linear Rec.2020", Transfer("pq", peak_nits=1000.0), bits=10,
                          frames_per_patch=FPP, slate_frames=SLATE, ramp_steps=RAMP)
    return d, stage, cfg, seq


def wall_light(codes: np.ndarray, clip: float = 1.2) -> np.ndarray:
    """Canvas codes (10-bit) -> the light the synthetic wall emits, Rec.2020 linear (1.0 = 100 nits): the
    processor decodes PQ up to 1060 nits, the panel's channels follow their own curves and clip at
    ``clip`` x peak, and mix through WALL_M."""
    peak = 10.0
    x = np.minimum(pq_decode_nits(dequantize(codes, 10)) / 100.0, 1.06 * peak)
    drive = np.minimum(peak * WALL_GAIN * np.power(np.maximum(x, 0) / peak, WALL_GAMMA), clip * peak)
    return drive @ WALL_M.T


def film(seq, cfg, folder: Path, *, clip: float = 1.2, correction=None, exposure: float = 0.1,
         lead: int = 5, tail: int = 3, seed: int = 1) -> Path:
    """Render every wall frame, show it on the synthetic wall, film it (AP0 camera, 16-bit TIFF)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    to_ap0 = cfg.processor("Linear Rec.2020", target="ACES2065-1")
    a = math.radians(0.6)
    s = 0.8 * CAM[0] / CANVAS[0] * 1.02  # the canvas a little larger than the frame, turned and shifted
    M = np.array([[s * math.cos(a), -s * math.sin(a), 13.3], [s * math.sin(a), s * math.cos(a), 17.6]])
    n = 0
    for _ in range(lead):
        cv2.imwrite(str(folder / f"f{n:05d}.tif"), np.zeros((CAM[1], CAM[0], 3), np.uint16))
        n += 1
    for k in range(seq.total_frames):
        codes = seq.frame_codes(k, CANVAS, correction=correction)
        light = wall_light(codes, clip)
        cam = np.asarray(to_ap0.apply(light.astype(np.float32)), np.float64) * exposure  # 18 % grey (1.8) reads 0.18
        img = cv2.warpAffine(cam, M, CAM, flags=cv2.INTER_LINEAR)
        img = img + rng.normal(0.0, 0.0003, img.shape)
        codes16 = np.clip(np.floor(img / TIFF_SCALE * 65535 + 0.5), 0, 65535).astype(np.uint16)
        cv2.imwrite(str(folder / f"f{n:05d}.tif"), np.ascontiguousarray(codes16[..., ::-1]))
        n += 1
    for _ in range(tail):
        cv2.imwrite(str(folder / f"f{n:05d}.tif"), np.zeros((CAM[1], CAM[0], 3), np.uint16))
        n += 1
    return folder


class ClfCorrection:
    """The written CLF applied by OCIO's FileTransform (the reference library's CPU path)."""

    def __init__(self, clf: Path, cfg) -> None:
        o = ocio_module()
        proc = cfg.raw.getProcessor(o.FileTransform(src=str(clf), interpolation=o.INTERP_LINEAR))
        self.cpu = proc.getDefaultCPUProcessor()

    def apply(self, rgb):
        a = np.array(np.atleast_2d(rgb), np.float32, copy=True, order="C")
        self.cpu.applyRGB(a)
        return np.asarray(a, np.float64).reshape(np.shape(rgb))


def run_cli(*args: str) -> int:
    try:
        return cli_main(["calibrate", "colour", *args])
    except SystemExit as exc:  # argparse
        return int(exc.code)


@pytest.fixture(scope="module")
def solved(setup):
    d, stage, cfg, seq = setup
    cap = film(seq, cfg, d / "cap")
    rc = run_cli("--stage", str(stage), "--captures", str(cap), "--out", str(d / "cal"), *SEQ_ARGS)
    return d, stage, cfg, seq, rc


def test_solve_recovers_the_wall_and_the_correction_holds_in_camera(solved, capsys):
    d, stage, cfg, seq, rc = solved
    assert rc == 0
    doc = json.loads((d / "cal" / "colour.json").read_text())
    res = doc["results"]
    assert res["status"] in ("PASS", "WARNING")
    assert res["sync"]["offset_frames"] == 5 and res["sync"]["end_drift_frames"] == 0
    assert res["delta_e_itp_before"]["chart"]["mean"] > 3.0  # the wall did need calibrating
    # the CLF through OCIO equals the numpy correction
    clf = d / "cal" / "proc_out1.clf"
    corr = C.Correction(np.array(res["correction"]["matrix"]), np.array(res["correction"]["lut"]),
                        res["correction"]["log2_lo"], res["correction"]["hi"])
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(0, 10, (500, 3)), 10 ** rng.uniform(-4, 1, (500, 3))])
    ocio = ClfCorrection(clf, cfg).apply(x)
    ref = corr.apply(x)
    assert np.max(np.abs(ocio - ref) / np.maximum(np.abs(ref), 1e-3)) < 5e-4  # OCIO runs in float32
    # the written config validates and its calibrated view is the CLF then the output's PQ encode
    new = load_config(d / "cal" / "config.ocio")
    proc = new.processor("Linear Rec.2020", display="proc/out1 calibrated", view="Calibrated")
    t = rng.uniform(0, 8, (200, 3))
    got = proc.apply(t)
    want = Transfer("pq", peak_nits=1000.0).encode(corr.apply(t))
    assert np.max(np.abs(got - want)) < 2e-4
    # verification: the corrected patches on the same wall, filmed and solved again: the wall is now within ΔE 1
    ver = film(seq, cfg, d / "ver", correction=ClfCorrection(clf, cfg), seed=2)
    rc2 = run_cli("--stage", str(stage), "--captures", str(ver), "--out", str(d / "ver_cal"), *SEQ_ARGS)
    out = capsys.readouterr().out
    print(out)
    v = json.loads((d / "ver_cal" / "colour.json").read_text())["results"]["delta_e_itp_before"]
    assert max(v["chart"]["values"]) < 1.0, v["chart"]
    # the ramp from its third step (0.8 nits) up; the two darkest steps (0.07 and 0.3 nits) sit at 2 and 10 TIFF
    # codes of this camera, under its noise and quantisation, and are only held to the mean
    # and below the top: the top step is the target peak itself, where the red channel's correction meets the
    # output's own peak clip (the CLF cannot ask for more than PQ(1000 nits)); measured 1.4 there, held under 2
    assert max(v["ramp"]["values"][2:-1]) < 1.0, v["ramp"]
    assert v["ramp"]["values"][-1] < 2.0
    assert v["ramp"]["mean"] < 1.0
    # (the verification run itself may FAIL "peak white vs EOTF ramp": its peak white is the uncorrected top code,
    # its ramp the corrected one; rc2 is not asserted)
    assert rc2 in (0, 2)
    assert (d / "cal" / "colour.report.png").stat().st_size > 10000


def test_clipped_wall_fails_validation(setup, capsys):
    d, stage, cfg, seq = setup
    cap = film(seq, cfg, d / "clipped", clip=0.12)  # every channel's drive clips below the primaries' 18 %
    rc = run_cli("--stage", str(stage), "--captures", str(cap), "--out", str(d / "clipped_cal"), *SEQ_ARGS)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "failed validation" in err[0] and "EOTF clamping" in err[0] and "correctable" in err[0]
    assert not (d / "clipped_cal" / "proc_out1.clf").exists()
    assert json.loads((d / "clipped_cal" / "colour.json").read_text())["results"]["status"] == "FAIL"


def test_bad_inputs_are_one_line_errors(setup, tmp_path, capsys):
    _d, stage, _cfg, _seq = setup
    black = tmp_path / "black"
    black.mkdir()
    for i in range(5):
        cv2.imwrite(str(black / f"f{i}.tif"), np.zeros((20, 30, 3), np.uint16))
    hlg = tmp_path / "hlg.yaml"
    hlg.write_text(STAGE.replace("transfer: pq, peak_nits: 1000", "transfer: hlg"), encoding="utf-8")
    cases = [
        (["--stage", str(stage), "--captures", str(tmp_path / "none"), "--out", str(tmp_path / "o")], "no such file"),
        (["--stage", str(stage), "--captures", str(black), "--out", str(tmp_path / "o")], "no start slate"),
        (["--stage", str(stage), "--captures", str(black)], "--out"),
        (["--stage", str(stage), "--output", "proc/nope", "--patches", str(tmp_path / "p")], "expected an output"),
        (["--stage", str(hlg), "--patches", str(tmp_path / "p")], "HLG"),
        (["--stage", str(stage), "--captures", str(black), "--out", str(tmp_path / "o"), "--camera-space", "Nope"],
         "unknown colour space"),
    ]
    for args, text in cases:
        rc = run_cli(*args)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc != 0 and len(err) == 1 and text in err[0] and "Traceback" not in err[0], (args, err)


def test_patches_are_the_output_pipeline_codes(setup, tmp_path):
    """--patches PNGs: the grey patch's codes equal the stage output's own OCIO encode of the same light."""
    from stagectl.color.output import output_encode
    from stagectl.stage import load_stage

    _d, stage, cfg, seq = setup
    assert run_cli("--stage", str(stage), "--patches", str(tmp_path / "p"), *SEQ_ARGS) == 0
    frames = (tmp_path / "p" / "frames.txt").read_text().split()
    assert len(frames) == seq.total_frames
    g = seq.patch("grey_18_percent")
    png = cv2.imread(str(tmp_path / "p" / frames[g.first]), cv2.IMREAD_UNCHANGED)[..., ::-1]
    code = np.floor(png[CANVAS[1] // 2, CANVAS[0] // 2].astype(float) * 1023 / 65535 + 0.5)
    st = load_stage(stage)
    enc = output_encode(st.colour, "proc/out1")
    working = cfg.processor("Linear Rec.2020", target="Linear Rec.709 (sRGB)").apply(g.target[None].astype(np.float32))
    assert np.all(np.abs(code - enc.codes(working)[0]) <= 1)


def test_colorimetry_against_published_formulas():
    """Target -> XYZ from OCIO equals the BT.2020 primaries' matrix (RP 177); ΔE ITP equals BT.2124 in numpy."""
    from stagectl.color.output import rgb_to_xyz_matrix

    cfg = config_for("ocio://studio-config-latest")
    assert np.allclose(C.target_to_xyz_matrix(cfg, "Linear Rec.2020"), rgb_to_xyz_matrix(), atol=2e-4)
    # BT.2100 ICtCp from BT.2020 RGB (cd/m^2), constants as published; BT.2124: 720 sqrt(dI^2 + (Ct/2)^2 + dCp^2)
    lms_m = np.array([[1688, 2146, 262], [683, 2951, 462], [99, 309, 3688]]) / 4096
    ict_m = np.array([[2048, 2048, 0], [6610, -13613, 7003], [17933, -17390, -543]]) / 4096

    def ictcp(rgb):
        return pq_encode_nits(rgb @ lms_m.T) @ ict_m.T

    M = rgb_to_xyz_matrix()
    rng = np.random.default_rng(5)
    a, b = rng.uniform(0.1, 500, (50, 3)), rng.uniform(0.1, 500, (50, 3))
    ia, ib = ictcp(a), ictcp(b)
    d = ia - ib
    ref = 720 * np.sqrt(d[:, 0] ** 2 + (0.5 * d[:, 1]) ** 2 + d[:, 2] ** 2)
    assert np.allclose(C.delta_e_itp(a @ M.T, b @ M.T), ref, rtol=1e-6)
