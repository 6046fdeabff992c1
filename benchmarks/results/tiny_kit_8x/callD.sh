#!/bin/bash
# Issue 24, the next GPU call (not run yet): the 8x kit's transformer (kit/, 1269 steps at batch 256 on the 8x
# codec's latents) trained on alone, on the same codec. Needs only the wheels in .whl (see callA.sh); comes back as
# one tar (record, transformer, text encoder) to score on the CPU as README.md says, before shipping.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
K=benchmarks/results/tiny_kit_8x
W=/root/w; mkdir -p $W/codecs $W/base
cp $K/kit/video_codec.safetensors data_samples/tiny/audio_codec.safetensors $W/codecs/
cp $K/c8_16ch_record.json $W/codecs/pretrain_record.json   # the codec's stage-1 facts travel into the new record
cp $K/kit/transformer.safetensors $K/kit/text_encoder.safetensors $W/base/
cp $K/more_record.json $W/base/transformer_record.json      # and the base's history
python3 -m ltxic.models.tiny_pretrain --out $W/next --device cuda --from-codecs $W/codecs --transformer-from $W/base \
  --first-frame-p 0.1 --seed 5 --latent-pool 4096 --batch 256 --steps 4000 --lr 3e-4 \
  --max-train-seconds ${TRAIN_S:-430} --workers 14 > $W/next.log 2>&1
tr '\r' '\n' < $W/next.log | grep -v "^\s*$" | grep -v "render" | grep -v Warning | tail -n 6 > $OUT/next.log
tar -C $W/next -cf $OUT/next.tar pretrain_record.json transformer.safetensors text_encoder.safetensors
