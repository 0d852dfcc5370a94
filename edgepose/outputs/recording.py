"""``--record FILE.mp4``: the annotated frames as a fragmented MP4 that survives a kill,
a power cut and a full disk, written with PyAV (FFmpeg's libraries).

A plain MP4 keeps its index (the ``moov`` box) at the end, written at close: a killed
run leaves no playable frame. Here the index comes first and empty (``empty_moov``),
every keyframe starts a new fragment (``moof`` + ``mdat``, ``frag_keyframe``), the
encoder makes a keyframe at least every ``keyframe_interval`` seconds, and each fragment
goes to the OS as soon as it is complete (``flush_packets``) and then to the disk
(``fdatasync``, on a thread of its own so the writer never waits for the disk). So a
SIGKILL or a power cut loses at most the fragment in progress. (``flush``: "sync", the
default; "fragment" skips the fdatasync: it survives a kill, not a power cut;
"buffered" is FFmpeg's own 32 KiB buffering, for measurements only.)
A write error (disk full, read-only file system) cuts the file back to the end of its
last complete fragment, so it stays playable with every frame that fitted, and raises
``OutputError`` naming the file.

Codec: H.264 through libx264 (``ultrafast``, ``zerolatency``: no frame is held back in
a look-ahead) when the bundled FFmpeg has it, else MPEG-4 part 2; ``codec`` picks another
encoder FFmpeg knows (``h264_v4l2m2m``, the Pi 4's hardware encoder, is untested here).
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, NoReturn

from edgepose.core.errors import ConfigError, OutputError, describe_error
from edgepose.outputs.base import FrameResult, Output
from edgepose.outputs.files import check_writable_file
from edgepose.outputs.lock import OutputLock

log = logging.getLogger(__name__)

#: encoders tried in this order by ``codec="auto"``
AUTO_CODECS = ("libx264", "mpeg4")
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
FLUSH_POLICIES = ("sync", "fragment", "buffered")


def import_av() -> Any:
    """PyAV, or a one-line error naming the extra that installs it."""
    try:
        import av
    except ImportError:
        raise ConfigError("recording needs PyAV, which is not installed: "
                          "pip install 'edgepose[pi]' (or pip install av)") from None
    return av


_logs_routed = False


def route_ffmpeg_logs(av: Any) -> None:
    """FFmpeg's messages go to the debug log (logger ``edgepose.ffmpeg``), never to
    stderr. Below DEBUG level they are not even collected (PyAV's default)."""
    global _logs_routed
    if _logs_routed or not log.isEnabledFor(logging.DEBUG):
        return
    _logs_routed = True
    target = logging.getLogger("edgepose.ffmpeg")

    class _ToDebug(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            target.debug("%s: %s", record.name, record.getMessage().rstrip())

    libav = logging.getLogger("libav")  # PyAV logs FFmpeg as libav.<component>
    libav.addHandler(_ToDebug())
    libav.setLevel(1)  # PyAV passes on only what this logger's own level lets through
    libav.propagate = False
    av.logging.set_level(av.logging.VERBOSE)


def pick_codec(av: Any, codec: str = "auto") -> str:
    """The encoder to use: ``codec`` if FFmpeg has it, or the first of ``AUTO_CODECS``."""
    names = AUTO_CODECS if codec == "auto" else (codec,)
    for name in names:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # UnknownCodecError, or a decoder-only name
            continue
        return name
    raise ConfigError(f"recording codec {codec!r}: the FFmpeg inside PyAV has no such encoder; "
                      f"pass codec auto ({' or '.join(AUTO_CODECS)})")


def frame_rate(fps: float) -> Fraction:
    """``fps`` as an exact rational: 29.97002997 -> 30000/1001, 30.0 -> 30."""
    return Fraction(fps).limit_denominator(1001)


class _RawFile:
    """The file under the muxer, for PyAV's file-object I/O: every byte FFmpeg hands
    over goes straight to the OS (no Python buffer), all of it or an OSError. The file
    is opened (``opener``) at the first byte, so that a recording whose encoder or muxer
    cannot start leaves an existing file as it was."""

    def __init__(self, opener: Callable[[], int]) -> None:
        self._opener = opener
        self.fd = -1
        self.pos = 0
        self.end = 0
        self.discard = False  # after a failure: the muxer's last words go nowhere

    @property
    def opened(self) -> bool:
        return self.fd >= 0

    def _ensure(self) -> None:
        if self.fd < 0:
            self.fd = self._opener()

    def write(self, data: bytes) -> int:
        if self.discard:
            return len(data)
        self._ensure()
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
            self.pos += n
        self.end = max(self.end, self.pos)
        return len(data)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if self.discard:
            return self.pos
        self._ensure()
        self.pos = os.lseek(self.fd, offset, whence)
        return self.pos

    def tell(self) -> int:
        return self.pos


class _Syncer:
    """``fdatasync`` on a thread of its own, asked for after each fragment, so that the
    writer never waits for the disk (an SD card can take a second now and then); a
    failure is reported at the next fragment."""

    def __init__(self, fd: int, name: str) -> None:
        self.fd = fd
        self.error: OSError | None = None
        self._wanted = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"edgepose-sync {name}",
                                        daemon=True)
        self._thread.start()

    def request(self) -> None:
        self._wanted.set()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._stopping:
                return
            try:
                os.fdatasync(self.fd)
            except OSError as err:
                self.error = err

    def stop(self) -> None:
        """Wait for a sync in progress, then end the thread (the fd stays open)."""
        self._stopping = True
        self._wanted.set()
        self._thread.join()


class RecordingOutput(Output):
    """Annotated frames (skeleton drawn by ``annotate``) to a fragmented MP4.

    ``fps`` is the source's frame rate (time base ``1/fps`` exactly, one tick a frame);
    the first frame's size fixes the video's (rounded down to even), later frames are
    scaled to it. Frames that could not be read (``record["error"]``) are left out.
    ``written`` counts the frames in the file: those of complete fragments while
    recording, all of them after ``close()``.
    """

    kind = "mp4"
    blocking = True

    def __init__(self, spec: str, *, fps: float = 30.0, keypoint_threshold: float = 0.3,
                 codec: str = "auto", keyframe_interval: float = 1.0, flush: str = "sync",
                 threads: int = 2, flag: str = "--record", **_: Any) -> None:
        super().__init__(spec)
        self.path = Path(spec).expanduser()
        self.flag = flag
        self._lock = OutputLock(self.path, flag)
        self.fps, self.keypoint_threshold = fps, keypoint_threshold
        self.codec, self.keyframe_interval, self.flush = codec, keyframe_interval, flush
        self.threads = threads
        self.size: tuple[int, int] | None = None  # (width, height) of the video
        self.codec_name = ""
        self._av: Any = None
        self._file: _RawFile | None = None
        self._syncer: _Syncer | None = None
        self._container: Any = None
        self._stream: Any = None
        self._encoded = 0   # frames handed to the encoder
        self._muxed = 0     # packets handed to the muxer
        self._good_end = 0  # file size at the end of the last complete fragment
        self._closed = False
        self._wanted: tuple[int, int, float] = (0, 0, fps)  # the video _start set up
        self._create_failure = ""  # why the file itself could not be created or emptied

    def check(self) -> None:
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and self.fps > 0):
            raise ConfigError(f"{self.flag} {self.path}: fps {self.fps!r} must be a positive "
                              "number of frames per second")
        if not 0.0 <= self.keypoint_threshold <= 1.0:
            raise ConfigError(f"keypoint_threshold {self.keypoint_threshold!r} must be "
                              "between 0 and 1")
        if not self.keyframe_interval > 0:
            raise ConfigError(f"{self.flag} {self.path}: keyframe_interval "
                              f"{self.keyframe_interval!r} must be a positive number of seconds")
        if self.flush not in FLUSH_POLICIES:
            raise ConfigError(f"{self.flag} {self.path}: flush {self.flush!r}: expected one of "
                              f"{', '.join(FLUSH_POLICIES)}")
        check_writable_file(self.path, self.flag, (".mp4",))
        pick_codec(import_av(), self.codec)

    def set_frame_rate(self, fps: float) -> None:
        """Recordings play at the source's own frame rate."""
        self.fps = fps

    def open(self) -> None:
        """Picks the encoder and locks the file against a second writer; the file itself
        is created (replacing an existing one) at the first frame."""
        self._av = av = import_av()
        route_ffmpeg_logs(av)
        self.codec_name = pick_codec(av, self.codec)
        self._lock.acquire()

    def write(self, result: FrameResult) -> None:
        if self.error:
            raise OutputError(self.error)
        if result.record.get("error"):
            return
        from edgepose.render.draw import annotate

        image = annotate(result.image, result.poses, self.keypoint_threshold)
        if self._container is None:
            self._start(image.shape[1], image.shape[0])
        frame = self._av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = self._encoded
        frame.time_base = self._stream.codec_context.time_base
        self._encoded += 1
        try:
            packets = self._stream.encode(frame)
        except Exception as err:
            self._fail(err)
        for packet in packets:
            self._mux(packet)

    def _start(self, width: int, height: int) -> None:
        """Create the file and set up the encoder and the fragmenting muxer."""
        if self._av is None:
            self.open()
        av = self._av
        w, h = max(2, width & ~1), max(2, height & ~1)
        self._file = raw = _RawFile(self._create_file)
        self._wanted = (w, h, self.fps)
        rate = frame_rate(self.fps)
        try:
            flush = "0" if self.flush == "buffered" else "1"
            container = av.open(raw, "w", format="mp4",
                                options={"movflags": MOVFLAGS, "flush_packets": flush})
            stream = container.add_stream(self.codec_name, rate=rate)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            ctx = stream.codec_context
            ctx.time_base = 1 / rate
            ctx.gop_size = max(1, math.floor(float(rate) * self.keyframe_interval))
            ctx.thread_count = self.threads
            if self.codec_name == "libx264":
                stream.options = {"preset": "ultrafast", "tune": "zerolatency",
                                  "x264-params": "scenecut=0"}
            elif self.codec_name == "mpeg4":
                ctx.qscale = 4
                ctx.max_b_frames = 0
            stream.codec_context.open()
        except Exception as err:
            self._fail(err)
        self._container, self._stream, self.size = container, stream, (w, h)
        log.info("recording %s: %dx%d at %s fps with %s", self.path, w, h, rate, self.codec_name)

    def _create_file(self) -> int:
        """Called at the muxer's first byte: create or open the file, lock it (another
        name for it must find it locked), then empty it."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            self.error = f"{self.flag} {self.path}: cannot create it ({describe_error(err)}); check the folder"
            self._create_failure = self.error
            raise OutputError(self.error) from None
        try:
            self._lock.adopt(fd)
            os.ftruncate(fd, 0)
        except (ConfigError, OSError) as err:
            os.close(fd)
            self.error = str(err) if isinstance(err, ConfigError) else \
                f"{self.flag} {self.path}: cannot empty it ({describe_error(err)})"
            self._create_failure = self.error
            raise OutputError(self.error) from None
        if self.flush == "sync":
            self._syncer = _Syncer(fd, str(self.path))
        return fd

    def _mux(self, packet: Any) -> None:
        raw = self._file
        assert raw is not None
        before, muxed = raw.end, self._muxed
        try:
            self._container.mux(packet)
        except Exception as err:
            self._fail(err)
        self._muxed += 1
        if raw.end != before:  # a fragment (or the header) reached the OS
            self._fragment_done(muxed)

    def _fragment_done(self, frames: int) -> None:
        """The file now ends after a complete fragment holding ``frames`` frames."""
        raw = self._file
        assert raw is not None
        if self._syncer is not None:
            if self._syncer.error is not None:
                self._fail(self._syncer.error)
            self._syncer.request()
        self._good_end = raw.end
        self.written = frames

    def _fail(self, err: BaseException) -> NoReturn:
        """Cut the file back to its last complete fragment, stop, raise OutputError."""
        raw = self._file
        kept = self.written
        if raw is not None:
            raw.discard = True
            try:
                if raw.opened:
                    os.ftruncate(raw.fd, self._good_end)
            except OSError as trunc_err:
                log.debug("could not cut %s back: %s", self.path, trunc_err)
        if self._create_failure and (raw is None or not raw.opened):  # the file itself could not be made
            self.error = self._create_failure
        elif raw is None or not raw.opened:  # the encoder or muxer could not start
            left = "left as it was" if self.path.exists() else "not created"
            reason = re.sub(r"^\[Errno -?\d+\] ", "", str(err)).split(":")[0]
            w, h, rate = self._wanted
            self.error = (f"{self.flag} {self.path}: the recording could not start: {self.codec_name} "
                          f"cannot encode {w}x{h} frames at {float(rate):g} fps ({reason[:80]}); "
                          f"the file was {left}")
        else:
            self.error = (f"{self.flag} {self.path}: {describe_error(err)} after {self._encoded} frame(s); "
                          f"the file keeps the first {kept}, playable")
        log.debug("recording failed", exc_info=err)
        raise OutputError(self.error) from None

    def summary(self) -> str:
        return f"{self.flag} {super().summary()}"

    def close(self) -> None:
        """Flush the encoder, write the last fragment and close the file (idempotent).
        Raises ``OutputError`` if that last write fails (the earlier frames stay)."""
        if self._closed:
            return
        self._closed = True
        container, raw = self._container, self._file
        try:
            if container is not None and not self.error:
                try:
                    for packet in self._stream.encode(None):
                        self._mux(packet)
                    before = raw.end if raw is not None else 0
                    container.close()  # the last fragment and the fragment index
                    if raw is not None and raw.end != before:
                        self._fragment_done(self._muxed)
                except OutputError:
                    raise
                except Exception as err:
                    self._fail(err)
        finally:
            self._container = None
            if container is not None and self.error:
                try:
                    container.close()  # frees FFmpeg's state; its writes are discarded
                except Exception as err:
                    log.debug("closing the failed recording %s: %s", self.path, err)
            if self._syncer is not None:
                self._syncer.stop()
                self._syncer = None
            if raw is not None and raw.opened:
                if self.flush == "sync" and not self.error:
                    try:  # the end of the recording is on the disk when close() returns
                        os.fdatasync(raw.fd)
                    except OSError as err:
                        log.warning("%s %s: could not sync the end of the recording to the "
                                    "disk (%s)", self.flag, self.path, describe_error(err))
                os.close(raw.fd)
                self._file = None
            self._lock.release()
