"""Cluster: the primary publishes every frame's state over ZeroMQ; render nodes follow it and meet at a swap
barrier.

Topology (zguide *Clone* pattern plus a barrier service, ``docs/reference/STYLE.md`` practice 10)::

    primary (stagectl run)                               node (stagectl node --name N)
    XPUB   state port ── operator state (on change) ───▶ SUB    (subscribes before the snapshot)
                      ── FrameState, sequenced ────────▶
    ROUTER sync port  ◀─ HELLO / HB / SNAP / READY / BYE ─ DEALER
                      ── SNAP (latest state + seq,  ──▶
                         latest operator state) / GO
    inproc PAIR       ◀─ FEAT / PUB / ARRIVE / STOP (from the primary's frame loop; shutdown goes through it)

* **States.** :class:`FrameState` is the whole per-frame state a node needs: frame number, timecode, the
  frame edge (and epoch) in integer ns on the primary's named clock, every camera's ``T_stage_camera`` and
  lens values (with the overscan and soft edge in use), the operator flags (global blackout, inner frusta on,
  freeze), the number of the operator state the frame was planned with (``features_seq``), and a sequence
  number plus the primary's random *session* id. The wire codec (:func:`encode_frame_state` /
  :func:`decode_frame_state`) is pure, versioned (:data:`WIRE_VERSION` 5) and compact (64 bytes + 193 bytes
  and the name per camera; ``struct`` little-endian); any malformed input raises :class:`FrameStateError` (a
  :class:`~stagectl.core.errors.StageError`), which a node counts and drops.
* **Operator state.** The render-relevant part of what the operator set on the primary's stage console (a
  :class:`~stagectl.core.features.FeatureState`: light cards, chroma key and markers, wall and inner colour
  corrections with their 3D LUT tables, per-output patterns and blackouts, the per-camera freeze, the outputs
  whose colour calibration ``color.calibration`` switched off: JSON key ``uncalibrated``), together with what
  the wall shows besides (:class:`ShowState`, JSON key ``show``: the scene content ``content.select`` chose,
  as a path relative to the stage file; the SHA-256 of the primary's stage file and its ``stage.reload``
  count; the colour patch playbacks of ``color.patches`` with their first frames), is published
  on the same socket as a message of its own whenever it changes, numbered per session (1, 2, ...), before
  the first frame state that names it (:meth:`Primary.publish`). Wire form (:func:`encode_features` /
  :func:`decode_features`, equally strict): a 21-byte header (magic ``SCOP``, version, session, number,
  JSON length), a compact JSON object with exactly the encoder's keys, then each distinct LUT's table as
  float32. A node keeps the last :data:`FEATURES_HISTORY` operator states (each first checked against its own
  stage: a refused one is counted and dropped) and renders frame ``k`` with the one the frame names
  (:meth:`Node.features_for`); when it does not have it (lost, or arriving out of order), it renders with the
  newest it has, counts the frame as *behind*, and asks for a snapshot, which always carries the latest
  operator state. It never waits for one: the barrier is never held for it.
* **Late joiners** (Clone): a node subscribes first, then asks the ROUTER for a snapshot; the answer is the
  latest state and its sequence number. Updates with a sequence at or below the snapshot's are discarded; a
  jump in the sequence is a *gap*: counted, and the node asks for a snapshot again (every update is a full
  state, so the newer update is used at once and nothing is stuck behind the gap). A new session id (the
  primary restarted) makes the node start over from a snapshot, operator state included.
* **Swap barrier.** Before presenting frame ``k`` every participant reports ``READY k`` (the primary itself
  through :meth:`Primary.barrier` when it is a member). The primary releases the waiters of the lowest pending
  frame when every *live barrier member* has reported that frame or a later one. A member that has not
  reported ``timeout_ns`` (default two frame periods) after the round opened (its first report, but not before
  the previous release) is **dropped** from the barrier and the others are released. A node enters the barrier
  by reporting a frame not yet released, or the frame just released before that round's deadline (it would
  have made that barrier), so a joining, dropped or restarted node **rejoins by itself** as soon as it
  keeps up, a node still starting up never holds anybody, and a node slower than the timeout stays out
  instead of costing everyone a timeout every other frame. A report for a frame already released is answered
  at once (the node is behind: it presents immediately).
* **Membership** by heartbeats: a node sends ``HB`` when it has sent nothing for ``heartbeat_ns`` (100 ms); a
  node silent for ``liveness_ns`` (1 s) is marked not alive and out of the barrier, and one silent for
  ``forget_ns`` (30 s) is forgotten. Whether or not the sync port is authenticated, the primary checks every
  message before it learns a name from it: the sender's rate, the kind and its frame count and sizes (``HELLO``,
  ``SNAP``, ``HB``,
  ``READY``, ``BYE``), then the name (:func:`valid_peer_name`: 1..64 UTF-8 bytes of printable characters, no
  control characters, line breaks or other invisible ones); anything else is counted in ``bad_messages`` and
  never enters the table. The table holds at most :data:`MAX_PEERS` names: when it is full the longest-silent
  node that is out of the barrier makes room, and a new name is refused (counted in ``refused_peers``) when
  every node in it is alive. Frames larger than :data:`MAX_SYNC_FRAME_BYTES` close the sender's connection. The XPUB socket tells the
  primary when each node's SUB subscription has arrived (a per-node topic), so a caller can wait for
  subscribers instead of sleeping.
* **Authentication** (``docs/cluster.md``). With ``keys`` (the stage's key folder has node keys,
  :func:`~stagectl.sync.zmq_security.cluster_server_keys`) both sockets are CURVE servers: a ZAP handler
  (:class:`~stagectl.sync.zmq_security.KeyAuthenticator`, shared with the stage console) admits only the node
  keys in ``<keys>/nodes``, refused handshakes are counted by reason (``refused_connections``), and a message
  or node-topic subscription naming node ``X`` is accepted only from key ``X`` (its ZAP User-Id; otherwise
  counted in ``forged_names`` and dropped), so one node cannot take over another's connection, membership or
  barrier reports. Without keys the cluster is unauthenticated (``stagectl run --cluster`` warns).
* **Rates.** Each peer (connection, or node key with CURVE) may send :data:`SNAPSHOT_RATE_PER_S` snapshot
  requests a second and about four messages per frame period; more are dropped and counted
  (``rate_limited``). The service thread reads at most :data:`MAX_SYNC_READS_PER_S` messages a second from all
  peers together and at most :data:`DRAIN_SLICE_NS` at a time before it serves its pipe again, and a report
  that completes a round releases it at once, so a flooding peer cannot starve the barrier.
* **Threads.** Every socket of the primary lives in one service thread; the frame loop talks to it through an
  inproc PAIR pipe (``publish``, ``barrier``, ``close``: a ``STOP`` message, then join, all bounded). A
  :class:`Node` is single-threaded: its sockets belong to the thread that calls it, and heartbeats go out from
  inside its calls (``poll``, ``recv_state``, ``latest_state``, ``wait_barrier``).

Time: integer nanoseconds on ``time.monotonic_ns()`` (clock ``monotonic``) for every timeout and measurement;
the edge and epoch inside a state are on the primary's clock, named in the state (``docs/conventions.md``).

Layout: :mod:`~stagectl.sync.cluster.wire` (the wire format: frame states, operator states, sync messages,
addresses), :mod:`~stagectl.sync.cluster.barrier` (membership and barrier rounds as a plain class driven with
explicit times, no sockets), :mod:`~stagectl.sync.cluster.status` (what both sides report),
:mod:`~stagectl.sync.cluster.primary` and :mod:`~stagectl.sync.cluster.node` (the sockets and threads).
"""

from stagectl.sync.cluster.barrier import DEFAULT_TIMEOUT_FRAMES, FORGET_NS, LIVENESS_NS, MAX_PEERS
from stagectl.sync.cluster.node import FEATURES_HISTORY as FEATURES_HISTORY
from stagectl.sync.cluster.node import HEARTBEAT_NS, Node
from stagectl.sync.cluster.node import SNAPSHOT_RETRY_NS as SNAPSHOT_RETRY_NS
from stagectl.sync.cluster.primary import DRAIN_SLICE_NS as DRAIN_SLICE_NS
from stagectl.sync.cluster.primary import MAX_SYNC_FRAME_BYTES, SNAPSHOT_RATE_PER_S, Primary
from stagectl.sync.cluster.primary import MAX_SYNC_READS_PER_S as MAX_SYNC_READS_PER_S
from stagectl.sync.cluster.primary import SNAPSHOT_BURST as SNAPSHOT_BURST
from stagectl.sync.cluster.primary import SUBSCRIBE_BURST as SUBSCRIBE_BURST
from stagectl.sync.cluster.primary import SUBSCRIBE_RATE_PER_S as SUBSCRIBE_RATE_PER_S
from stagectl.sync.cluster.status import BarrierResult, ClusterStatus, NodeStatus, PeerStatus
from stagectl.sync.cluster.wire import (
    DEFAULT_STATE_PORT,
    DEFAULT_SYNC_PORT,
    FEATURES_MAGIC,
    NO_FLAGS,
    WIRE_MAGIC,
    WIRE_VERSION,
    ClusterError,
    FeatureUpdate,
    FrameState,
    FrameStateError,
    PatchStart,
    ShowState,
    decode_features,
    decode_frame_state,
    encode_features,
    encode_frame_state,
    parse_primary_address,
    valid_peer_name,
)
from stagectl.sync.cluster.wire import MAX_FEATURES_BYTES as MAX_FEATURES_BYTES
from stagectl.sync.cluster.wire import MAX_FEATURES_JSON as MAX_FEATURES_JSON
from stagectl.sync.cluster.wire import MAX_NAME_BYTES as MAX_NAME_BYTES
from stagectl.sync.cluster.wire import MAX_WIRE_CAMERAS as MAX_WIRE_CAMERAS
from stagectl.sync.cluster.wire import MAX_WIRE_LUTS as MAX_WIRE_LUTS
from stagectl.sync.cluster.wire import MAX_CONTENT_BYTES as MAX_CONTENT_BYTES
from stagectl.sync.cluster.wire import MAX_WIRE_PATCHES as MAX_WIRE_PATCHES

__all__ = [
    "DEFAULT_STATE_PORT",
    "DEFAULT_SYNC_PORT",
    "DEFAULT_TIMEOUT_FRAMES",
    "FEATURES_MAGIC",
    "FORGET_NS",
    "HEARTBEAT_NS",
    "LIVENESS_NS",
    "MAX_PEERS",
    "MAX_SYNC_FRAME_BYTES",
    "NO_FLAGS",
    "SNAPSHOT_RATE_PER_S",
    "WIRE_MAGIC",
    "WIRE_VERSION",
    "BarrierResult",
    "ClusterError",
    "ClusterStatus",
    "FeatureUpdate",
    "FrameState",
    "FrameStateError",
    "Node",
    "NodeStatus",
    "PatchStart",
    "PeerStatus",
    "Primary",
    "ShowState",
    "decode_features",
    "decode_frame_state",
    "encode_features",
    "encode_frame_state",
    "parse_primary_address",
    "valid_peer_name",
]
