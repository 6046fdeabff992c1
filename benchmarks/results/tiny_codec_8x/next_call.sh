#!/bin/bash
# The next GPU call for a sharper tiny kit (not run yet): one 8x video codec (16 latent channels) with the whole GPU
# for stage 1, then stage 2 on it. Copy ltxic/ (with an empty ltxic/__init__.py: the machine lacks the course's
# packages), data_samples/tiny/audio_codec.safetensors and the ltx-core 1.0.0 wheel (whl/) into a carried folder,
# run this from there; it writes the shipped files and the records under $OUT.
START=$(date +%s)
LIMIT=${LIMIT:-540}
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site whl/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1
W=/root/w; mkdir -p $W
python3 -m ltxic.models.tiny_pretrain --out $W/c16 --device cuda --spatial 8 --latent-channels 16 \
    --audio-codec-from data_samples/tiny --codec-pool 1024 --codec-batch 24 --codec-steps 20000 --codec-lr 1e-3 \
    --max-codec-seconds ${CODEC_S:-240} --steps 0 --latent-pool 8 --workers 16 > $W/c16.log 2>&1
grep -o "'codec_eval_after[^}]*}" $W/c16.log
T=$(( LIMIT - ($(date +%s) - START) - 100 ))
python3 -m ltxic.models.tiny_pretrain --out $W/final --device cuda --from-codecs $W/c16 --latent-pool 4096 --batch 256 \
    --steps 4000 --lr 5e-4 --max-train-seconds $T --workers 16 2>&1 | tr '\r' '\n' | grep -v "render\|encode" > $W/final.log
tail -n 3 $W/final.log
cp $W/final/transformer.safetensors $W/final/video_codec.safetensors $W/final/text_encoder.safetensors \
   $W/final/pretrain_record.json $W/final/vocab.json $OUT/
cp $W/c16/pretrain_record.json $OUT/stage1_record.json
