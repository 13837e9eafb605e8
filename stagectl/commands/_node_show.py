"""What a render node shows besides the features: the primary's scene content, its stage reloads and its colour
patch playbacks (the :class:`~stagectl.sync.cluster.ShowState` of each operator state), followed at frame
boundaries by ``stagectl node``.

Per frame, before the node draws frame ``k``, :meth:`ShowFollower.follow` takes the show of the operator state
frame ``k`` was planned with on the primary (:meth:`stagectl.sync.cluster.Node.show_for`), so every change lands
on the frame the primary made it on:

* **Reload.** When the primary's ``stage.reload`` count goes up, the node reloads *its own* stage file
  (:meth:`stagectl.runtime.StageRuntime.reload`: the new planner and renderer are built first; a stage that
  cannot be loaded, or changes what a running stage cannot take, leaves the running one as it was, said once
  and kept in the status). The operator-state check then follows the new stage
  (:meth:`~stagectl.sync.cluster.Node.set_features_check`: a state the old stage refused, say a card on a new
  wall, is checked again).
* **Stage file.** The primary's stage file digest (SHA-256) is compared with this node's file as it was loaded:
  when they differ the node says so once per pair of digests (a line, and a warning in the log) and the status
  line says ``stage file differs from the primary's`` until they match again.
* **Content.** ``content.select`` on the primary: ``""`` is this node's stage file's own
  ``render.outer.content``, ``"procedural"`` the procedural world, anything else a path relative to the stage
  file's folder, which must lie inside the node's ``console.paths.content`` folder
  (:func:`stagectl.console.commands.confined`, the same check as the primary's) and exist; a glTF scene's
  buffers and images are confined to that folder when it loads
  (:meth:`stagectl.render.renderer.StageRenderer.set_content`). It is loaded on the node's render thread at the
  boundary of the first frame that shows it, as the primary loads it at that frame's boundary. A content that
  cannot be shown is said once, kept in the status, and the node keeps the content it shows.
* **Patches.** Each ``color.patches`` playback of one of this node's outputs is started on the node's player
  from the primary's first frame ``F`` with the primary's arguments (the program built from this node's stage
  file, :func:`~stagectl.render.patch_player.patch_program`), so stage frame ``F + k`` shows wall frame ``k``
  on both; a stop on the primary stops it here on the same frame. A sequence built the first time costs about
  0.3 s of OpenColorIO and colour-science set-up: :meth:`ShowFollower.warm` pays it before the first frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["ShowFollower"]

log = logging.getLogger("stagectl.node")


class ShowFollower:
    """Follows the primary's :class:`~stagectl.sync.cluster.ShowState` on node ``name`` (module docstring).

    :param stage: the node's whole stage, as loaded from its stage file (not reduced to its outputs).
    :param runtime: the node's :class:`~stagectl.runtime.StageRuntime` (None with ``--no-render``: only the
        stage file and the operator-state check follow).
    :param node: the :class:`~stagectl.sync.cluster.Node` whose operator-state check follows a reload.
    :param say: prints one line (already prefixed by the caller's ``prefix``).
    """

    def __init__(self, stage, name: str, runtime, node, say: Callable[[str], None], prefix: str) -> None:
        from stagectl.commands.node import node_features
        from stagectl.console.live import file_sha256

        self.stage = stage
        self.name = name
        self.runtime = runtime
        self.node = node
        self._say = say
        self.prefix = prefix
        self.sha256 = file_sha256(stage.path) or ""
        self.default_features, self.check = node_features(stage, name)
        self.reloads: int | None = None  # the primary's reload count followed (None: no show seen yet)
        self.content = ""  # the content shown, as the cluster names it ("": the stage file's own)
        self._tried = ""  # the content last tried (a failed one is not tried again every frame)
        self._started: dict[str, Any] = {}  # output key -> the PatchStart started (or tried) on this node
        self._programs: dict[tuple, Any] = {}  # (output, options) -> PatchProgram of the stage in effect
        self._last = None  # the show followed last
        self._said: set[tuple] = set()
        #: what does not follow the primary now, by topic (``stage file``, ``reload``, ``content``, or
        #: ``patches <output>``): one line each, for the status
        self.problems: dict[str, str] = {}
        self.counts = {"reloads": 0, "contents": 0, "patches": 0}

    # ------------------------------------------------------------------ helpers
    def say(self, text: str, warn: bool = False) -> None:
        self._say(f"{self.prefix}: {text}")
        if warn:
            log.warning("node %s: %s", self.name, text)

    def _problem(self, topic: str, text: str) -> None:
        """Keep ``text`` as ``topic``'s problem; say it (and log it) once."""
        self.problems[topic] = text
        if (topic, text) not in self._said:
            self._said.add((topic, text))
            self.say(text, warn=True)

    def mine(self) -> list[str]:
        return [f"{p.name}/{o.name}" for p, o in self.stage.outputs() if o.node == self.name]

    def status(self) -> str:
        """`` | not following: ...`` for the status line, or ``""`` when everything follows the primary."""
        return f" | not following: {'; '.join(self.problems.values())}" if self.problems else ""

    def summary(self) -> str:
        """What was followed, for the node's last line."""
        c = self.counts
        return (f"followed {c['reloads']} stage reloads, {c['contents']} content changes and {c['patches']} "
                "colour patch playbacks of the primary"
                + (f" ({'; '.join(self.problems.values())})" if self.problems else ""))

    def warm(self) -> None:
        """Build a colour patch program of one of this node's outputs once (OpenColorIO and colour-science
        set-up, about 0.3 s the first time), so that the first ``color.patches`` costs its frame a millisecond
        or so; outputs without a colour section are passed over."""
        from stagectl.core.errors import StageError
        from stagectl.render.patch_player import patch_program

        if self.runtime is None or getattr(self.stage, "colour", None) is None:
            return
        from stagectl.sync.cluster import PatchStart

        for key in self.mine():
            options = PatchStart(key, 0).options  # color.patches' defaults
            try:
                self._programs[_program_key(key, options)] = patch_program(self.runtime.stage, key, **options)
                return
            except (StageError, ValueError):
                continue

    # ------------------------------------------------------------------ per frame
    def follow(self, show, frame: int) -> None:
        """Make this node show what ``show`` (the show of frame ``frame``'s operator state; None: the primary
        published none) says, before frame ``frame`` is drawn. Never raises for what the primary sends."""
        if show is None or show is self._last:
            return
        self._last = show
        self._reload(show, frame)
        self._stage_file(show)
        if self.runtime is not None and self.runtime.output is not None:
            self._content(show, frame)
            self._patches(show, frame)

    def _reload(self, show, frame: int) -> None:
        if self.reloads is None or show.reloads < self.reloads:  # the first show seen, or a new primary
            self.reloads = show.reloads
            return
        if show.reloads == self.reloads:
            return
        self.reloads = show.reloads
        from stagectl.commands.node import node_features, node_stage
        from stagectl.console.live import file_sha256
        from stagectl.core.errors import StageError
        from stagectl.stage import load_stage

        path = self.stage.path
        content = self.content
        try:
            new = load_stage(path)
            if self.runtime is not None:
                sub = node_stage(new, self.name)
                try:  # the content shown stays on, as on the primary
                    spec = self._spec(content, sub)
                except StageError:  # not in the new stage's content folder: the new stage file's own
                    spec, content = _own_content(sub), ""
                self.runtime.reload(sub, spec)
        except StageError as exc:
            self._problem("reload", f"the primary reloaded its stage at frame {frame}; this node could not "
                          f"reload {path}: {' '.join(str(exc).split())}; it keeps the stage it runs")
            return
        self.stage = new
        self.content = content
        self.sha256 = file_sha256(path) or ""
        self.default_features, self.check = node_features(new, self.name)
        self.node.set_features_check(self.check)
        self.problems.pop("reload", None)
        self._tried = self.content  # a content that failed on the old stage is tried again on the new one
        self._started.clear()  # the new renderer plays no patches (the primary's neither)
        self._programs.clear()
        self.counts["reloads"] += 1
        self.say(f"stage {path} reloaded at frame {frame}, with the primary's stage.reload")

    def _stage_file(self, show) -> None:
        theirs = show.stage_sha256
        if not theirs or theirs == self.sha256:
            self.problems.pop("stage file", None)
            return
        self.problems["stage file"] = "stage file differs from the primary's"
        if ("stage file", theirs, self.sha256) not in self._said:
            self._said.add(("stage file", theirs, self.sha256))
            self.say(f"this node's stage file {self.stage.path} differs from the primary's (SHA-256 "
                     f"{self.sha256[:12] or 'unreadable'}... here, {theirs[:12]}... on the primary): copy the "
                     "primary's stage file here; this node reloads its own when the primary reloads",
                     warn=True)

    def _spec(self, content: str, stage) -> str:
        """The content spec this node loads for the cluster's ``content`` (module docstring); StageError
        (one line) when it may not or cannot."""
        from stagectl.console.commands import confined
        from stagectl.core.errors import StageError

        if content == "":
            return _own_content(stage)
        if content == "procedural":
            return content
        if content.startswith("/") or ":" in content.split("/", 1)[0]:
            raise StageError(f"content {content}: expected a path relative to the stage file")
        path = confined(stage, "content", content, "content.select", "content")
        if not path.is_file():
            raise StageError(f"content.select: content: file not found: {content} (looked for {path})")
        return str(path)

    def _content(self, show, frame: int) -> None:
        from stagectl.core.errors import StageError

        want = show.content
        if want == self.content:
            self._tried = want
            self.problems.pop("content", None)
            return
        if want == self._tried:
            return
        self._tried = want
        try:
            desc = self.runtime.show_content(self._spec(want, self.runtime.stage))
        except StageError as exc:
            self._problem("content", f"content {want or 'of the stage file'} cannot be shown here: "
                          f"{' '.join(str(exc).split())}; this node keeps showing "
                          f"{self.content or 'its stage file content'}")
            return
        self.content = want
        self.problems.pop("content", None)
        self.counts["contents"] += 1
        self.say(f"content is now {desc} from frame {frame}, with the primary's content.select")

    def _patches(self, show, frame: int) -> None:
        from stagectl.core.errors import StageError
        from stagectl.render.patch_player import patch_program

        player = self.runtime.output.renderer.patches
        mine = set(self.mine())
        want = {p.output: p for p in show.patches if p.output in mine}
        for key, start in list(self._started.items()):
            if want.get(key) != start:
                del self._started[key]
                self.problems.pop(f"patches {key}", None)
                pb = player.stop(key)
                if pb is not None and pb.index(frame) < pb.program.frames:  # not at its end: stopped there
                    self.say(f"colour patches on {key} stopped at frame {frame}, with the primary")
        for key, start in want.items():
            if key in self._started:
                continue
            self._started[key] = start  # tried once, whatever comes of it
            program = self._programs.get(_program_key(key, start.options))
            if program is None:
                try:
                    program = patch_program(self.runtime.stage, key, **start.options)
                except (StageError, ValueError) as exc:
                    self._problem(f"patches {key}", f"colour patches on {key} cannot be played here: "
                                  f"{' '.join(str(exc).split())}")
                    continue
                self._programs[_program_key(key, start.options)] = program
            player.start(program, start.first_frame)
            self.counts["patches"] += 1
            n = program.frames
            self.say(f"colour patches on {key}: stage frames {start.first_frame}..{start.first_frame + n - 1} "
                     f"({n} wall frames, calibration {'on' if program.calibrated else 'off'}), with the primary")


def _program_key(key: str, options: dict) -> tuple:
    return key, tuple(sorted(options.items()))


def _own_content(stage) -> Any:
    """The stage file's own ``render.outer.content`` (a spec the renderer loads)."""
    return stage.render.outer.content
