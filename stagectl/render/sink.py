"""Output sinks: a shared-memory frame ring per output that other programs read, and PNG / EXR snapshots.

**Shared-memory ring** (``multiprocessing.shared_memory``; on Linux a file ``/dev/shm/<name>``). One writer
(:class:`SinkWriter`, the renderer) and any number of readers (:class:`SinkReader`, in this or any other
process or language). All integers little-endian; byte offsets:

====== ======== =====================================================================================
offset type     field
====== ======== =====================================================================================
0      8 bytes  magic ``b"STGSINK\\0"``
8      u32      version: 1 for ``rgba8`` rings (unchanged since the first sink), 2 for the deep formats (a
                version-1 reader refuses them instead of misreading them)
12     u32      header_bytes: offset of slot 0's pixels (a multiple of 4096)
16     u32      width (pixels)
20     u32      height (pixels)
24     u32      channels (4: R, G, B, A)
28     u32      slots (N)
32     u64      slot_bytes: distance between two slots' pixels (``height * width * bytes per pixel``
                rounded up to 64)
40     u64      write_count: frames written so far; the newest is write number ``write_count`` in slot
                ``(write_count - 1) % N`` (0: nothing written yet)
48     u32      closed: 1 once the writer has closed the ring (it is then unlinked; reattach to a new one)
52     u32      pixel format (:data:`PIXEL_FORMATS`), **row 0 = top** (a canvas as it is shown):
                0 ``rgba8``: 4 x uint8 a pixel, RGB 8-bit codes (sRGB unless the stage's colour section
                says otherwise), alpha 255;
                1 ``rgba16``: 4 x uint16 a pixel, 16-bit codes of the output's signal, alpha 65535;
                2 ``rgb10_a2``: one uint32 a pixel, ``GL_UNSIGNED_INT_2_10_10_10_REV`` packing (red bits
                0-9, green 10-19, blue 20-29, alpha 30-31), 10-bit codes of the output's signal
56     8 bytes  reserved
64     N x 32   slot table, slot ``i`` at ``64 + 32 i``: ``seq`` u64, ``frame_no`` i64, ``time_ns`` i64,
                ``write_no`` u64 (which write the slot holds)
header N x ...  pixels: slot ``i`` at ``header_bytes + i * slot_bytes``, ``height x width`` pixels
====== ======== =====================================================================================

**Torn-read detection** is a sequence lock per slot. The writer makes the slot's ``seq`` odd, fences, copies
the pixels and the metadata, fences, makes ``seq`` even again, fences, and only then publishes
``write_count``. A reader takes ``write_count``, reads the slot's ``seq`` (odd: being written, retry), fences,
copies pixels and metadata, fences, and reads ``seq`` again: a different value means the writer went through
the slot during the copy (it lapped the ring), so the copy is thrown away and the reader retries with the
newest frame. The fences are real hardware fences (``fence seq_cst``, JIT-compiled once with llvmlite, a numba
dependency) so the protocol also holds on weakly ordered CPUs (ARM); a reader in C/C++ uses acquire loads and
an ``atomic_thread_fence(memory_order_acquire)`` before the second ``seq`` load. With N >= 3 slots a reader
only retries when it is slower than N - 1 frames.

**Lifetime.** The writer creates the segment (``replace=True`` first unlinks a stale one left by a crashed
writer) and unlinks it in :meth:`SinkWriter.close`, after setting ``closed``. Neither side registers the
segment with Python's ``resource_tracker``: a writer's tracker unlinking the name some time after the writer
exited could hit the segment of the writer that replaced it under the same name (a crashed writer's segment
stays until the next writer replaces it), and a reader's tracker would unlink the writer's segment when that
reader exits (before Python 3.13 every attach registers). Segment names: :func:`sink_name`.

**Snapshots**: :func:`write_png` (8 or 16 bit) and :func:`write_exr` (half or float linear light, needs
OpenCV's OpenEXR codec, enabled through ``OPENCV_IO_ENABLE_OPENEXR``; :func:`exr_supported` says whether this
build has it).
"""

from __future__ import annotations

import ctypes
import os
import re
import struct
import sys
import threading
import time
from multiprocessing import resource_tracker, shared_memory
from pathlib import Path

import numpy as np

from stagectl.core.errors import StageError

__all__ = [
    "MAGIC",
    "VERSION",
    "PIXEL_FORMATS",
    "SinkError",
    "SinkFrame",
    "SinkWriter",
    "SinkReader",
    "sink_name",
    "memory_fence",
    "HARDWARE_FENCE",
    "write_png",
    "write_exr",
    "exr_supported",
]

MAGIC = b"STGSINK\0"
VERSION = 1  #: version of an rgba8 ring; deep rings are version 2
VERSIONS = (1, 2)  #: versions this reader reads
#: canvas format -> (pixel_format code, numpy dtype of a pixel's words, words a pixel)
PIXEL_FORMATS = {"rgba8": (0, np.uint8, 4), "rgba16": (1, np.uint16, 4), "rgb10_a2": (2, np.uint32, 1)}
_FORMAT_OF_CODE = {v[0]: k for k, v in PIXEL_FORMATS.items()}
_TABLE_OFFSET = 64
_SLOT_ENTRY = 32
_PAGE = 4096

_HEADER = np.dtype(
    [
        ("magic", "S8"),
        ("version", "<u4"),
        ("header_bytes", "<u4"),
        ("width", "<u4"),
        ("height", "<u4"),
        ("channels", "<u4"),
        ("slots", "<u4"),
        ("slot_bytes", "<u8"),
        ("write_count", "<u8"),
        ("closed", "<u4"),
        ("pixel_format", "<u4"),
        ("reserved", "<u8"),
    ]
)
_SLOT = np.dtype([("seq", "<u8"), ("frame_no", "<i8"), ("time_ns", "<i8"), ("write_no", "<u8")])
_HEADER_STRUCT = "<8sIIIIIIQQII8x"
assert _HEADER.itemsize == _TABLE_OFFSET == struct.calcsize(_HEADER_STRUCT) and _SLOT.itemsize == _SLOT_ENTRY


class SinkError(StageError):
    """A sink that cannot be created, opened, written or read."""


# --------------------------------------------------------------------------------------------- fences


def _build_fence():
    """A C function that executes ``fence seq_cst`` (llvmlite JIT); None when llvmlite is unavailable."""
    try:
        import llvmlite.binding as llvm

        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        mod = llvm.parse_assembly("define void @stagectl_fence() {\n  fence seq_cst\n  ret void\n}\n")
        mod.verify()
        machine = llvm.Target.from_default_triple().create_target_machine()
        engine = llvm.create_mcjit_compiler(mod, machine)
        engine.finalize_object()
        fn = ctypes.CFUNCTYPE(None)(engine.get_function_address("stagectl_fence"))
        return engine, fn
    except Exception:  # noqa: BLE001 - fall back to the interpreter's ordering (enough on x86-64)
        return None


_fence_lock = threading.Lock()
_attach_lock = threading.Lock()
_fence_impl = None
#: True once a hardware fence is in use (False: llvmlite missing; ordering then relies on x86-64's TSO)
HARDWARE_FENCE = False


def memory_fence() -> None:
    """A full (sequentially consistent) memory fence between this thread's earlier and later memory
    accesses."""
    global _fence_impl, HARDWARE_FENCE
    impl = _fence_impl
    if impl is None:
        with _fence_lock:
            if _fence_impl is None:
                built = _build_fence()
                _fence_impl = built if built is not None else (None, lambda: None)
                HARDWARE_FENCE = built is not None
            impl = _fence_impl
    impl[1]()


# --------------------------------------------------------------------------------------------- naming


def sink_name(*parts: str) -> str:
    """A portable shared-memory name from parts such as stage and output key: ``stagectl_demo_proc1_out2``
    (letters, digits and ``_`` only; at most 30 characters, the macOS limit, with a hash suffix when cut)."""
    raw = "_".join(["stagectl", *parts])
    name = re.sub(r"[^A-Za-z0-9_]+", "_", raw).strip("_")
    if len(name) > 30:
        import hashlib

        digest = hashlib.sha1(raw.encode("utf-8")).hexdigest()[:8]
        name = f"{name[:21]}_{digest}"
    return name


def _attach_untracked(name: str) -> shared_memory.SharedMemory:
    """Open an existing segment without registering it with this process's resource tracker."""
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, create=False, track=False)  # type: ignore[call-arg]
    with _attach_lock:  # the module-level patch must not race another attach in this process
        original = resource_tracker.register
        resource_tracker.register = lambda *args, **kwargs: None  # type: ignore[assignment]
        try:
            return shared_memory.SharedMemory(name=name, create=False)
        finally:
            resource_tracker.register = original  # type: ignore[assignment]


def _create_untracked(name: str, size: int) -> shared_memory.SharedMemory:
    """Create a segment that only :func:`_unlink_untracked` removes, not this process's resource tracker.

    Sink names are fixed per output, so a restarted writer reuses its predecessor's name. Were the segment left
    to the tracker, a writer that exited without closing would have its tracker unlink the name at some moment
    after exit -- by then possibly the segment of its successor, which readers could then no longer find. A
    segment left by a crash stays until the next writer of that name replaces it (``replace=True``).
    """
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, create=True, size=size, track=False)  # type: ignore[call-arg]
    shm = shared_memory.SharedMemory(name=name, create=True, size=size)
    if os.name == "posix":
        resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
    return shm


def _unlink_untracked(shm: shared_memory.SharedMemory) -> None:
    """Unlink a segment made by :func:`_create_untracked` or attached by :func:`_attach_untracked`."""
    if sys.version_info < (3, 13) and os.name == "posix":  # unlink() unregisters: register first, balanced
        resource_tracker.register(shm._name, "shared_memory")  # type: ignore[attr-defined]
    shm.unlink()


def _pixel_shape(fmt: str, height: int, width: int, channels: int) -> tuple[tuple[int, ...], np.dtype]:
    _, dtype, words = PIXEL_FORMATS[fmt]
    shape = (height, width, channels) if words == 4 else (height, width)
    return shape, np.dtype(dtype)


class _Layout:
    def __init__(
        self, buf, slots: int, header_bytes: int, slot_bytes: int, shape: tuple[int, ...], dtype=np.uint8
    ) -> None:
        self.header = np.ndarray((), _HEADER, buffer=buf, offset=0)
        self.table = np.ndarray((slots,), _SLOT, buffer=buf, offset=_TABLE_OFFSET)
        self.seq = self.table["seq"]
        self.frame_no = self.table["frame_no"]
        self.time_ns = self.table["time_ns"]
        self.write_no = self.table["write_no"]
        self.pixels = [
            np.ndarray(shape, dtype, buffer=buf, offset=header_bytes + i * slot_bytes)
            for i in range(slots)
        ]


def _sizes(width: int, height: int, channels: int, slots: int, pixel_bytes: int | None = None) -> tuple[int, int, int]:
    header = _TABLE_OFFSET + slots * _SLOT_ENTRY
    header_bytes = -(-header // _PAGE) * _PAGE
    frame = width * height * (channels if pixel_bytes is None else pixel_bytes)
    slot_bytes = -(-frame // 64) * 64
    return header_bytes, slot_bytes, header_bytes + slots * slot_bytes


class SinkFrame(tuple):
    """``(frame_no, time_ns, pixels)`` plus ``write_no`` (the ring's write counter for this frame)."""

    write_no: int

    def __new__(cls, frame_no: int, time_ns: int, pixels: np.ndarray, write_no: int):
        obj = super().__new__(cls, (frame_no, time_ns, pixels))
        obj.write_no = write_no
        return obj

    @property
    def frame_no(self) -> int:
        return self[0]

    @property
    def time_ns(self) -> int:
        return self[1]

    @property
    def pixels(self) -> np.ndarray:
        return self[2]


# --------------------------------------------------------------------------------------------- writer


class SinkWriter:
    """Creates the ring ``name`` for ``width x height`` frames in ``slots`` slots: ``channels`` (4) uint8 a pixel,
    or as ``fmt`` says.

    ``write(frame_no, time_ns, array)`` copies an ``(H, W, channels)`` uint8 array (row 0 = top) into the next
    slot. ``replace``: unlink a segment of that name left behind (by a crashed writer) instead of failing.
    ``fmt``: the canvas format (:data:`PIXEL_FORMATS`; a renderer says it: ``StageRenderer.canvas_format``):
    ``rgba16`` takes ``(H, W, 4)`` uint16 codes, ``rgb10_a2`` ``(H, W)`` uint32 words already packed (copied as
    they are: ``StageRenderer.canvases(packed=True)``) or ``(H, W, 4)`` uint16 codes (packed here, a full pass
    over the frame).
    """

    def __init__(
        self, name: str, width: int, height: int, slots: int = 3, *, channels: int = 4, replace: bool = False,
        fmt: str = "rgba8",
    ) -> None:
        if fmt not in PIXEL_FORMATS:
            raise SinkError(f"sink {name!r}: pixel format must be one of {', '.join(PIXEL_FORMATS)}, got {fmt!r}")
        if fmt != "rgba8" and channels != 4:
            raise SinkError(f"sink {name!r}: {fmt} frames have 4 channels, got {channels}")
        self.format = fmt
        if width <= 0 or height <= 0 or channels <= 0:
            raise SinkError(f"sink {name!r}: size {width}x{height}x{channels} must be positive")
        if slots < 2:
            raise SinkError(f"sink {name!r}: needs at least 2 slots, got {slots}")
        self.name = name
        self.width, self.height, self.channels, self.slots = (
            int(width),
            int(height),
            int(channels),
            int(slots),
        )
        self._shape, self._dtype = _pixel_shape(fmt, self.height, self.width, self.channels)
        pixel_bytes = self._dtype.itemsize * (self.channels if len(self._shape) == 3 else 1)
        header_bytes, slot_bytes, total = _sizes(self.width, self.height, self.channels, self.slots, pixel_bytes)
        try:
            self._shm = _create_untracked(name, total)
        except FileExistsError:
            if not replace:
                raise SinkError(
                    f"sink {name!r} already exists (another writer, or one that crashed: pass replace=True)"
                ) from None
            try:
                stale = _attach_untracked(name)
                stale.close()
                _unlink_untracked(stale)
            except FileNotFoundError:
                pass
            self._shm = _create_untracked(name, total)
        except (OSError, ValueError) as exc:
            raise SinkError(f"sink {name!r}: cannot create shared memory of {total} bytes: {exc}") from None
        self._layout = _Layout(self._shm.buf, self.slots, header_bytes, slot_bytes, self._shape, self._dtype)
        h = self._layout.header
        h["version"] = VERSION if fmt == "rgba8" else 2
        h["header_bytes"] = header_bytes
        h["width"], h["height"], h["channels"], h["slots"] = (
            self.width,
            self.height,
            self.channels,
            self.slots,
        )
        h["slot_bytes"] = slot_bytes
        h["write_count"] = 0
        h["closed"] = 0
        h["pixel_format"] = PIXEL_FORMATS[fmt][0]
        memory_fence()
        h["magic"] = MAGIC  # last: a reader that sees the magic sees a complete header
        memory_fence()
        self._count = 0
        self._closed = False

    @property
    def write_count(self) -> int:
        return self._count

    def write(self, frame_no: int, time_ns: int, array: np.ndarray) -> int:
        """Publish one frame; returns its write number (1, 2, ...)."""
        if self._closed:
            raise SinkError(f"sink {self.name!r} written after close()")
        a = np.asarray(array)
        shape = (self.height, self.width, self.channels)
        if self.format == "rgb10_a2" and a.shape == shape and a.dtype == np.uint16:
            from stagectl.render.gl.readback import pack_rgb10_a2

            a = pack_rgb10_a2(a)
        if a.shape != self._shape or a.dtype != self._dtype:
            want = f"{self._shape} {self._dtype}" + (f" (or {shape} uint16 codes)" if self.format == "rgb10_a2" else "")
            raise SinkError(f"sink {self.name!r}: {self.format} frame must be {want}, got {a.shape} {a.dtype}")
        L = self._layout
        n = self._count + 1
        slot = (n - 1) % self.slots
        seq = int(L.seq[slot])
        L.seq[slot] = seq + 1  # odd: being written
        memory_fence()
        np.copyto(L.pixels[slot], a)
        L.frame_no[slot] = int(frame_no)
        L.time_ns[slot] = int(time_ns)
        L.write_no[slot] = n
        memory_fence()
        L.seq[slot] = seq + 2  # even: complete
        memory_fence()
        L.header["write_count"] = n
        self._count = n
        return n

    def close(self, *, unlink: bool = True) -> None:
        """Mark the ring closed for readers, unmap it and (default) unlink it; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._layout.header["closed"] = 1
        memory_fence()
        self._layout = None  # drop the numpy views before unmapping
        try:
            self._shm.close()
        except BufferError:  # pragma: no cover - a caller still holds a view
            pass
        if unlink:
            try:
                _unlink_untracked(self._shm)
            except FileNotFoundError:
                pass

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __enter__(self) -> SinkWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------- reader


class SinkReader:
    """Attaches to the ring ``name`` (SinkError if there is none, or it is not a stagectl sink).

    :meth:`latest` returns the newest complete frame as a :class:`SinkFrame` ``(frame_no, time_ns, pixels)``
    (``pixels`` a private copy, or ``out``), or None before the first write; :meth:`read` a given write number
    while it is still in the ring. Both retry torn reads (``retries`` counts them).
    """

    def __init__(self, name: str, *, timeout_s: float = 0.0) -> None:
        self.name = name
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._shm = _attach_untracked(name)
                break
            except FileNotFoundError:
                if time.monotonic() >= deadline:
                    raise SinkError(f"sink {name!r} does not exist (is the renderer running?)") from None
                time.sleep(0.005)
        self._layout = None
        try:
            size = self._shm.size
            if size < _TABLE_OFFSET:
                raise SinkError(f"sink {name!r}: {size} bytes is too small for a stagectl sink")
            # the writer stores the magic last; a reader that attaches within microseconds of creation waits
            for _ in range(2000):
                fields = struct.unpack_from(_HEADER_STRUCT, self._shm.buf, 0)
                if fields[0] == MAGIC:
                    break
                time.sleep(0.0005)
            else:
                raise SinkError(f"sink {name!r} is not a stagectl sink (bad magic {fields[0]!r})")
            memory_fence()
            fields = struct.unpack_from(_HEADER_STRUCT, self._shm.buf, 0)
            _, version, header_bytes, width, height, channels, slots, slot_bytes = fields[:8]
            code = fields[10]
            if version not in VERSIONS:
                raise SinkError(f"sink {name!r}: version {version}, this reader reads versions "
                                f"{', '.join(map(str, VERSIONS))}")
            if code not in _FORMAT_OF_CODE or (version == 1 and code != 0):
                raise SinkError(f"sink {name!r}: pixel format {code} is not one this reader knows")
            self.format = _FORMAT_OF_CODE[code]
            self.width, self.height, self.channels, self.slots = width, height, channels, slots
            self._shape, self._dtype = _pixel_shape(self.format, height, width, channels)
            frame_bytes = int(np.prod(self._shape)) * self._dtype.itemsize
            if (
                slots < 1
                or header_bytes + slots * slot_bytes > size
                or slot_bytes < frame_bytes
            ):
                raise SinkError(
                    f"sink {name!r}: inconsistent header ({width}x{height}x{channels}, {slots} slots "
                    f"of {slot_bytes} bytes from {header_bytes}) for a segment of {size} bytes"
                )
            self._layout = _Layout(self._shm.buf, slots, header_bytes, slot_bytes, self._shape, self._dtype)
        except BaseException:
            self._layout = None
            self._shm.close()
            raise
        self.retries = 0

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of a frame's pixels: ``(H, W, channels)``, or ``(H, W)`` packed words for ``rgb10_a2``."""
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def write_count(self) -> int:
        """Frames the writer has published so far."""
        n = int(self._layout.header["write_count"])
        memory_fence()
        return n

    @property
    def closed(self) -> bool:
        """True once the writer has closed the ring (no more frames will come)."""
        return bool(self._layout.header["closed"])

    def _copy(self, write_no: int, out: np.ndarray) -> SinkFrame | None:
        """One attempt at copying write ``write_no``; None when torn or no longer (not yet) in its slot."""
        L = self._layout
        slot = (write_no - 1) % self.slots
        s1 = int(L.seq[slot])
        if s1 & 1:
            return None
        memory_fence()
        np.copyto(out, L.pixels[slot])
        frame_no, time_ns, held = int(L.frame_no[slot]), int(L.time_ns[slot]), int(L.write_no[slot])
        memory_fence()
        if int(L.seq[slot]) != s1 or held != write_no:
            return None
        return SinkFrame(frame_no, time_ns, out, write_no)

    def _out(self, out: np.ndarray | None) -> np.ndarray:
        if out is None:
            return np.empty(self.shape, self._dtype)
        if out.shape != self.shape or out.dtype != self._dtype or not out.flags.c_contiguous:
            raise SinkError(f"sink {self.name!r}: out must be C-contiguous {self.shape} {self._dtype}")
        return out

    def read(
        self, write_no: int, out: np.ndarray | None = None, *, max_retries: int = 100
    ) -> SinkFrame | None:
        """Write number ``write_no`` (1-based) if it is published and not yet overwritten, else None."""
        if write_no < 1 or write_no > self.write_count or write_no <= self.write_count - self.slots:
            return None
        out = self._out(out)
        for _ in range(max_retries):
            got = self._copy(write_no, out)
            if got is not None:
                return got
            self.retries += 1
            if write_no <= self.write_count - self.slots:
                return None  # overwritten meanwhile
            time.sleep(0)
        return None

    def latest(self, out: np.ndarray | None = None, *, max_retries: int = 1000) -> SinkFrame | None:
        """The newest complete frame ``(frame_no, time_ns, pixels copy)``, or None before the first write."""
        out = self._out(out)
        for _ in range(max_retries):
            n = self.write_count
            if n == 0:
                return None
            got = self._copy(n, out)
            if got is not None:
                return got
            self.retries += 1
            time.sleep(0)
        raise SinkError(
            f"sink {self.name!r}: no consistent frame after {max_retries} tries (writer too fast?)"
        )

    def wait(self, after: int = 0, timeout_s: float = 1.0, out: np.ndarray | None = None) -> SinkFrame | None:
        """The newest frame once ``write_count > after`` (polling), or None after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while self.write_count <= after:
            if time.monotonic() >= deadline or self.closed:
                return None
            time.sleep(0.0002)
        return self.latest(out)

    def close(self) -> None:
        """Detach (never unlinks: the writer owns the segment); idempotent."""
        if getattr(self, "_layout", None) is None:
            return
        self._layout = None
        try:
            self._shm.close()
        except BufferError:  # pragma: no cover - a caller still holds a view
            pass

    def __del__(self) -> None:
        self.close()

    def __enter__(self) -> SinkReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------- snapshots


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write ``(H, W, 3 or 4)`` (row 0 = top, RGB(A)) uint8 or uint16 as PNG; SinkError on failure."""
    import cv2

    path = Path(path)
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] not in (3, 4) or img.dtype not in (np.uint8, np.uint16):
        raise SinkError(f"{path}: PNG needs (H, W, 3 or 4) uint8 or uint16, got {img.shape} {img.dtype}")
    bgr = cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA if img.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    try:
        ok = cv2.imwrite(str(path), bgr)
    except cv2.error as exc:
        raise SinkError(f"{path}: cannot write PNG: {str(exc).strip().splitlines()[-1]}") from None
    if not ok:
        raise SinkError(f"{path}: cannot write PNG (does the folder exist and is it writable?)")
    return path


def exr_supported() -> bool:
    """True when this OpenCV build can write OpenEXR (it enables the codec through the environment)."""
    import cv2

    from stagectl.render.content import enable_openexr

    enable_openexr()
    try:
        ok, _ = cv2.imencode(".exr", np.zeros((1, 1, 3), np.float32))
        return bool(ok)
    except cv2.error:
        return False


def write_exr(path: str | Path, image: np.ndarray, *, half: bool = True) -> Path:
    """Write ``(H, W, 3 or 4)`` linear-light floats (row 0 = top, RGB(A)) as OpenEXR, half floats by default.

    Raises SinkError when OpenCV's EXR codec is unavailable (``OPENCV_IO_ENABLE_OPENEXR=0`` in the
    environment, or a build without OpenEXR) or the file cannot be written.
    """
    import cv2

    from stagectl.render.content import enable_openexr

    path = Path(path)
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] not in (3, 4) or img.dtype.kind != "f":
        raise SinkError(f"{path}: EXR needs (H, W, 3 or 4) floats, got {img.shape} {img.dtype}")
    enable_openexr()
    img32 = np.ascontiguousarray(img, dtype=np.float32)
    bgr = cv2.cvtColor(img32, cv2.COLOR_RGBA2BGRA if img.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_EXR_TYPE, cv2.IMWRITE_EXR_TYPE_HALF if half else cv2.IMWRITE_EXR_TYPE_FLOAT]
    try:
        ok = cv2.imwrite(str(path), bgr, params)
    except cv2.error as exc:
        raise SinkError(f"{path}: cannot write EXR: {str(exc).strip().splitlines()[-1]}") from None
    if not ok:
        raise SinkError(f"{path}: cannot write EXR (does the folder exist and is it writable?)")
    return path
