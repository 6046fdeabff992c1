"""``ltxic`` command line: one subcommand per step of the course.

Each subcommand is a thin wrapper over the package function of the same name; the logic lives there.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any


def _cmd_env(args: argparse.Namespace) -> int:
    from ltxic.course.envcheck import environment_report

    report = environment_report()
    for key, value in report.items():
        print(f"{key:>14}: {value}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ltxic.course.demo import run_demo

    run_demo(args.out)
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from ltxic.data.assets import check_disk_space, download_assets, format_plan, format_status, load_manifest, plan_download

    manifest = load_manifest(args.manifest)
    if args.status:
        from ltxic.data.assets import asset_status

        rows = asset_status(args.root, only=args.only, manifest=manifest)
        print(format_status(rows))
        return 0 if all(r.state in ("ok", "unverified") for r in rows) else 1
    plan = plan_download(args.root, only=args.only, manifest=manifest)
    print(format_plan(plan))
    if args.dry_run:
        return 0 if plan.fits else 1
    check_disk_space(plan)
    import os

    # HF_ENDPOINT (a hub mirror) is read when the command runs, not when huggingface_hub was imported
    rows = download_assets(args.root, only=args.only, manifest=manifest, max_workers=args.workers,
                           endpoint=os.environ.get("HF_ENDPOINT"))
    print(format_status(rows))
    return 0


def _cmd_captions(args: argparse.Namespace) -> int:
    from ltxic.data.captions import check_dataset_captions, clean_dataset

    if args.write_clean:
        cleaned = clean_dataset(args.dataset, args.write_clean)
        print(cleaned.to_markdown())
        print(f"wrote {cleaned.out_path} and {cleaned.report_path}")
        flagged = cleaned.after.flagged
    else:
        report = check_dataset_captions(args.dataset)
        print(report.to_markdown())
        flagged = report.flagged
    return 1 if args.strict and flagged else 0


def _cmd_validate_config(args: argparse.Namespace) -> int:
    from ltxic.training.config import ConfigError, load_config

    try:
        cfg = load_config(args.config, check_files=not args.no_check_files)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 1
    buckets = ", ".join(str(b) for b in cfg.dataset.resolution_buckets)
    print(f"{args.config}: ok ({cfg.training_strategy.name}, {cfg.optimization.steps} steps, "
          f"LoRA rank {cfg.lora.rank}, buckets {buckets})")
    return 0


def _cmd_pair(args: argparse.Namespace) -> int:
    from ltxic.data.pairing import pair_folder
    from ltxic.identity.agreement import face_matcher

    rules = None
    if args.rules:
        import yaml

        rules = yaml.safe_load(open(args.rules, encoding="utf-8"))
    out = pair_folder(args.clips, args.out, consent=args.consent, voice_dir=args.voice, identity=args.identity,
                      reference=args.reference, reference_image=args.reference_image,
                      eval_identities=args.eval_identity or (), eval_fraction=args.eval_fraction, rules=rules,
                      face_matcher=face_matcher)
    print(f"wrote {out}; check it with `ltxic validate {out}`")
    from ltxic.data.pairing import disagreeing_clips

    for name, clip, score, threshold in disagreeing_clips(out):
        print(f"{clip}: shows another face than most clips of {name!r} ({score:.3f} < {threshold:.2f}); remove it or "
              "move it to its person's folder", file=sys.stderr)
    return 0


def _cmd_validate_dataset(args: argparse.Namespace) -> int:
    from ltxic.data.dataset import DatasetError
    from ltxic.identity.dataset_check import validate_dataset
    from ltxic.data.report_plots import save_report_plots

    try:
        report = validate_dataset(args.dataset, check_media=not args.no_media, buckets=args.bucket,
                                  progress=True, identity=args.identity, embedders=args.embedders,
                                  face_weights=args.face_weights, voice_weights=args.voice_weights)
    except (DatasetError, ValueError, ImportError) as err:
        print(err, file=sys.stderr)
        return 1
    print(report.to_markdown(clip_table=args.clips))
    if args.plots:
        print(f"plots: {save_report_plots(report, args.plots)}")
    if args.json:
        from ltxic.io.files import write_json_atomic

        print(f"report: {write_json_atomic(args.json, report.to_dict())}")
    return 0 if report.ok else 1


def _cmd_course(args: argparse.Namespace) -> int:
    import yaml

    from ltxic.course.runner import CourseError, run_course

    params = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"-p {item!r}: write KEY=VALUE, e.g. -p config_name=ltx23_h100", file=sys.stderr)
            return 2
        params[key] = yaml.safe_load(value)  # as papermill -y: numbers, booleans and lists keep their type
    try:
        runs = run_course(args.out, only=args.only, notebooks_dir=args.notebooks, parameters=params, threads=args.threads)
    except CourseError as err:
        print(err, file=sys.stderr)
        return 1
    for run in runs:
        print(f"{run.notebook.stem}: {run.seconds:.1f} s -> {run.output}")
    return 0


def _cmd_book(args: argparse.Namespace) -> int:
    from ltxic.course.book import build_book
    from ltxic.course.runner import CourseError

    try:
        print(f"book written to {build_book(args.out, args.executed, execute=not args.no_execute) / 'index.html'}")
    except CourseError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


def _cmd_toy_make_dataset(args: argparse.Namespace) -> int:
    from ltxic.toy.make_samples import make_dataset, random_identities

    people = random_identities(args.identities + args.eval_identities, args.seed)
    path = make_dataset(
        args.out, people[: args.identities], people[args.identities :], clips_per_identity=args.clips_per_identity,
        width=args.width, height=args.height, frames=args.frames, fps=args.fps, seed=args.seed,
    )
    print(f"wrote {path}")
    return 0


def _cmd_toy_pretrain(args: argparse.Namespace) -> int:
    from ltxic.models.tiny_pretrain import main as pretrain_main

    pretrain_main(args.args)
    return 0


def _cmd_toy_embedders(args: argparse.Namespace) -> int:
    from ltxic.identity.toy_embedders import main as embedders_main

    return embedders_main(args.args)


def _cmd_toy_locator(args: argparse.Namespace) -> int:
    from ltxic.identity.toy_face_locator import main as locator_main

    locator_main(args.args)
    return 0


def _sample_models(args: argparse.Namespace) -> Any:
    """The kit ``ltxic sample`` runs: LTX-2.3 from a ComfyUI tree or explicit files, else the tiny kit."""
    import torch

    from ltxic.models.kit import Models

    if args.comfyui_root or args.checkpoint:
        dtype = torch.float32 if args.dtype == "float32" else torch.bfloat16
        files = dict(checkpoint=args.checkpoint, gemma_root=args.gemma, spatial_upsampler=args.spatial_upsampler,
                     distilled_lora=args.distilled_lora)
        if args.comfyui_root:
            return Models.from_comfyui(args.comfyui_root, **files, device=args.device, dtype=dtype, fp8=args.fp8,
                                       offload_text_encoder=args.offload_text_encoder)
        checkpoint = files.pop("checkpoint")
        gemma = files.pop("gemma_root")
        return Models.ltx23(checkpoint, gemma, **files, device=args.device, dtype=dtype, fp8=args.fp8,
                            offload_text_encoder=args.offload_text_encoder)
    return Models.tiny(args.tiny_dir, device=args.device or "cpu")


def _cmd_sample(args: argparse.Namespace) -> int:
    from ltxic.data.dataset import ConsentError
    from ltxic.sampling.generate import GenerateConfig, generate, read_prompts_file
    from ltxic.models.lora import LoRAError
    from ltxic.io.media import MediaError
    from ltxic.models.transformer import CheckpointError

    prompts = list(args.prompt or [])
    if args.prompts_file:
        prompts += read_prompts_file(args.prompts_file)
    if not prompts:
        print("ltxic sample: give --prompt TEXT or --prompts-file FILE", file=sys.stderr)
        return 2
    consent = None
    if args.consent:
        import json

        consent = json.loads(open(args.consent, encoding="utf-8").read())
    try:
        from ltxic.sampling.guidance import Guidance
        from ltxic.sampling.pipeline import generate_two_stage

        models = _sample_models(args)
        base = Guidance.off() if args.distilled else Guidance.for_kit(models.name)  # the distilled model runs unguided
        guidance = base.with_overrides(
            video_cfg=args.video_cfg, audio_cfg=args.audio_cfg, video_stg=args.stg, audio_stg=args.stg,
            video_stg_blocks=args.stg_blocks, audio_stg_blocks=args.stg_blocks, video_modality=args.modality,
            audio_modality=args.modality, video_rescale=args.rescale, audio_rescale=args.rescale,
            reference_video=args.reference_guidance, reference_audio=args.audio_reference_guidance)
        config = GenerateConfig(width=args.width, height=args.height, frames=args.frames, fps=args.fps, steps=args.steps,
                                distilled=args.distilled, seed=args.seed, strength=args.strength, guidance=guidance,
                                negative_prompt=args.negative_prompt, batch_guidance=args.batch_guidance)
        run = generate_two_stage if args.two_stage else generate
        results = run(models, prompts, lora=args.lora, reference_image=args.reference_image,
                      reference_audio=args.reference_audio, consent=consent, dataset=args.dataset,
                      identity=args.identity, config=config, out_dir=args.out)
        for r in results:
            print(f"wrote {r.path}")
        if args.two_stage:
            from ltxic.course.runner import lesson_stages

            print(lesson_stages(args.out))
    except (ConsentError, LoRAError, MediaError, CheckpointError, ValueError) as err:
        print(f"ltxic sample: {err}", file=sys.stderr)
        return 1
    return 0


def _cmd_export_comfyui(args: argparse.Namespace) -> int:
    from ltxic.sampling.comfyui import api_path, export_workflow
    from ltxic.models.lora import LoRAError

    try:
        path = export_workflow(args.lora, args.out, reference_image=args.reference_image,
                               reference_audio=args.reference_audio, prompt=args.prompt, lora_subfolder=args.lora_subfolder,
                               width=args.width, height=args.height, frames=args.frames)
    except (LoRAError, ValueError, OSError) as err:
        print(f"ltxic export-comfyui: {err}", file=sys.stderr)
        return 1
    from pathlib import Path

    sub = f"{args.lora_subfolder.strip('/')}/" if args.lora_subfolder else ""
    print(f"wrote {path} (UI form: drag it onto the ComfyUI canvas)")
    print(f"wrote {api_path(path)} (API form: POST it to a running ComfyUI's /prompt as {{\"prompt\": ...}})")
    print(f"copy {args.lora} to ComfyUI/models/loras/{sub}{Path(args.lora).name}")
    for ref in (args.reference_image, args.reference_audio):
        if ref:
            print(f"copy {ref} to ComfyUI/input/{Path(ref).name}")
    print("needs the ComfyUI-LTXVideo node pack (LTXICLoRALoaderModelOnly, LTXAddVideoICLoRAGuide)")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from ltxic.training.config import ConfigError
    from ltxic.models.transformer import CheckpointError
    from ltxic.training.trainer import train
    from ltxic.training.loop import TrainingError

    try:
        result = train(args.config, resume=args.resume, allow_invalid_dataset=args.allow_invalid_dataset)
    except (CheckpointError, ConfigError, TrainingError) as err:
        print(f"ltxic train: {err}", file=sys.stderr)
        return 1
    print(f"trained to step {result.step} in {result.seconds:.0f} s; LoRA: {result.lora_path}; metrics: {result.metrics_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ltxic", description="Identity IC-LoRAs for LTX-2.3: the course's tools.")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback above an error about an input (default: the one-line message)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("env", help="print versions, devices and what the course can run here")
    p.set_defaults(func=_cmd_env)

    p = sub.add_parser("demo", help="the main job on the embedded default (tiny model, data_samples/), no downloads")
    p.add_argument("--out", default="outputs/demo", help="where results are written (default: outputs/demo)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("download", help="fetch LTX-2.3 assets into a ComfyUI-style tree (resumable, verified)")
    p.add_argument("--root", default=".", help="tree root; files go to ROOT/models/<folder>/ (default: .)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="asset names to fetch (default: the default set)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and the disk space needed; fetch nothing")
    p.add_argument("--manifest", default=None, help="an asset manifest YAML (default: the one shipped with ltxic)")
    p.add_argument("--workers", type=int, default=4, help="files fetched in parallel (default: 4)")
    p.add_argument("--status", action="store_true", help="only report what is present, missing or corrupt (no network)")
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("captions", help="check dataset captions (traits, vague motion, length, duplicates, names)")
    p.add_argument("dataset", help="a dataset.json")
    p.add_argument("--write-clean", metavar="OUT.json", help="write a copy with rewritten captions and a report")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when any caption is flagged")
    p.set_defaults(func=_cmd_captions)

    p = sub.add_parser("pair", help="make dataset.json from a folder of clips (captions from NAME.txt) and voice recordings")
    p.add_argument("clips", help="folder of clips: one sub-folder per identity, or names like ava_000.mp4")
    p.add_argument("--voices", "--voice", dest="voice", help="folder of voice recordings, named or foldered like the clips")
    p.add_argument("--consent", required=True,
                   help="YAML/JSON consent records per identity (subject, granted_by, media, date, scope)")
    p.add_argument("--out", default="dataset.json", help="dataset.json to write or extend (default: ./dataset.json)")
    p.add_argument("--identity", help="treat every clip as this identity (the consent file may then be one record)")
    p.add_argument("--reference", choices=("sharpest", "first"), default="sharpest",
                   help="reference frame, from the clips that agree on one face: sharpest centred frontal face "
                        "(default) or the first frame of the first agreeing clip")
    p.add_argument("--reference-image", help="a held portrait instead of a frame (single identity only)")
    p.add_argument("--eval-identity", action="append", metavar="NAME", help="an identity held out as 'eval' (repeat)")
    p.add_argument("--eval-fraction", type=float, default=0.0, help="share of each identity's clips split 'eval'")
    p.add_argument("--rules", help="YAML/JSON validation rules to store in dataset.json (e.g. clip_seconds: [1, 10])")
    p.set_defaults(func=_cmd_pair)

    p = sub.add_parser("validate", aliases=["validate-dataset"],
                       help="check files, media, consent and captions of a dataset.json (report, plots)")
    p.add_argument("dataset", help="a dataset.json")
    p.add_argument("--plots", metavar="OUT.png", help="also write the report's plots")
    p.add_argument("--json", metavar="OUT.json", help="also write the report as JSON")
    p.add_argument("--clips", action="store_true", help="add a table of per-clip measurements")
    p.add_argument("--bucket", action="append", metavar="WxHxF", help="training bucket(s) to check against (repeat)")
    p.add_argument("--no-media", action="store_true", help="only check that files exist; do not open them")
    p.add_argument("--identity", action=argparse.BooleanOptionalAction, default=None,
                   help="score every clip's face, voice and lip sync against its references (default: on for real "
                        "footage, off for a synthetic dataset)")
    p.add_argument("--embedders", default="auto", choices=("auto", "real", "toy", "user"),
                   help="identity embedders: auto (toy for a synthetic dataset, else real: pip install -e '.[metrics]'), "
                        "real, toy, or user (with --face-weights / --voice-weights)")
    p.add_argument("--face-weights", metavar="FILE.onnx", help="user embedders: an ArcFace ONNX recogniser (w600k_r50.onnx)")
    p.add_argument("--voice-weights", metavar="DIR", help="user embedders: a folder with an ECAPA embedding_model.ckpt")
    p.set_defaults(func=_cmd_validate_dataset)
    p = sub.add_parser("validate-config", help="check a training YAML and list every problem with its fix")
    p.add_argument("config", help="path to the training config (.yaml)")
    p.add_argument("--no-check-files", action="store_true", help="skip checking that input files exist")
    p.set_defaults(func=_cmd_validate_config)

    toy = sub.add_parser("toy", help="the toy identity world").add_subparsers(dest="toy_command", required=True)
    p = toy.add_parser("make-dataset", help="render a toy dataset (clips, portraits, voice clips, dataset.json)")
    p.add_argument("--identities", type=int, default=8, help="training identities (default 8)")
    p.add_argument("--eval-identities", type=int, default=1, help="held-out identities, split 'eval' (default 1)")
    p.add_argument("--clips-per-identity", type=int, default=16)
    p.add_argument("--out", required=True, help="output folder (dataset.json is written there)")
    p.add_argument("--width", type=int, default=128, help="multiple of 32 (default 128)")
    p.add_argument("--height", type=int, default=128, help="multiple of 32 (default 128)")
    p.add_argument("--frames", type=int, default=49, help="8k+1 frames (default 49)")
    p.add_argument("--fps", type=float, default=24.0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_toy_make_dataset)
    p = toy.add_parser("pretrain", add_help=False,
                       help="pretrain the tiny base (codecs, transformer, text encoder); options: ltxic toy pretrain --help")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_toy_pretrain)
    p = toy.add_parser("embedders", add_help=False,
                       help="train the toy face/voice embedders or measure their EER; options: ltxic toy embedders --help")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_toy_embedders)
    p = toy.add_parser("locator", add_help=False,
                       help="train the face locator the metrics use on decoded frames; options: ltxic toy locator --help")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_toy_locator)

    p = sub.add_parser("course", help="run the course notebooks in order (papermill), executed copies in --out")
    p.add_argument("--out", default="outputs/course", help="where the executed notebooks and the files the lessons write go (default: outputs/course)")
    p.add_argument("--only", nargs="+", metavar="NN", help="run only these lessons, e.g. --only 00 04")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="override a lesson parameter (the GPU value beside each default), e.g. -p steps=6000")
    p.add_argument("--notebooks", default=None, help="the notebooks folder (default: the checkout's notebooks/)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads per lesson kernel (default: 2 without a GPU, one lesson at a time; 0: the environment's)")
    p.set_defaults(func=_cmd_course)

    p = sub.add_parser("book", help="build the course book (HTML, offline) from the executed lessons, with their results")
    p.add_argument("--out", default="book/_build/html", help="output folder (default: book/_build/html)")
    p.add_argument("--executed", default="outputs/course",
                   help="the executed lessons (ltxic course --out); stale or missing ones run first (default: outputs/course)")
    p.add_argument("--no-execute", action="store_true", help="fail instead of running stale or missing lessons")
    p.set_defaults(func=_cmd_book)

    p = sub.add_parser("sample", help="generate clips with an identity IC-LoRA, a reference face and voice "
                                      "(LTX-2.3 with --comfyui-root or --checkpoint/--gemma; else the tiny model)")
    p.add_argument("--lora", help="the trained LoRA (.safetensors)")
    p.add_argument("--reference-image", help="reference face image")
    p.add_argument("--reference-audio", help="reference voice clip (5-15 s of speech)")
    p.add_argument("--prompt", action="append", help="a prompt (repeat for several clips)")
    p.add_argument("--prompts-file", help="one prompt per line")
    p.add_argument("--dataset", help="dataset.json holding the identity's consent record")
    p.add_argument("--identity", help="the identity in --dataset whose consent covers the references")
    p.add_argument("--consent", help="a consent record as JSON (subject, granted_by, media, date, scope)")
    p.add_argument("--out", default="outputs/samples", help="output folder (default: outputs/samples)")
    p.add_argument("--tiny-dir", help="folder of the tiny model files (default: data_samples/tiny)")
    p.add_argument("--comfyui-root", help="LTX-2.3: the ComfyUI tree `ltxic download --root DIR` filled (files found there)")
    p.add_argument("--checkpoint", help="LTX-2.3: the checkpoint (ltx-2.3-22b-dev.safetensors), instead of the tree's")
    p.add_argument("--gemma", help="LTX-2.3: the Gemma 3 folder (Hugging Face layout), instead of the tree's")
    p.add_argument("--spatial-upsampler", help="LTX-2.3: the spatial upscaler file (two stages), instead of the tree's")
    p.add_argument("--distilled-lora", help="LTX-2.3: the distilled LoRA (stage 2), instead of the tree's")
    p.add_argument("--two-stage", action="store_true",
                   help="stage 1 at half size, spatial upscale x2, stage 2 with the distilled LoRA (LTX-2.3's pipeline)")
    p.add_argument("--distilled", action="store_true",
                   help="LTX-2.3: --checkpoint is the distilled model (ltx-2.3-22b-distilled): its 8 fixed steps without "
                        "guidance, and with --two-stage stage 2 on the same model, no distilled LoRA (as ltx-pipelines' "
                        "ICLoraPipeline); guidance flags still apply")
    p.add_argument("--fp8", action="store_true", help="LTX-2.3: fp8 block weights (24 GB cards)")
    p.add_argument("--offload-text-encoder", action="store_true",
                   help="LTX-2.3: stream Gemma's layers from host memory (24 GB cards)")
    p.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16", help="LTX-2.3 weights (default bfloat16)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when there is one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None,
                   help="denoising steps (of stage 1 with --two-stage; default: LTX-2.3 30, tiny 20)")
    p.add_argument("--strength", type=float, default=1.0, help="LoRA strength (default 1.0)")
    # guidance: every flag defaults to the kit's value (ltxic.sampling.guidance.Guidance.for_kit)
    p.add_argument("--video-cfg", type=float, default=None, help="text guidance, video stream (LTX-2.3: 3; tiny: 1 = off)")
    p.add_argument("--audio-cfg", type=float, default=None, help="text guidance, audio stream (LTX-2.3: 7; tiny: 1 = off)")
    p.add_argument("--negative-prompt", default=None,
                   help="the prompt text guidance steers away from (LTX-2.3: ltx-pipelines' default list of artifacts)")
    p.add_argument("--stg", type=float, default=None, help="spatio-temporal guidance, both streams (LTX-2.3: 1; 0 = off)")
    p.add_argument("--stg-blocks", type=int, nargs="+", default=None, help="blocks STG perturbs (LTX-2.3: 28)")
    p.add_argument("--modality", type=float, default=None,
                   help="audio-video modality guidance, both streams (LTX-2.3: 3; 1 = off)")
    p.add_argument("--rescale", type=float, default=None, help="guidance rescale, both streams (LTX-2.3: 0.7; 0 = off)")
    p.add_argument("--batch-guidance", action=argparse.BooleanOptionalAction, default=None,
                   help="run each step's guidance passes as one batch (same result; default off: no faster at LTX-2.3's size on an H200)")
    p.add_argument("--reference-guidance", type=float, default=None,
                   help="identity guidance on the video stream: (with references - without) (LTX-2.3: 0; tiny: 3)")
    p.add_argument("--audio-reference-guidance", type=float, default=None,
                   help="the same on the audio stream (LTX-2.3: 3, as ID-LoRA; tiny: 1)")
    p.add_argument("--frames", type=int, default=25, help="8k+1 frames (default 25)")
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--fps", type=float, default=24.0)
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("export-comfyui", help="write a ComfyUI workflow that runs the LoRA on LTX-2.3 (UI form + API form)")
    p.add_argument("--lora", required=True, help="the trained LoRA (.safetensors)")
    p.add_argument("--out", required=True, help="UI-form workflow to write (.json); the API form goes beside it as *_api.json")
    p.add_argument("--reference-image", help="reference face image (referenced by file name in ComfyUI/input/)")
    p.add_argument("--reference-audio", help="reference voice clip (referenced by file name in ComfyUI/input/)")
    p.add_argument("--prompt", help="the prompt placed in the workflow")
    p.add_argument("--lora-subfolder", default="", help="subfolder of ComfyUI/models/loras/ the LoRA is copied to")
    p.add_argument("--width", type=int, default=768, help="video width (default 768; the sigmas follow the size)")
    p.add_argument("--height", type=int, default=448, help="video height (default 448)")
    p.add_argument("--frames", type=int, default=121, help="8k+1 frames (default 121)")
    p.set_defaults(func=_cmd_export_comfyui)

    p = sub.add_parser("train", help="train an IC-LoRA from a YAML config (checkpoints, validation, metrics)")
    p.add_argument("config", help="the training config (see ltxic/configs/)")
    p.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint in output.dir")
    p.add_argument("--allow-invalid-dataset", action="store_true",
                   help="train even when `ltxic validate` finds errors in the dataset (e.g. a clip of another person); "
                        "the errors overridden are recorded in OUTPUT_DIR/dataset_check.json")
    p.set_defaults(func=_cmd_train)
    return parser


def run_command(name: str, func: Any, args: Any, debug: bool = False) -> int:
    """Run one subcommand; an error about an input becomes one line on stderr and exit status 1.

    The line names the file, what is wrong and the fix (:func:`ltxic.io.errors.input_error_message`); ``debug``
    prints the traceback above it. Errors that are not about an input (bugs) keep their traceback.
    """
    from ltxic.io.errors import input_error_message

    try:
        return int(func(args) or 0)
    except Exception as err:
        message = input_error_message(err)
        if message is None:
            raise
        if debug:
            traceback.print_exc()
        print(f"ltxic {name}: {message}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv[:1]
    if debug:
        argv = argv[1:]
    # the toy training scripts own their options (argparse would take their --help for ours)
    passthrough = {("toy", "pretrain"): _cmd_toy_pretrain, ("toy", "embedders"): _cmd_toy_embedders,
                   ("toy", "locator"): _cmd_toy_locator}
    if tuple(argv[:2]) in passthrough:
        return run_command(" ".join(argv[:2]), passthrough[tuple(argv[:2])], argparse.Namespace(args=argv[2:]), debug)
    args = build_parser().parse_args(argv)
    # large activations come and go every step: growable segments keep the CUDA allocator from fragmenting (read at
    # the first CUDA allocation, so setting it here is in time); a value the user set wins
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    name = args.command if args.command != "toy" else f"toy {args.toy_command}"
    return run_command(name, args.func, args, debug or args.debug)


if __name__ == "__main__":
    sys.exit(main())
