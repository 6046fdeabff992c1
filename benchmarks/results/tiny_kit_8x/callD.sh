#!/bin/bash
# Issue 24, GPU call D (2026-12-06, ran on an H100 with TRAIN_S=440 NAME=nextD): the 8x kit's transformer trained on
# alone, on the same codec. Call D started from call C's kit (1269 steps at batch 256 on the 8x codec's latents, its
# record more_record.json); kit/ now holds call D's result and record, so FROM (default kit/) chains a further call.
# README.md says why another call like this is not worth it. A fifth of the clips give their first latent frame
# clean (0.1 before): attending from noisy tokens to clean ones is the skill an IC reference needs. Needs only the wheels in .whl (see
# callA.sh); comes back as one tar (record, transformer, text encoder) to score on the CPU as README.md says.
[ -d /tmp/site/ltx_core ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
K=benchmarks/results/tiny_kit_8x; FROM=${FROM:-$K/kit}; NAME=${NAME:-next}
W=/root/w; mkdir -p $W/codecs $W/base
cp data_samples/tiny/video_codec.safetensors data_samples/tiny/audio_codec.safetensors $W/codecs/   # the 8x codec (dec_record.json), shipped
cp $K/c8_16ch_record.json $W/codecs/pretrain_record.json   # the codec's stage-1 facts travel into the new record
cp $FROM/transformer.safetensors $FROM/text_encoder.safetensors $W/base/
if [ -f $FROM/pretrain_record.json ]; then cp $FROM/pretrain_record.json $W/base/transformer_record.json
else cp $K/more_record.json $W/base/transformer_record.json; fi   # the base's history
python3 -m ltxic.models.tiny_pretrain --out $W/$NAME --device cuda --from-codecs $W/codecs --transformer-from $W/base \
  --first-frame-p ${FF:-0.2} --keyframe-p ${KF:-0} --other-shot-p ${SHOT:-0} --face-weight ${FACEW:-1} ${CLOSEUP:+--other-shot-closeup} --seed ${SEED:-5} --latent-pool 4096 --batch 256 --steps 4000 --lr 3e-4 \
  --max-train-seconds ${TRAIN_S:-430} --workers ${WORKERS:-14} > $W/$NAME.log 2>&1
tr '\r' '\n' < $W/$NAME.log | grep -v "^\s*$" | grep -v "render" | grep -v Warning | tail -n 6 > $OUT/$NAME.log
tar -C $W/$NAME -cf $OUT/$NAME.tar pretrain_record.json transformer.safetensors text_encoder.safetensors
