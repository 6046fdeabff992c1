"""Stage 4: training an identity IC-LoRA from a YAML config.

* :mod:`~ltxic.training.config`: ``load_config`` / ``TrainingConfig`` (every problem listed with its fix);
* :mod:`~ltxic.training.trainer`: ``train(config)``: the dataset check (:mod:`~ltxic.training.dataset_gate`: a
  dataset with validation errors is refused unless overridden), cache, then the training loop
  (:mod:`~ltxic.training.loop`), checkpoints, validation clips;
* :mod:`~ltxic.training.cache`: latents and text features computed once, encoders freed before training;
* :mod:`~ltxic.training.checkpoints`: atomic, resumable checkpoints;
* :mod:`~ltxic.training.speed`: compiled blocks and selective recompute; :mod:`~ltxic.training.distributed`:
  several GPUs (DDP or FSDP2).
"""
