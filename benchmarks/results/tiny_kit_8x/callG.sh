#!/bin/bash
# Issue 24, GPU call G: continues call F's base (FROM, default callF/: call F's transformer, text encoder and record)
# with the other shots always close-ups (the face as large as in a reference portrait), on 70% of the
# steps, and the face's tokens weighing 20 times the rest on those steps. Call F (weight 5, any framing, 1376 steps)
# brought the face-token loss with a shot appended only to the plain one's (0.866 against 0.871). Ran three times on
# 2026-12-06 (G from callF/, then H and I from the previous result on the same machine: README.md, "Calls G, H, I");
# call I's result is the shipped tiny kit's transformer.
D="$(dirname "$0")/callD.sh"
PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True FROM=${FROM:-$(dirname "$0")/callF} CLOSEUP=1 SHOT=0.7 FACEW=${FACEW:-20} \
  NAME=${NAME:-nextG} TRAIN_S=${TRAIN_S:-380} bash "$D"
