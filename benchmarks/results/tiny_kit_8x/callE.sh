#!/bin/bash
# Issue 24, GPU call E (2026-12-06): call D's recipe from kit/ (call D's base), with keyframe conditioning on half of
# the steps: one latent frame of each clip appended as clean tokens at its own positions (frame 0 half the time), the
# way ltx-core's keyframe conditioning appends frames and the way an IC reference portrait enters. Call D showed
# that plain text-to-video training makes the IC-LoRA read the reference less; this asks whether a base that has
# learned to read appended frames gives lesson 04's LoRA the reference's face.
KF=${KF:-0.5} NAME=${NAME:-nextE} TRAIN_S=${TRAIN_S:-470} exec bash "$(dirname "$0")/callD.sh"
