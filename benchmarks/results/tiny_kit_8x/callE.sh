#!/bin/bash
# Issue 24, GPU call E (2026-12-06, an H100): call D's recipe from kit/ (call D's base), with one clean latent frame
# appended per clip on half of the steps (outside the loss):
#   kf:   a frame of the clip itself at its own positions (frame 0 half the time): ltx-core's keyframe conditioning;
#   shot: a frame of the same person from another shot (another room, light, framing) at frame 0's positions: the
#         way an IC reference portrait enters, with a room the target does not share.
# Call D showed that plain text-to-video training makes the IC-LoRA read the reference less. This asks whether a base
# that has learned to read appended frames (kf), or the person in them (shot), gives lesson 04's LoRA the face.
# What ran: this script as is (TRAIN_S=380): kf trained 1240 steps; shot ran out of memory beside it (kf held 57.6 GiB:
# the two sequence lengths fragment the allocator), so shot ran alone in a second call with the budget left:
#   SHOT=0.5 NAME=nextE_shot TRAIN_S=185 bash benchmarks/results/tiny_kit_8x/callD.sh     (615 steps)
# On one H100 run them one at a time (or on an H200 side by side).
D="$(dirname "$0")/callD.sh"
KF=0.5 NAME=nextE_kf WORKERS=7 TRAIN_S=${TRAIN_S:-430} bash "$D" &
sleep 20  # the first has installed the wheels and copied the shared inputs
SHOT=0.5 NAME=nextE_shot WORKERS=7 TRAIN_S=${TRAIN_S:-430} bash "$D" &
wait
