#!/bin/bash
# Issue 24, GPU call 2 (2026-12-04): call 1 showed the shipped codec's layout plateaus near 27.4 dB even with its
# encoder training. Does a wider latent at the same 8x8 grid (32 channels instead of 16: the course's token count
# unchanged) reach 30 dB? Two codecs from scratch side by side, differing in the peak learning rate only.
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
S=${CODEC_S:-380}
W=/root/w; mkdir -p $W
run() {  # name, peak learning rate
  python -m ltxic.models.tiny_pretrain --out $W/$1 --device cuda --latent-channels 32 --spatial 16 \
    --audio-codec-from data_samples/tiny --latent-noise 0.05 --codec-pool 1536 --codec-batch 16 --codec-steps 60000 \
    --codec-lr $2 --max-codec-seconds $S --steps 0 --latent-pool 8 --workers 8 > $W/$1.log 2>&1
  tr '\r' '\n' < $W/$1.log | grep -v "^\s*$" | grep -v "render" | tail -n 3 > $OUT/$1.log
  cp $W/$1/pretrain_record.json $OUT/${1}_record.json
}
run c32_lr1e-3 1e-3 &
run c32_lr2e-3 2e-3 &
wait
