#!/bin/bash
# Issue 24, GPU call C (2026-12-05, evening; the session's last device seconds): call B's "warm" transformer (532
# steps on the 8x codec's latents) trained on alone, on the codec with call B's fine-tuned decoder (.whl/c8_dec; the
# encoder is call A's, so the latents are the same). Comes back as one tar.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
W=/root/w; mkdir -p $W
python3 -m ltxic.models.tiny_pretrain --out $W/more --device cuda --from-codecs .whl/c8_dec --transformer-from .whl/warm \
  --first-frame-p 0.1 --seed 4 --latent-pool 2048 --batch 256 --steps 2000 --lr 3e-4 --max-train-seconds ${TRAIN_S:-120} \
  --workers 14 > $W/more.log 2>&1
tr '\r' '\n' < $W/more.log | grep -v "^\s*$" | grep -v "render" | grep -v Warning | tail -n 6 > $OUT/more.log
tar -C $W/more -cf $OUT/more.tar pretrain_record.json transformer.safetensors text_encoder.safetensors
