"""Building blocks of the diarize pipeline, each a function of arrays or plain records:
``vad`` (speech regions from frame probabilities), ``clustering`` (speaker windows and labels),
``cues`` (words -> speaker-consistent SRT cues), ``srt`` (parse/write), ``gender`` (pitch),
``guard`` (Whisper hallucination filter)."""
