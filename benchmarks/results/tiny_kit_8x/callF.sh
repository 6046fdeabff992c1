#!/bin/bash
# Issue 24, GPU call F (2026-12-06, afternoon): call E's shot recipe from kit/ (call D's base), alone on the card and
# with the face weighted. Call E's shot run (615 steps) learned to ignore the appended shot: its loss with the shot
# equalled the plain loss, and the LoRA on it drew almost no face. Here the face's tokens weigh FACEW (default 5) times
# the rest on steps with a shot appended, so that taking the person from the shot pays more than ignoring the frame.
# The record's fm_eval gives the face-token loss plain and with the shot appended: a base worth a CPU probe has the
# second clearly below the first.
D="$(dirname "$0")/callD.sh"
PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True SHOT=0.5 FACEW=${FACEW:-5} NAME=${NAME:-nextF} TRAIN_S=${TRAIN_S:-440} bash "$D"
