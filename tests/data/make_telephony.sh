#!/usr/bin/env bash
# Regenerates the telephony and browser versions of the evaluation set (speech/, made by make_speech.sh)
# that tests/transcribe/test_telephony.py scores:
#   telephony/mulaw-8k/sNN.ulaw      raw G.711 mu-law, 8 kHz mono: what Twilio and other telephone media
#                                   streams send (no header, as their media messages carry it)
#   telephony/linear16-48k/sNN.wav   16-bit PCM WAV, 48 kHz mono: what browsers and WebRTC capture
# sox resamples with its very high quality 'rate -v' (a passband to about 7.9 of the clips' 8 kHz, which
# the acoustic model uses; the 8 kHz version loses everything above 4 kHz) and encodes; -D turns
# dithering off so the output is the same on every run.
# Needs: apt-get install sox. The files are committed; tests never run this script.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$here/telephony/mulaw-8k" "$here/telephony/linear16-48k"
cut -f1 "$here/speech/transcripts.tsv" | while IFS= read -r name; do
    stem="${name%.wav}"
    sox -D "$here/speech/$name" -t ul -c 1 "$here/telephony/mulaw-8k/$stem.ulaw" rate -v 8000
    sox -D "$here/speech/$name" -c 1 -b 16 -e signed-integer "$here/telephony/linear16-48k/$stem.wav" rate -v 48000
done
