#!/bin/bash
# Issue 24, GPU call (2026-12-04): stage 1 continues the shipped tiny video codec (encoder AND decoder, from
# data_samples/tiny, the decoder-tuned 26.87 dB file) instead of the decoder alone: does training the encoder lift the
# held-out PSNR toward 30 dB? Two runs side by side on one H200, differing in the latent noise only. Run from the
# repository root with the carried packages unpacked into /tmp/site (see benchmarks/README.md, "GPU recipe").
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
S=${CODEC_S:-400}
W=/root/w; mkdir -p $W
run() {  # name, latent noise
  python -m ltxic.models.tiny_pretrain --out $W/$1 --device cuda --video-codec-from data_samples/tiny \
    --audio-codec-from data_samples/tiny --latent-noise $2 --codec-pool 1536 --codec-batch 16 --codec-steps 60000 \
    --codec-lr 3e-4 --max-codec-seconds $S --steps 0 --latent-pool 8 --workers 8 > $W/$1.log 2>&1
  tr '\r' '\n' < $W/$1.log | grep -v "^\s*$" | grep -v "render" | tail -n 8 > $OUT/$1.log
  cp $W/$1/pretrain_record.json $OUT/${1}_record.json
  cp $W/$1/video_codec.safetensors $OUT/${1}_video_codec.safetensors
}
run noise005 0.05 &
run noise002 0.02 &
wait
