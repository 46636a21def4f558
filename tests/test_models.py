"""Models: shapes, finiteness, learning, baselines' exact behaviour, denoising, attention axes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_config

from stlib.config import ConfigError, build_run_config, model_classes, model_options
from stlib.data import make_batches
from stlib.models import build_model, count_parameters
from stlib.models.layers import AxisAttention, Dropout, future_time_indices, keep_mask, sinusoidal
from stlib.train import compute_loss

MODELS = ["last_value", "historical_average", "stid", "encdec"]


def small_model(name, ds, **kw):
    base = dict(
        name=name, d_model=16, n_heads=2, encoder_depth=1, decoder_depth=1, dropout=0.0, embed_dim=8, num_layers=2
    )
    takes = model_classes()[name].model_fields  # the shared sizes the model takes, then its own options
    shared = {k: v for k, v in base.items() if k in takes and k != "name"}
    return build_model(model_options(name, **{**shared, **kw}), ds)


def first_batch(ds, split="train", batch_size=8):
    return next(iter(make_batches(ds, split, batch_size)))


def adam_steps(model, x, y, ds, steps=3):
    """A few Adam steps on one batch, in training mode."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = compute_loss(model(x), y, ds.mean, ds.std, tiny_config().train)
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("name", MODELS)
def test_output_shape_and_finite(tiny, name):
    torch.manual_seed(0)
    model = small_model(name, tiny).eval()
    x, y = first_batch(tiny)
    out = model(x)
    assert out.shape == (8, 12, tiny.num_sensors, 1)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    "name,kw", [("stid", {}), ("encdec", {}), ("alternating", dict(patch=3, head="linear", encoder_depth=2))]
)
def test_a_few_steps_lower_the_loss(tiny, name, kw):
    torch.manual_seed(0)
    model = small_model(name, tiny, **({} if name == "stid" else {"use_denoising": False}), **kw)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = first_batch(tiny, batch_size=32)
    tc = tiny_config().train
    losses = []
    for _ in range(30):
        loss = compute_loss(model(x), y, tiny.mean, tiny.std, tc)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_last_value_repeats_last_step(tiny):
    x, _ = first_batch(tiny)
    out = small_model("last_value", tiny)(x)
    assert torch.equal(out, x[:, -1:, :, :1].expand_as(out))


def test_historical_average_is_the_training_profile(tiny):
    model = small_model("historical_average", tiny, by_weekday=True)
    x, _ = first_batch(tiny, "test", 4)
    pred = tiny.denormalize(model(x))[..., 0].detach().numpy()  # (4, 12, N)
    s = int(tiny.splits["test"][0])
    rows = tiny.train_rows
    tod, dow, target = tiny.time_of_day[rows], tiny.day_of_week[rows], tiny.target[rows]
    r = s + 12  # first target row of the first test window
    same = (tod == tiny.time_of_day[r]) & (dow == tiny.day_of_week[r])
    for n in range(tiny.num_sensors):
        obs = target[same, n]
        obs = obs[obs != 0]
        if len(obs):
            assert pred[0, 0, n] == pytest.approx(obs.mean(), rel=1e-4)


def test_future_time_indices_wrap_midnight_and_week():
    spd = 288
    x = torch.zeros(1, 12, 1, 3)
    x[0, -1, 0, 1] = 285 / spd  # last input step at slot 285 on a Sunday
    x[0, -1, 0, 2] = 6
    tod, dow = future_time_indices(x, spd, 5)
    assert tod[0, :, 0].tolist() == [286, 287, 0, 1, 2]
    assert dow[0, :, 0].tolist() == [6, 6, 0, 0, 0]


def test_stid_size_matches_the_paper(tiny):
    ds170 = type(tiny)(
        tiny.name,
        np.ones((600, 170, 1), np.float32),
        tiny.start_time,
        5,
        tiny.edges,
        {"train": np.arange(300), "val": np.arange(300, 400), "test": np.arange(400, 500)},
    )
    n = count_parameters(build_model(model_options("stid"), ds170))
    assert 100_000 < n < 130_000  # STID reports 0.12 M parameters on PEMS08


def test_stid_hidden_stream_keeps_one_dtype_under_autocast(tiny):
    torch.manual_seed(0)
    model = build_model(tiny_config(model__name="stid", model__embed_dim=8).model, tiny).eval()
    x, _ = next(iter(make_batches(tiny, "test", 4, torch.device("cpu"))))
    seen = []
    model.layers[1].register_forward_pre_hook(lambda m, args: seen.append(args[0].dtype))
    ref = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x)
    # no float32 stream that every layer casts down and every residual add mixes back up
    assert seen == [torch.float32, torch.bfloat16] and low.dtype == torch.bfloat16
    assert (low.float() - ref).abs().max() < 0.1 * ref.abs().max()


def test_denoising_only_in_training(tiny):
    torch.manual_seed(0)
    model = small_model("encdec", tiny, use_denoising=True, denoise_mask_ratio=0.5)
    x, _ = first_batch(tiny)
    out = model.train()(x)
    assert isinstance(out, tuple) and out[1].ndim == 0 and out[1] > 0
    assert isinstance(model.eval()(x), torch.Tensor)
    value = x[..., :1]
    corrupted = model.corrupt(value)
    assert not torch.equal(corrupted, value)
    model.noise_std = 0.0
    masked = (model.corrupt(value) == 0).float().mean().item()
    assert 0.4 < masked < 0.6  # about denoise_mask_ratio of the steps are masked


def test_denoise_weight_changes_the_loss(tiny):
    """The model weighs its own reconstruction loss; the trainer's loss adds it as given."""
    x, y = first_batch(tiny)
    tc = tiny_config().train
    aux, loss = {}, {}
    for w in (0.0, 0.5, 1.0):
        torch.manual_seed(0)
        model = small_model("encdec", tiny, use_denoising=True, denoise_weight=w).train()
        torch.manual_seed(1)
        out = model(x)
        aux[w], loss[w] = out[1].item(), compute_loss(out, y, tiny.mean, tiny.std, tc).item()
    assert aux[0.0] == 0.0 and aux[1.0] > 0 and aux[0.5] == pytest.approx(0.5 * aux[1.0], rel=1e-6)
    assert loss[0.5] == pytest.approx(loss[0.0] + aux[0.5], rel=1e-5)


@pytest.mark.parametrize("kind", ["fixed", "learned"])
def test_positional_encoding_options(tiny, kind):
    model = small_model("encdec", tiny, pos_encoding=kind)
    learned = [n for n, _ in model.named_parameters() if "pos.table" in n]
    assert bool(learned) == (kind == "learned")
    x, _ = first_batch(tiny)
    assert model.eval()(x).shape[1] == 12


def test_sinusoidal_values():
    pe = sinusoidal(4, 6)
    assert pe[0, 0] == 0 and pe[0, 1] == 1
    assert pe[1, 0] == pytest.approx(np.sin(1.0))
    assert pe[2, 2] == pytest.approx(np.sin(2 / 10000 ** (2 / 6)))


def test_axis_attention_mixes_only_along_its_axis():
    torch.manual_seed(0)
    attn = AxisAttention(8, 2).eval()
    x = torch.randn(2, 5, 4, 8)  # (B, T, N, D)
    x2 = x.clone()
    x2[:, :, 3] += 1.0  # change sensor 3 only
    t1, t2 = attn(x, axis=1), attn(x2, axis=1)
    assert torch.allclose(t1[:, :, :3], t2[:, :, :3], atol=1e-6)  # time attention: sensors independent
    s1, s2 = attn(x, axis=2), attn(x2, axis=2)
    assert not torch.allclose(s1[:, :, :3], s2[:, :, :3], atol=1e-4)  # sensor attention mixes them


def test_axis_attention_matches_reference_softmax():
    torch.manual_seed(0)
    attn = AxisAttention(8, 2).eval()
    x = torch.randn(1, 5, 3, 8)
    out = attn(x, axis=1)
    # reference: per sensor, plain softmax attention over time
    q = attn.q(x)
    k, v = attn.kv(x).chunk(2, dim=-1)
    ref = []
    for n in range(3):
        heads = []
        for h in range(2):
            sl = slice(4 * h, 4 * h + 4)
            w = torch.softmax(q[0, :, n, sl] @ k[0, :, n, sl].T / 2.0, dim=-1)
            heads.append(w @ v[0, :, n, sl])
        ref.append(attn.out(torch.cat(heads, -1)))
    ref = torch.stack(ref, dim=1)  # (T, N, D)
    assert torch.allclose(out[0], ref, atol=1e-5)


def test_d_model_must_divide_by_heads():

    with pytest.raises(ConfigError, match="n_heads"):
        build_run_config({"model": {"name": "encdec", "d_model": 10, "n_heads": 4}})


def test_block_axes_patterns():
    from stlib.models.alternating import block_axes

    assert block_axes("alternating", 4) == [1, 2, 1, 2]
    assert block_axes("stacked", 4) == [1, 1, 2, 2] and block_axes("stacked", 3) == [1, 1, 2]
    assert block_axes("temporal", 3) == [1, 1, 1]
    with pytest.raises(ValueError, match="pattern"):
        block_axes("spiral", 2)


@pytest.mark.parametrize("pattern", ["alternating", "stacked", "temporal"])
def test_alternating_model_shapes_and_spatial_mixing(tiny, pattern):
    torch.manual_seed(0)
    model = small_model(
        "alternating", tiny, pattern=pattern, encoder_depth=2, decoder_depth=2, adaptive_dim=4, use_denoising=False
    ).eval()
    x, _ = first_batch(tiny)
    out = model(x)
    assert out.shape == (8, 12, tiny.num_sensors, 1) and torch.isfinite(out).all()
    x2 = x.clone()
    x2[:, :, 0, 0] += 3.0  # perturb sensor 0 only
    moved = (model(x2) - out)[:, :, 1:].abs().max().item()  # effect on the other sensors
    assert (moved > 1e-5) == (pattern != "temporal")  # only spatial attention lets sensors see each other


def test_adaptive_embedding_adds_parameters(tiny):
    plain = small_model("alternating", tiny, adaptive_dim=0)
    adaptive = small_model("alternating", tiny, adaptive_dim=8)
    extra = count_parameters(adaptive) - count_parameters(plain)
    assert extra == 12 * tiny.num_sensors * 8 + 8 * 16  # (in_steps, N, dim) table + its projection


@pytest.mark.parametrize("p", [0.05, 0.15, 0.5])
def test_keep_mask_rate_matches_p_in_every_lane(p):
    torch.manual_seed(0)
    keep = keep_mask(torch.empty(400_000), p)
    assert keep.dtype == torch.bool and keep.shape == (400_000,)
    # each of the four 16-bit lanes of a random 64-bit word must drop at rate p
    for lane in range(4):
        rate = 1 - keep.view(-1, 4)[:, lane].float().mean().item()
        assert abs(rate - p) < 0.006, (lane, rate)


def test_keep_mask_odd_sizes_and_shapes():
    torch.manual_seed(0)
    for shape in [(1,), (3,), (5, 7), (2, 3, 5, 7)]:
        assert keep_mask(torch.empty(shape), 0.3).shape == shape


def test_dropout_matches_nn_dropout_semantics():
    torch.manual_seed(0)
    x = torch.ones(200_000, requires_grad=True)
    d = Dropout(0.2).train()
    y = d(x)
    kept = y != 0
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.8))  # inverted scaling
    assert abs(y.mean().item() - 1.0) < 0.01  # expectation preserved
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept)  # gradient flows only through kept elements
    assert torch.equal(d.eval()(x), x)  # identity at evaluation
    assert torch.equal(Dropout(0.0).train()(x), x)
    with pytest.raises(ValueError, match="dropout"):
        Dropout(1.0)


def test_dropout_is_seeded():
    x = torch.randn(1000)
    torch.manual_seed(3)
    a = Dropout(0.5).train()(x)
    torch.manual_seed(3)
    b = Dropout(0.5).train()(x)
    assert torch.equal(a, b)


def test_axis_attention_bf16_on_cpu_close_to_fp32():
    torch.manual_seed(0)
    attn = AxisAttention(16, 2).eval()
    x = torch.randn(2, 12, 5, 16)
    ref = attn(x, axis=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = attn(x, axis=1)
    assert low.dtype == torch.bfloat16
    assert (low.float() - ref).abs().max() < 0.05


def test_cpu_attention_under_autocast_runs_in_fp32(monkeypatch):
    # autocast casts SDPA's inputs to bf16 unless it is switched off around the call; the CPU kernel is
    # ~2x slower in bf16 at these shapes, so the fp32 call must reach the kernel as fp32
    import torch.nn.functional as F

    seen = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        out = real(q, k, v, **kw)
        seen.append((q.dtype, out.dtype))
        return out

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    attn = AxisAttention(16, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = attn(torch.randn(2, 12, 5, 16), axis=1)
    assert seen == [(torch.float32, torch.float32)]
    assert y.dtype == torch.bfloat16


def test_attention_in_batch_chunks_matches_one_call():
    from stlib.models.layers import attention

    q, k, v = (torch.randn(10, 2, 5, 4, requires_grad=True) for _ in range(3))
    whole = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    chunked = attention(q, k, v, max_batch=3)  # 4 chunks, the last of 1
    assert torch.allclose(whole, chunked, atol=1e-6)
    g_whole = torch.autograd.grad(whole.square().sum(), (q, k, v))
    g_chunk = torch.autograd.grad(chunked.square().sum(), (q, k, v))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(g_whole, g_chunk))


def test_short_attention_matches_sdpa_values_and_gradients():
    from stlib.models.layers import short_attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(6, 2, 12, 8, requires_grad=True) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    out = short_attention(q, k, v)
    assert torch.allclose(ref, out, atol=1e-5)
    g_ref = torch.autograd.grad(ref.square().sum(), (q, k, v))
    g_out = torch.autograd.grad(out.square().sum(), (q, k, v))
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(g_ref, g_out))
    # dropout on the weights: training outputs differ from the deterministic ones, and stay finite
    dropped = short_attention(q, k, v, dropout_p=0.5)
    assert torch.isfinite(dropped).all() and not torch.allclose(dropped, out)


def test_attn_short_routes_only_short_sequences(tiny, monkeypatch):
    # model.attn_short = 6 on a 6-sensor graph with 12-step windows: the spatial attention (6 long) takes
    # the explicit path, the 12-step temporal and cross attention keep the fused kernel; same forecast
    import stlib.models.layers as layers

    calls = []
    real = layers.short_attention

    def spy(q, k, v, dropout_p=0.0):
        calls.append(tuple(q.shape[-2:]) + (k.shape[-2],))
        return real(q, k, v, dropout_p)

    monkeypatch.setattr(layers, "short_attention", spy)
    assert tiny.num_sensors == 6 and tiny.in_steps == 12
    x, _ = first_batch(tiny)
    torch.manual_seed(0)
    fused = small_model("alternating", tiny, encoder_depth=2, decoder_depth=1, use_denoising=False).eval()
    torch.manual_seed(0)
    short = small_model("alternating", tiny, encoder_depth=2, decoder_depth=1, use_denoising=False, attn_short=6).eval()
    with torch.no_grad():
        ref = fused(x)
        assert calls == []  # default 0: always the fused kernels
        out = short(x)
    assert calls == [(6, 8, 6)]  # encoder T S: only S (6 sensors, head dim 8); the decoder attends over 12 steps
    assert torch.allclose(ref, out, atol=1e-5)


def test_patches_round_trip_and_layout():
    from stlib.models.encdec import from_patches, to_patches

    v = torch.arange(2 * 12 * 5, dtype=torch.float32).view(2, 12, 5, 1)  # (B, T, N, 1)
    p = to_patches(v, 3)
    assert p.shape == (2, 4, 5, 3)
    assert torch.equal(p[1, 2, 4], v[1, 6:9, 4, 0])  # token 2 of sensor 4 = steps 6, 7, 8
    assert torch.equal(from_patches(p), v)


@pytest.mark.parametrize("name", ["encdec", "alternating"])
@pytest.mark.parametrize("patch,head", [(1, "linear"), (3, "decoder"), (3, "linear"), (4, "linear")])
def test_patch_and_linear_head_shapes(tiny, name, patch, head):
    torch.manual_seed(0)
    extra = {"adaptive_dim": 4} if name == "alternating" else {}
    model = small_model(name, tiny, patch=patch, head=head, encoder_depth=2, **extra)
    x, _ = first_batch(tiny)
    model.eval()
    out = model(x)
    assert out.shape == (8, 12, tiny.num_sensors, 1) and torch.isfinite(out).all()
    assert model.encode(x, x[..., :1]).shape[1] == 12 // patch  # tokens per sensor
    model.train()  # denoising on: its reconstruction maps the tokens back to all 12 steps
    pred, aux = model(x)
    assert pred.shape == out.shape and torch.isfinite(aux) and aux.item() > 0


def test_patch_embeds_each_tokens_own_steps(tiny):
    """Token i's value embedding sees steps i*p .. i*p+p-1 only, in order."""
    torch.manual_seed(0)
    model = small_model("alternating", tiny, patch=3, head="linear")
    emb = model.embed
    with torch.no_grad():
        emb.value.weight.zero_()
        emb.value.bias.zero_()
        emb.value.weight[0, 2] = 1.0  # channel 0 copies the last step of each patch
    x, _ = first_batch(tiny)
    v = x[..., :1]
    diff = emb(x, v) - emb(x, torch.zeros_like(v))  # the context (time, node, position) cancels
    assert torch.allclose(diff[..., 0], v[:, 2::3, :, 0], atol=1e-6)
    assert diff[..., 1:].abs().max() == 0


def test_linear_head_has_no_decoder(tiny):
    lin = small_model("alternating", tiny, head="linear", encoder_depth=2, decoder_depth=3, patch=2)
    assert len(lin.decoder) == 0 and lin.queries is None
    assert lin.head.in_features == 6 * 16 and lin.head.out_features == 12  # 6 tokens x d_model -> horizon
    dec = small_model("alternating", tiny, head="decoder", encoder_depth=2, decoder_depth=3, patch=2)
    assert len(dec.decoder) == 3


def test_patch_and_head_config_errors():
    from stlib.config import build_run_config

    with pytest.raises(ConfigError, match=r"model.patch \(5\) must divide data.in_steps \(12\)"):
        build_run_config({"model": {"name": "alternating", "patch": 5}})
    with pytest.raises(ConfigError, match="decoder_depth"):
        build_run_config({"model": {"name": "encdec", "decoder_depth": 0}})
    cfg = build_run_config({"model": {"name": "alternating", "decoder_depth": 0, "head": "linear", "patch": 4}})
    assert cfg.model.head == "linear" and cfg.model.patch == 4
    with pytest.raises(ConfigError, match="model.head"):
        build_run_config({"model": {"head": "mlp"}})


def test_stid_embedding_model_starts_as_its_stid_encoding(tiny):
    """embedding=stid: every block's residual branch starts at zero, so at init the encoder returns the
    embedding itself; training moves the branches away from zero."""
    torch.manual_seed(0)
    model = small_model(
        "alternating", tiny, embedding="stid", patch=3, head="linear", encoder_depth=2, use_denoising=False
    ).eval()
    x, y = first_batch(tiny, batch_size=32)
    assert torch.equal(model.encode(x, x[..., :1]), model.embed(x, x[..., :1]))
    adam_steps(model, x, y, tiny)
    model.eval()
    assert not torch.equal(model.encode(x, x[..., :1]), model.embed(x, x[..., :1]))
    plain = small_model("alternating", tiny, patch=3, head="linear", encoder_depth=2).eval()
    assert not torch.equal(plain.encode(x, x[..., :1]), plain.embed(x, x[..., :1]))  # default init: not identity


def test_stid_embedding_stem_runs_once_per_sensor(tiny):
    """The STID stem sees the whole window, node, time of day and weekday once per sensor: every token of a
    sensor gets the same stem output; the tokens differ only by their own steps and time of day."""
    torch.manual_seed(0)
    model = small_model("alternating", tiny, embedding="stid", patch=4, head="linear", stem_layers=2)
    emb = model.embed
    assert len(emb.stem) == 2 and emb.stem[0][0].in_features == 4 * 8  # 4 x embed_dim, as STID's hidden
    assert emb.proj.in_features == 6 * 8  # stem output (4E) + the token's values (E) + its time of day (E)
    x, _ = first_batch(tiny)
    x2 = x.clone()
    x2[:, -1, :, 0] += 1.0  # the last step: in the last token and in the stem's whole-window series
    e1, e2 = emb(x, x[..., :1]), emb(x2, x2[..., :1])
    assert e1.shape == (8, 3, tiny.num_sensors, 16)
    assert (e1[:, 0] - e2[:, 0]).abs().max() > 1e-6  # token 0 (steps 0..3) moves through the stem
    with torch.no_grad():  # without the series encoding, only the last token sees the change
        emb.series.weight.zero_()
    e1, e2 = emb(x, x[..., :1]), emb(x2, x2[..., :1])
    assert (e1[:, 0] - e2[:, 0]).abs().max() == 0 and (e1[:, -1] - e2[:, -1]).abs().max() > 1e-6


@pytest.mark.parametrize("head,denoise", [("linear", False), ("decoder", True)])
def test_stid_embedding_with_both_heads_and_adaptive(tiny, head, denoise):
    torch.manual_seed(0)
    model = small_model(
        "alternating",
        tiny,
        embedding="stid",
        patch=3,
        head=head,
        encoder_depth=2,
        adaptive_dim=4,
        use_denoising=denoise,
    )
    x, _ = first_batch(tiny)
    out = model(x)
    pred = out[0] if denoise else out
    assert pred.shape == (8, 12, tiny.num_sensors, 1) and torch.isfinite(pred).all()
    assert model.embed.adaptive.shape == (4, tiny.num_sensors, 4)  # one vector per (token, sensor)
    assert model.embed.proj.in_features == 6 * 8 + 4


def test_embedding_config_choices():
    from stlib.config import build_run_config

    cfg = build_run_config({"model": {"name": "encdec", "embedding": "stid", "stem_layers": 0}})
    assert cfg.model.embedding == "stid" and cfg.model.stem_layers == 0
    with pytest.raises(ConfigError, match="model.embedding"):
        build_run_config({"model": {"embedding": "concat"}})


@pytest.mark.parametrize("kind", ["fixed", "learned"])
def test_stid_embedding_tokens_carry_their_position(tiny, kind):
    """Tokens differ by position even with identical values and times: the pos_encoding knob acts on them."""
    torch.manual_seed(0)
    model = small_model("encdec", tiny, embedding="stid", patch=3, head="linear", pos_encoding=kind)
    emb = model.embed
    if kind == "learned":
        assert any("pos.table" in n for n, _ in model.named_parameters())
        with torch.no_grad():
            emb.pos.table.normal_()
    x, _ = first_batch(tiny)
    x = x.clone()
    x[..., 0] = 0.5  # every step the same value, at the same time of day
    x[..., 1] = x[:, :1, :, 1]
    e = emb(x, x[..., :1])
    assert torch.allclose(e[:, 1] - e[:, 0], (emb.pos(0, 4)[1] - emb.pos(0, 4)[0]).expand_as(e[:, 0]), atol=1e-5)


def test_stid_head_starts_as_stid_exactly_then_attention_corrects(tiny):
    """stid_head: STID's regression head on the sensor state plus the blocks' head from zero. With a STID's
    weights copied in, the model's forecast is that STID's to the bit at init; training moves the blocks' head."""

    torch.manual_seed(0)
    model = small_model(
        "alternating",
        tiny,
        embedding="stid",
        patch=3,
        head="linear",
        encoder_depth=2,
        stem_layers=2,
        stid_head=True,
        use_denoising=False,
    ).eval()
    stid = small_model("stid", tiny).eval()
    emb = model.embed
    with torch.no_grad():
        for name in ("node", "tod", "dow"):
            getattr(stid, name).copy_(getattr(emb, name))
    stid.series.load_state_dict(emb.series.state_dict())
    for a, b in zip(stid.layers, emb.stem):
        a.load_state_dict(b.state_dict())
    stid.head.load_state_dict(model.stid_head.state_dict())
    x, y = first_batch(tiny, batch_size=32)
    assert torch.equal(model(x), stid(x))
    assert model.head.weight.abs().max() == 0
    adam_steps(model, x, y, tiny)
    assert model.head.weight.abs().max() > 0  # the attention branch now adds to STID's forecast
    assert model.encoder[0].attn.out.weight.abs().max() > 0


def test_stid_head_needs_the_stid_embedding_and_linear_head(tiny):
    for kw in (dict(embedding="sum", head="linear"), dict(embedding="stid", head="decoder")):
        with pytest.raises(ConfigError, match="model.stid_head needs model.embedding: stid and model.head: linear"):
            build_run_config({"model": {"name": "alternating", "stid_head": True, **kw}})
    assert build_run_config(
        {"model": {"name": "alternating", "stid_head": True, "embedding": "stid", "head": "linear"}}
    )


@pytest.mark.parametrize(
    "name, kw",
    [
        ("stid", {}),
        ("alternating", dict(embedding="stid", patch=6, head="linear", encoder_depth=2, stid_head=True)),
        ("encdec", dict(patch=3)),
    ],
)
def test_models_read_the_lagged_windows_of_data_lags(tiny, name, kw):
    """With data.lags the input holds each lag's window before the last in_steps: every model reads all of it, and a
    change in the lagged rows alone changes the forecast (STID with the same context is the fair control)."""
    from dataclasses import replace

    ds = replace(tiny, lags=(288,))
    torch.manual_seed(0)
    model = small_model(name, ds, **kw).eval()
    x, _ = first_batch(ds, "test")  # (B, 36, N, 3)
    assert x.shape[1] == ds.input_steps == 36
    if name == "alternating":  # its blocks' head starts at zero: move it so the blocks' part shows
        torch.nn.init.normal_(model.head.weight)
    x2 = x.clone()
    x2[:, :24, :, 0] += 1.0  # a day back only
    with torch.no_grad():
        a, b = model(x), model(x2)
    assert a.shape == (len(x), ds.out_steps, ds.num_sensors, 1) and (a - b).abs().max() > 1e-4


def test_patch_must_divide_the_input_steps_with_lags():
    with pytest.raises(
        ConfigError,
        match=r"model.patch \(5\) must divide data.in_steps \(12\) and 1 lagged windows of data.lags: 36 steps",
    ):
        tiny_config(model__patch=5, data__lags=[288])
