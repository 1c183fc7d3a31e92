"""Speech synthesis with libespeak-ng, driven through ctypes (no system package needed).

The pip package ``espeakng-loader`` ships ``libespeak-ng.so`` and its data folder. We load
the library, initialise it in synchronous mode (``AUDIO_OUTPUT_SYNCHRONOUS``:
``espeak_Synth`` returns when all audio has gone through the callback) and collect the int16
samples the synth callback hands us. A voice is a language (accent) plus an optional variant
(``"en-us+f3"``: timbre, formants, breathiness); ``espeak_SetParameter`` sets the speaking
rate (words per minute), the base pitch and the pitch range (0-100).

Determinism. libespeak-ng keeps global state between calls (wave generator phase, buffers):
the same request gives slightly different samples depending on what the process synthesised
before, while a *fresh* process that makes the same sequence of requests gives identical
samples. ``synthesize_batch`` therefore runs each batch of requests, in order, in a fresh
child process (this file run as a script; it imports only NumPy), so a corpus is a function
of its request list alone.
"""

from __future__ import annotations

import ctypes
import json
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
EE_OK = 0
# espeak_PARAMETER (speak_lib.h)
ESPEAK_RATE, ESPEAK_VOLUME, ESPEAK_PITCH, ESPEAK_RANGE = 1, 2, 3, 4
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1

RATE_RANGE = (80, 450)  # words per minute that espeak-ng accepts
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                   ctypes.c_void_p)


def check_request(text: str, voice: str, rate: int, pitch: int, pitch_range: int) -> None:
    """Raise ``ValueError`` for a request espeak-ng cannot honour."""
    if not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
        raise ValueError(f"rate must lie in {RATE_RANGE} words per minute, got {rate}")
    for name, value in (("pitch", pitch), ("pitch_range", pitch_range)):
        if not 0 <= value <= 100:
            raise ValueError(f"{name} must lie in [0, 100], got {value}")
    if not text.strip():
        raise ValueError("text to synthesise is empty")
    if not voice or any(c.isspace() for c in voice):
        raise ValueError(f"voice must be a name such as 'en-us+f3', got {voice!r}")


class EspeakSynthesizer:
    """A handle on libespeak-ng in this process (the library keeps global state: one per
    process, see ``get``). ``synthesize`` returns int16 samples at ``sample_rate`` (22050 Hz).
    """

    _instance: EspeakSynthesizer | None = None
    _instance_lock = threading.Lock()

    def __init__(self):
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib = self._lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                          ctypes.c_int]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint,
                                     ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                     ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                     espeakng_loader.get_data_path().encode(), 0)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {rate})")
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        self._lock = threading.Lock()

        def collect(wav, n, _events):
            if n > 0 and wav:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0  # 0 = keep synthesising

        self._callback = _SYNTH_CALLBACK(collect)  # keep a reference: C holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        lib.espeak_ng_SetRandSeed(0)  # breath/aspiration noise of some variants uses rand()

    @classmethod
    def get(cls) -> EspeakSynthesizer:
        """The process-wide synthesiser (created on first use)."""
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def synthesize(self, text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50,
                   pitch_range: int = 50) -> np.ndarray:
        """int16 samples of ``text`` spoken by ``voice`` at ``rate`` wpm and ``pitch`` (0-100).

        The samples also depend on what this process synthesised before (module docstring);
        use ``synthesize_batch`` for reproducible audio.
        """
        check_request(text, voice, rate, pitch, pitch_range)
        with self._lock:
            lib = self._lib
            if lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
                raise ValueError(f"espeak-ng has no voice {voice!r}; use a language such as "
                                 f"'en-us' or 'en-gb-scotland', optionally with a variant "
                                 f"such as '+f3' or '+m2'")
            lib.espeak_SetParameter(ESPEAK_RATE, int(rate), 0)
            lib.espeak_SetParameter(ESPEAK_PITCH, int(pitch), 0)
            lib.espeak_SetParameter(ESPEAK_RANGE, int(pitch_range), 0)
            data = text.encode() + b"\0"
            self._chunks = []
            status = lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8,
                                      None, None)
            chunks, self._chunks = self._chunks, []
            if status != EE_OK:
                raise RuntimeError(f"espeak_Synth failed with status {status}")
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


def synthesize_batch(requests: Sequence[dict[str, Any]], *,
                     timeout: float = 600.0) -> tuple[list[np.ndarray], int]:
    """Synthesise ``requests`` (dicts with ``text``, ``voice``, ``rate``, ``pitch``,
    ``pitch_range``) in order in a fresh process; ``(list of int16 arrays, sample_rate)``.

    The result depends only on the request list (see the module docstring).
    """
    payload = []
    for r in requests:
        req = {"text": r["text"], "voice": r["voice"], "rate": int(r.get("rate", 175)),
               "pitch": int(r.get("pitch", 50)), "pitch_range": int(r.get("pitch_range", 50))}
        check_request(**req)
        payload.append(req)
    proc = subprocess.run([sys.executable, __file__], input=json.dumps(payload).encode(),
                          capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise ValueError(f"espeak-ng synthesis failed: {message[-1] if message else '?'}")
    out, buf = [], memoryview(proc.stdout)
    (sample_rate, count), pos = struct.unpack_from("<qq", buf, 0), 16
    for _ in range(count):
        (n,) = struct.unpack_from("<q", buf, pos)
        pos += 8
        out.append(np.frombuffer(buf[pos:pos + 2 * n], dtype="<i2").copy())
        pos += 2 * n
    if len(out) != len(payload):
        raise RuntimeError(f"synthesis returned {len(out)} of {len(payload)} utterances")
    return out, sample_rate


def _serve() -> None:
    """Child process: read requests as JSON from stdin, write ``rate, n, (len, int16s)*``."""
    requests = json.loads(sys.stdin.buffer.read().decode())
    synth = EspeakSynthesizer.get()
    out = sys.stdout.buffer
    out.write(struct.pack("<qq", synth.sample_rate, len(requests)))
    for r in requests:
        samples = synth.synthesize(**r).astype("<i2")
        out.write(struct.pack("<q", samples.size))
        out.write(samples.tobytes())
    out.flush()


if __name__ == "__main__":
    try:
        _serve()
    except ValueError as err:
        print(err, file=sys.stderr)
        sys.exit(2)
