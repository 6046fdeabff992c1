"""fp8 block weights in host memory during training (ltxic.models.offload.stream_block_weights, model.block_offload)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import trainer_standins as standins
from safetensors.torch import load_file

import ltxic
from ltxic.training import loop
from ltxic.models.lora import LoRALinear, inject_lora, upcast_linear
from ltxic.models.transformer import quantize_fp8
from ltxic.models.strategies import collate


def test_an_fp8_linear_keeps_no_upcast_copy_for_backward_and_gets_the_same_gradient() -> None:
    torch.manual_seed(0)
    weight = torch.randn(64, 32).to(torch.float8_e4m3fn)
    bias = torch.randn(64).to(torch.float8_e4m3fn)
    x = torch.randn(5, 32, dtype=torch.bfloat16, requires_grad=True)
    F.linear(x, weight.to(torch.bfloat16), bias.to(torch.bfloat16)).square().sum().backward()
    expected, x.grad = x.grad, None
    kept: list[torch.dtype] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t.dtype) or t, lambda t: t):
        y = upcast_linear(x, weight, bias)
        y.square().sum().backward()
    assert torch.equal(x.grad, expected)
    assert torch.bfloat16 not in kept[:1] and kept[0] == torch.float8_e4m3fn  # the stored weight, not a bf16 copy


def _train(tmp_path, name: str, offload: bool):
    model = ltxic.build_transformer("tiny", seed=0)
    quantize_fp8(model)
    inject_lora(model, standins.LORA)
    during: list[int] = []  # the fp8 weight's storage while its block runs (hooks run in registration order)
    linear = model.transformer_blocks[0].attn1.to_q
    assert isinstance(linear, LoRALinear) and linear.weight.dtype == torch.float8_e4m3fn
    options = standins.options(tmp_path / name, 3, 3, gradient_checkpointing=True, block_offload=offload)
    if offload:  # streamed before training: run_training's own call keeps this streaming
        ltxic.models.offload.stream_block_weights(model, "cpu")
    model.transformer_blocks[0].register_forward_pre_hook(lambda m, a: during.append(linear.weight.data_ptr()))
    result = loop.run_training(model, standins.make_samples(), standins.strategy(), options,
                                  save_lora=standins.save_adapter, collate=collate)
    return result, during, linear.weight.data_ptr()


def test_streamed_fp8_blocks_train_exactly_like_resident_ones(tmp_path) -> None:
    resident, during_r, after_r = _train(tmp_path, "resident", offload=False)
    streamed, during_s, after_s = _train(tmp_path, "streamed", offload=True)
    assert streamed.losses == resident.losses
    a, b = load_file(str(resident.lora_path)), load_file(str(streamed.lora_path))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0)
    # resident: one storage throughout; streamed: a fresh copy on every visit (forward and recompute), and the
    # host copy back in place between visits
    assert set(during_r) == {after_r}
    assert after_s not in during_s and len(set(during_s)) > 1


def test_run_training_streams_when_asked_and_says_so(tmp_path, capfd) -> None:
    model = ltxic.build_transformer("tiny", seed=0)
    quantize_fp8(model)
    inject_lora(model, standins.LORA)
    options = standins.options(tmp_path / "run", 2, 2, gradient_checkpointing=True, block_offload=True)
    result = loop.run_training(model, standins.make_samples(), standins.strategy(), options,
                                  save_lora=standins.save_adapter, collate=collate)
    assert all(torch.isfinite(torch.tensor(result.losses)))
    assert "of fp8 block weights wait in host memory" in capfd.readouterr().err
    # a second run on the same model keeps the streaming it has (hooks twice would swap weights twice)
    hooks = len(model.transformer_blocks[0]._forward_pre_hooks)
    assert ltxic.models.offload.stream_block_weights(model, "cpu") > 0
    assert len(model.transformer_blocks[0]._forward_pre_hooks) == hooks


def test_block_offload_needs_fp8_weights_and_full_recompute(tmp_path) -> None:
    with pytest.raises(ValueError, match="block_offload needs optimization.gradient_checkpointing: true"):
        standins.options(tmp_path / "a", 2, 2, gradient_checkpointing="auto", block_offload=True)
    with pytest.raises(ValueError, match="block_offload and optimization.compile"):
        standins.options(tmp_path / "b", 2, 2, gradient_checkpointing=True, compile=True, block_offload=True)
    model = ltxic.build_transformer("tiny", seed=0)  # bfloat16/float32 weights: nothing to stream
    inject_lora(model, standins.LORA)
    with pytest.raises(loop.TrainingError, match="set model.fp8: true"):
        loop.run_training(model, standins.make_samples(), standins.strategy(),
                             standins.options(tmp_path / "c", 2, 2, gradient_checkpointing=True, block_offload=True),
                             save_lora=standins.save_adapter, collate=collate)


def test_a_compiled_fp8_lora_linear_keeps_the_fp8_weight_not_a_bf16_copy() -> None:
    # traced through, the compiler's partitioner kept the upcast weight for backward (0.5 GiB per 22B block)
    torch.manual_seed(0)
    base = torch.nn.Linear(256, 512, bias=False)
    base.weight.data = base.weight.data.to(torch.float8_e4m3fn)
    layer = LoRALinear(base, rank=4, alpha=4.0)
    x = torch.randn(8, 256, dtype=torch.bfloat16, requires_grad=True)
    compiled = torch.compile(layer, fullgraph=True)
    kept: list[tuple[tuple[int, ...], torch.dtype]] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append((tuple(t.shape), t.dtype)) or t, lambda t: t):
        y = compiled(x)
    y.float().square().sum().backward()
    assert ((512, 256), torch.float8_e4m3fn) in kept
    assert not [k for k in kept if k[0] in ((512, 256), (256, 512)) and k[1] != torch.float8_e4m3fn]
    expected = F.linear(x.detach(), base.weight.to(torch.bfloat16)) + layer.scale * F.linear(
        F.linear(x.detach().float(), layer.lora_A), layer.lora_B).to(torch.bfloat16)
    torch.testing.assert_close(y.detach(), expected, rtol=2e-2, atol=2e-2)
