#!/usr/bin/env bash
# Regenerates the broader evaluation set that bench/bench_accuracy.py scores (tests never run this).
# Synthetic speech, made here, never downloaded: espeak-ng's default English voices (en-us, en-gb) and
# female variants of them, plus the Klatt voice of tests/data/speech for comparison, at 140 to 190
# words a minute; then the same sentences with white and pink noise at 20 and 10 dB SNR. sox resamples
# to what the model decodes (16 kHz, mono, 16-bit PCM) and pads 0.3 s of silence before, 0.6 s after.
# None of these sentences is in tests/data/speech, so tuning on one set is checked by the other.
# Needs: apt-get install espeak-ng sox. The WAVs are committed (about 3.5 MB); sox -R makes noise repeatable.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

voices=(en-us en-gb en-us+f3 en-gb+f4 en-us+klatt2)
rates=(140 155 165 180 190)
sentences=(
    "could you book a table for two at seven"
    "the store closes early on sunday"
    "please remind me to water the plants"
    "what time does the next bus arrive"
    "i left my keys on the kitchen table"
)
# Noisy copies: each condition once per sentence, the voice and rate rotating so every voice is heard.
noises=(white:20 pink:20 white:10 pink:10)

manifest="$here/transcripts.tsv"
rm -f "$here"/*.wav
printf 'file\tvoice\twpm\tnoise\tsnr_db\ttext\n' >"$manifest"

# say VOICE WPM TEXT OUT.wav: one sentence, 16 kHz mono 16-bit, with silence around it.
say() {
    espeak-ng -v "$1" -s "$2" -w "$scratch/raw.wav" "$3"
    sox -D "$scratch/raw.wav" -r 16000 -c 1 -b 16 "$4" pad 0.3 0.6
}

# rms FILE: the RMS amplitude of FILE (of its speech only: silence would lower the SNR's reference).
rms() {
    sox "$1" -n stat 2>&1 | awk '/RMS +amplitude/ {print $3}'
}

# noisy CLEAN.wav KIND SNR OUT.wav: CLEAN plus KIND noise scaled to SNR dB below the speech's RMS.
noisy() {
    local speech_rms noise_rms duration gain
    sox "$1" "$scratch/speech-only.wav" silence 1 0.01 0.1% reverse silence 1 0.01 0.1% reverse
    speech_rms="$(rms "$scratch/speech-only.wav")"
    duration="$(soxi -D "$1")"
    sox -R -D -n -r 16000 -c 1 -b 16 "$scratch/noise.wav" synth "$duration" "${2}noise" vol 0.5
    noise_rms="$(rms "$scratch/noise.wav")"
    gain="$(awk -v s="$speech_rms" -v n="$noise_rms" -v snr="$3" 'BEGIN {print s / (n * 10 ^ (snr / 20))}')"
    sox -D -m -v 1 "$1" -v "$gain" "$scratch/noise.wav" -b 16 "$4"
}

for s in "${!sentences[@]}"; do
    for v in "${!voices[@]}"; do
        rate="${rates[$(((s + v) % ${#rates[@]}))]}"
        name="$(printf 's%d-%s-%d.wav' "$((s + 1))" "${voices[$v]/+/-}" "$rate")"
        say "${voices[$v]}" "$rate" "${sentences[$s]}" "$here/$name"
        printf '%s\t%s\t%s\tnone\t\t%s\n' "$name" "${voices[$v]}" "$rate" "${sentences[$s]}" >>"$manifest"
    done
    for n in "${!noises[@]}"; do
        kind="${noises[$n]%%:*}"
        snr="${noises[$n]##*:}"
        v=$(((s + n) % 4)) # the four default-voice variants, not Klatt
        rate="${rates[$(((s + v) % ${#rates[@]}))]}"
        clean="$(printf 's%d-%s-%d.wav' "$((s + 1))" "${voices[$v]/+/-}" "$rate")"
        name="${clean%.wav}-$kind$snr.wav"
        noisy "$here/$clean" "$kind" "$snr" "$here/$name"
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "${voices[$v]}" "$rate" "$kind" "$snr" "${sentences[$s]}" \
            >>"$manifest"
    done
done
