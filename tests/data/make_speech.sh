#!/usr/bin/env bash
# Regenerates the speech clips the transcribe tests, the benchmark and `bidistream invoke --audio` use.
# Synthetic speech, made here, never downloaded: espeak-ng's Klatt voice (pocketsphinx's acoustic model
# recognises it far better than espeak's default voice), resampled by sox to what the model decodes:
# 16 kHz, mono, 16-bit PCM, with 0.5 s of silence before and 1.0 s after so the end of speech is seen.
# Needs: apt-get install espeak-ng sox. The WAVs are committed; tests never run this script.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
voice="en-us+klatt2"
words_per_minute=160
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# say TEXT OUT.wav: one sentence with silence around it.
say() {
    espeak-ng -v "$voice" -s "$words_per_minute" -w "$scratch/raw.wav" "$1"
    sox -D "$scratch/raw.wav" -r 16000 -c 1 -b 16 "$2" pad 0.5 1.0
}

# The evaluation set: everyday sentences, one clip each; transcripts.tsv holds the reference text.
manifest="$here/speech/transcripts.tsv"
mkdir -p "$here/speech"
: >"$manifest"
index=0
while IFS= read -r sentence; do
    index=$((index + 1))
    name="$(printf 's%02d.wav' "$index")"
    say "$sentence" "$here/speech/$name"
    printf '%s\t%s\n' "$name" "$sentence" >>"$manifest"
done <<'SENTENCES'
please call me back tomorrow morning
the weather is nice today
i would like to order a large pizza
turn on the lights in the kitchen
we need to buy some milk and bread
the meeting starts at ten o'clock
my phone number has changed
can you send me the report by friday
the train to boston leaves at noon
open the door and let the dog out
she is reading a book in the garden
how much does this cost
SENTENCES

# Two utterances with a long pause between them: two final results.
say "turn on the lights in the kitchen" "$scratch/first.wav"
say "the weather is nice today" "$scratch/second.wav"
sox -D "$scratch/first.wav" "$scratch/second.wav" "$here/two-utterances.wav"

# Three seconds of near silence: quiet white noise at about -60 dBFS, as from an idle microphone.
sox -D -n -r 16000 -c 1 -b 16 "$here/silence.wav" synth 3 whitenoise vol 0.001

# The bundled clip for `bidistream invoke --audio`, `bidistream local` and the smoke test.
cp "$here/speech/s01.wav" "$repo/bidistream/data/speech-sample.wav"
