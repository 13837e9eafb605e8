"""After a ``stage.reload`` the status line of ``stagectl run`` names the covered cabinets after the walls of the
reloaded stage: the walls and the plan the loop reads are swapped together (stagectl.runtime.StageRuntime).
A real ``stagectl run`` (``--no-render``, the built-in simulator moving the camera), a real OSC reload."""

from __future__ import annotations

import re
from pathlib import Path

from .stage_run import OscClient
from .test_run_effects import _Run, _stage


def test_the_status_after_a_reload_names_the_reloaded_walls(tmp_path: Path) -> None:
    stage, ports = _stage(tmp_path)
    original = stage.read_text()
    assert "  - name: wall\n" in original and "{wall: wall," in original
    osc = OscClient(ports["osc"])
    run = _Run(stage, "--no-render")
    try:
        run.started()
        run.wait_for(r"cam: tracking .* inner frustum covers wall \d+ cabinets")
        # the same wall under another name (its mapping follows): a compatible edit
        stage.write_text(original.replace("  - name: wall\n", "  - name: backdrop\n")
                         .replace("{wall: wall,", "{wall: backdrop,"))
        command, ok, _, result = osc.send("/stagectl/stage/reload")
        assert (command, ok) == ("stage.reload", 1), result
        run.wait_for(r" reloaded$", timeout_s=10)
        # the first status line after the reload pairs the new plan with the new walls
        m = run.wait_for(r"cam: tracking .*(inner frustum covers|no inner frustum|no pose yet)[^|]*", timeout_s=10)
        assert re.search(r"inner frustum covers backdrop \d+ cabinets", m.group(0)), m.group(0)
    finally:
        osc.close()
        out = run.stop()
    assert out.count(" reloaded") == 1, out
