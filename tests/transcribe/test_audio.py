"""Binary frames to samples: odd byte counts, WAV headers split across frames, headers that do not fit."""

from __future__ import annotations

import io
import struct
import wave

import pytest

from model_server.models.transcribe.audio import MAX_HEADER_BYTES, AudioFormat, AudioFormatError, PcmInput
from model_server.models.transcribe.params import Encoding

PCM = bytes(range(200)) * 5  # 1000 bytes, 500 samples


def wav_bytes(pcm: bytes, *, rate: int = 16000, channels: int = 1, width: int = 2) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as clip:
        clip.setnchannels(channels)
        clip.setsampwidth(width)
        clip.setframerate(rate)
        clip.writeframes(pcm)
    return out.getvalue()


def push_all(pieces: list[bytes]) -> bytes:
    audio = PcmInput()
    return b"".join(audio.push(piece) for piece in pieces)


def test_headerless_pcm_passes_through_unchanged() -> None:
    assert push_all([PCM]) == PCM


def test_odd_frame_sizes_keep_every_byte_in_order() -> None:
    pieces = [PCM[offset : offset + 7] for offset in range(0, len(PCM), 7)]
    audio = PcmInput()
    out = [audio.push(piece) for piece in pieces]
    assert all(len(part) % 2 == 0 for part in out)
    assert b"".join(out) == PCM


def test_wav_header_is_stripped_even_when_split_byte_by_byte() -> None:
    data = wav_bytes(PCM)
    audio = PcmInput()
    assert b"".join(audio.push(data[i : i + 1]) for i in range(len(data))) == PCM
    assert audio.header_seen


def test_extra_chunks_before_data_are_skipped() -> None:
    data = wav_bytes(PCM)
    fmt_end = data.index(b"data")
    listing = b"LIST" + struct.pack("<I", 5) + b"INFO!" + b"\0"  # odd size, padded
    assert push_all([data[:fmt_end] + listing + data[fmt_end:]]) == PCM


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"rate": 8000}, "8000 Hz"),
        ({"channels": 2}, "2 channels"),
        ({"width": 1}, "8-bit samples"),
    ],
)
def test_header_for_other_audio_is_refused_with_what_it_says(kwargs: dict[str, int], problem: str) -> None:
    with pytest.raises(AudioFormatError, match=problem):
        push_all([wav_bytes(PCM, **kwargs)])


def test_non_pcm_format_code_is_refused() -> None:
    data = bytearray(wav_bytes(PCM))
    fmt = data.index(b"fmt ") + 8
    data[fmt : fmt + 2] = struct.pack("<H", 3)  # IEEE float
    with pytest.raises(AudioFormatError, match="not PCM"):
        push_all([bytes(data)])


def test_riff_that_never_reaches_data_is_refused_once_too_long() -> None:
    junk = b"RIFF" + struct.pack("<I", 0) + b"WAVE" + b"JUNK" + struct.pack("<I", MAX_HEADER_BYTES * 2)
    with pytest.raises(AudioFormatError, match="without a data chunk"):
        push_all([junk])


def test_audio_that_merely_starts_like_riff_is_audio() -> None:
    assert push_all([b"RI", b"CH" + PCM[:6]]) == b"RICH" + PCM[:6]


def test_header_sets_the_format_the_query_left_out() -> None:
    audio = PcmInput(AudioFormat(), explicit=frozenset())
    stereo = bytes(range(200)) * 4
    assert audio.push(wav_bytes(stereo, rate=8000, channels=2)) == stereo
    assert audio.format == AudioFormat(Encoding.LINEAR16, 8000, 2)


def test_header_contradicting_the_query_is_refused() -> None:
    audio = PcmInput(AudioFormat(Encoding.LINEAR16, 8000, 1), explicit=frozenset({"sample_rate"}))
    with pytest.raises(AudioFormatError, match="16000 Hz; the query declared linear16 at 8000 Hz"):
        audio.push(wav_bytes(PCM))


def test_a_header_rate_outside_the_range_is_refused() -> None:
    with pytest.raises(AudioFormatError, match="96000 Hz"):
        PcmInput(explicit=frozenset()).push(wav_bytes(PCM, rate=96000))


def test_frames_of_several_channels_are_kept_whole() -> None:
    audio = PcmInput(AudioFormat(Encoding.MULAW, 8000, 3))
    out = [audio.push(PCM[offset : offset + 7]) for offset in range(0, 999, 7)]
    assert all(len(part) % 3 == 0 for part in out)
    assert b"".join(out) == PCM[:999]
