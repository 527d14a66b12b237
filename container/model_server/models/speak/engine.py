"""espeak-ng through its C API (ctypes), from the ``espeakng-loader`` wheel.

The wheel bundles ``libespeak-ng.so`` (1.52) and its whole ``espeak-ng-data`` folder, so nothing is
installed from apt and nothing is downloaded at run time. libespeak-ng keeps one global synthesizer
per process and is not thread-safe: every call into it happens on the one thread that owns the
``Engine`` (see ``SpeakModel``). In synchronous mode ``espeak_Synth`` returns when a text is spoken,
and calls the synth callback on that same thread with about ``CHUNK_MS`` of audio at a time, so audio
can go out while the rest of the sentence is still being made, and a barge-in can stop it mid-way.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass

import espeakng_loader  # type: ignore[import-untyped]

AUDIO_OUTPUT_SYNCHRONOUS = 2
#: Without it, espeak-ng calls exit() when its data cannot be read, which would end the whole server.
ESPEAK_INITIALIZE_DONT_EXIT = 0x8000
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1
#: A sentence-final pause: without it the last phoneme is cut short (and recognised far worse).
ESPEAK_ENDPAUSE = 0x1000
EE_OK = 0
SYNTH_FLAGS = ESPEAK_CHARS_UTF8 | ESPEAK_ENDPAUSE
#: espeak_PARAMETER values (speak_lib.h).
ESPEAK_RATE = 1
ESPEAK_PITCH = 3
#: Milliseconds of audio per synth callback: small enough to stream, large enough to be cheap.
CHUNK_MS = 100

SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EngineError(RuntimeError):
    """libespeak-ng refused a call (its data is missing, or a voice is unknown)."""


@dataclass(frozen=True)
class EspeakVoice:
    """What espeak-ng is told before it speaks: a voice with a variant, a speed and a pitch."""

    name: str  # e.g. "en-us+f3": language voice, then "+" and a variant from espeak-ng-data/voices/!v
    words_per_minute: int
    pitch: int  # 0-100, 50 is the voice's own


#: Called with each chunk of 16-bit mono samples; returning False stops the text being spoken.
AudioSink = Callable[[bytes], bool]


class Engine:
    """One process's espeak-ng. Call every method from the same single thread."""

    def __init__(self) -> None:
        self._lib: ctypes.CDLL | None = None
        self._callback = SYNTH_CALLBACK(self._on_audio)  # kept referenced: libespeak-ng holds a pointer
        self._sink: AudioSink | None = None
        self._voice: EspeakVoice | None = None
        self._stopped = False
        self.sample_rate = 0
        self.version = ""

    def load(self) -> None:
        """Load the library and its data; the sample rate it synthesizes at is known after this."""
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        lib.espeak_Info.restype = ctypes.c_char_p
        data_path = espeakng_loader.get_data_path().encode()
        # espeak-ng looks for "<path>/espeak-ng-data"; the loader names that folder itself.
        rate = lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, CHUNK_MS, data_path.rsplit(b"/", 1)[0], ESPEAK_INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise EngineError(f"espeak_Initialize failed ({rate}) with data at {data_path.decode()}")
        lib.espeak_SetSynthCallback(self._callback)
        self._lib = lib
        self.sample_rate = rate
        self.version = (lib.espeak_Info(None) or b"unknown").decode()

    def check_voice(self, voice: EspeakVoice) -> None:
        """Raise ``EngineError`` unless espeak-ng can load ``voice`` (done for every voice at load)."""
        self._select(voice)

    def speak(self, text: str, voice: EspeakVoice, sink: AudioSink) -> bool:
        """Speak ``text`` in ``voice``, handing every chunk of samples to ``sink`` as it is made.

        Returns False if ``sink`` stopped it. Blocks until the text is spoken (or stopped).
        """
        lib = self._require()
        self._select(voice)
        data = text.encode()
        self._sink = sink
        self._stopped = False
        try:
            status = lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, SYNTH_FLAGS, None, None)
        finally:
            self._sink = None
        if status != EE_OK and not self._stopped:
            raise EngineError(f"espeak_Synth failed ({status})")
        return not self._stopped

    def _select(self, voice: EspeakVoice) -> None:
        if voice == self._voice:
            return
        lib = self._require()
        self._voice = None
        if lib.espeak_SetVoiceByName(voice.name.encode()) != EE_OK:
            raise EngineError(f"espeak-ng has no voice {voice.name!r}")
        lib.espeak_SetParameter(ESPEAK_RATE, voice.words_per_minute, 0)
        lib.espeak_SetParameter(ESPEAK_PITCH, voice.pitch, 0)
        self._voice = voice

    def _on_audio(self, samples: ctypes._Pointer[ctypes.c_short], count: int, events: int | None) -> int:
        sink = self._sink
        if sink is None:
            return 1
        if count > 0 and samples and not sink(ctypes.string_at(samples, count * 2)):
            self._stopped = True
            return 1  # non-zero: espeak-ng stops this text
        return 0

    def _require(self) -> ctypes.CDLL:
        if self._lib is None:
            raise RuntimeError("Engine.load() has not run")
        return self._lib
