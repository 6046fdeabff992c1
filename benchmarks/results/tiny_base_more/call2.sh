#!/bin/bash
# Issue 24, next GPU call (written 2026-12-05, not yet run: no machine was free): the shipped base (call.sh's
# image-to-video run) trained on, alone on the H200, on fresh toy identities (--seed 2), same settings. Score it on
# the CPU with identity_recipe_probe.py (LTXIC_TINY_DIR pointing at a copy of data_samples/tiny with the new weights)
# and benchmarks/identity_eval.py before shipping it (benchmarks/README.md, "The tiny base trained on").
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
W=/root/w; mkdir -p $W
python3 -m ltxic.models.tiny_pretrain --out $W/i2v2 --device cuda --from-codecs data_samples/tiny \
  --transformer-from data_samples/tiny --first-frame-p 0.1 --seed 2 --latent-pool 6144 --batch 512 --steps 3000 \
  --lr 2e-4 --max-train-seconds ${TRAIN_S:-370} --workers 16 > $W/i2v2.log 2>&1
tr '\r' '\n' < $W/i2v2.log | grep -v "^\s*$" | grep -v "render" | grep -v Warning | tail -n 12 > $OUT/i2v2.log
mkdir -p $OUT/i2v2 && cp $W/i2v2/pretrain_record.json $W/i2v2/transformer.safetensors $W/i2v2/text_encoder.safetensors $W/i2v2/vocab.json $OUT/i2v2/
