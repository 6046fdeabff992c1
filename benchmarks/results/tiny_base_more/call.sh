#!/bin/bash
# Issue 24, GPU call (2026-12-05): more stage-2 pretraining of the shipped tiny base, on fresh toy identities
# (--seed 1), side by side on one H200: plain, and with image-to-video (the first latent frame given clean at
# timestep 0 for 10% of clips, ltx-trainer's default share). Does a longer-trained base keep a reference face
# while the person moves (walking clips score 0.1-0.45 where still ones score 0.6-0.86)? Run from the repository
# root with ltx-core and pydantic's wheels in .whl (benchmarks/README.md, "Wheels for the GPU run").
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
S=${TRAIN_S:-280}
W=/root/w; mkdir -p $W
run() {  # name, first-frame share
  python3 -m ltxic.models.tiny_pretrain --out $W/$1 --device cuda --from-codecs data_samples/tiny \
    --transformer-from data_samples/tiny --first-frame-p $2 --seed 1 --latent-pool 4096 --batch 512 --steps 2000 \
    --lr 2e-4 --max-train-seconds $S --workers 8 > $W/$1.log 2>&1
  tr '\r' '\n' < $W/$1.log | grep -v "^\s*$" | grep -v "render" | grep -v Warning | tail -n 12 > $OUT/$1.log
  mkdir -p $OUT/$1 && cp $W/$1/pretrain_record.json $W/$1/transformer.safetensors $W/$1/text_encoder.safetensors $W/$1/vocab.json $OUT/$1/
}
run plain 0 &
run i2v 0.1 &
wait
