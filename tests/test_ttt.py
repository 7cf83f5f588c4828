"""golf.eval.ttt: phased score-first test-time training (SPEC §2.5 (b), (c)) on tiny GPTs, CPU fp32.

"Later" is the processing order (batches longest first, rows by length inside a batch), not the stream's: a
document far down the stream may be scored first, and its tokens then reach every document after it through
the global phases and the warm A.  The legality property is therefore: change a document's tokens after
position t and every token of every document later in processing order; every NLL of the documents earlier
in processing order (those sharing the batch included) and of the document's targets up to position t stays
bit-identical.
"""
from __future__ import annotations

import copy
import math
import time

import numpy as np
import pytest
import torch

from golf.builder.codegen import feature_flags
from golf.config import ConfigError, EvalConfig, GolfConfig, ModelConfig, apply_env, apply_overrides
from golf.data.loader import load_val_tokens
from golf.data.shards import list_shards, read_shard
from golf.eval.ttt import (
    LoRABank,
    PhasedTTT,
    TTTError,
    adapted,
    adapted_logits,
    adapted_nll,
    document_spans,
    phase_boundaries,
    processing_order,
)
from golf.metric import ByteLUTs, build_byte_luts, eval_sliding, model_nll_fn
from golf.model.gpt import GPT
from golf.presets import FRONTIER_TTT, PRESETS, preset_config
from golf.protocol import BOS_ID
from golf.resolve import resolve_config

V = 64
# The final record's model features at toy size: recurrence (5 virtual slots), routed lanes, gates, XSA.
FRONTIER_TINY = dict(vocab_size=V, num_layers=4, model_dim=32, num_heads=2, num_kv_heads=1, rope_dims=4,
                     parallel_start_layer=2, recur_start=1, recur_end=1, recur_loops=1, parallel_mode="top",
                     smear_gate=True, sparse_attn_gate=0.5, gate_window=4, xsa_last_n=2, ln_scale=True, resid_mix=True)
MERGE_TINY = dict(vocab_size=V, num_layers=4, model_dim=32, num_heads=4, num_kv_heads=2, rope_dims=4,
                  parallel_start_layer=2, recur_start=-1, parallel_mode="merge", parallel_skip_quirk=True,
                  tie_embeddings=False, ve_enabled=True, ve_dim=8, ve_layers=(2, 3), skip_count_physical=True)
PLAIN_TINY = dict(vocab_size=V, num_layers=2, model_dim=32, num_heads=2, num_kv_heads=2, rope_dims=4,
                  parallel_start_layer=-1, recur_start=-1, skip_gates=False)
# Toy-sized knobs: 3 docs per batch, chunks of 8 in windows of 24, phases after 3 and 6 scored documents.
SMALL = dict(eval_seq_len=32, ttt_enabled=True, ttt_lora_rank=4, ttt_lora_lr=0.01, ttt_beta2=0.99,
             ttt_weight_decay=0.5, ttt_chunk_size=8, ttt_eval_seq_len=24, ttt_batch_size=3,
             phased_ttt_prefix_docs=6, phased_ttt_num_phases=2, global_ttt_lr=0.01, global_ttt_chunk_tokens=64,
             global_ttt_batch_seqs=2)


pytestmark = pytest.mark.usefixtures("one_torch_thread_module")  # module fixtures included


def tiny_gpt(seed: int = 0, **kw) -> GPT:
    """A randomly initialised GPT with every weight perturbed (zero-init projections would hide the adapters)."""
    torch.manual_seed(seed)
    model = GPT(ModelConfig(**kw))
    model.set_recurrence(True)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def toy_stream(seed: int, n_docs: int, lo: int, hi: int) -> np.ndarray:
    """BOS-led documents of random non-BOS tokens, lengths in [lo, hi)."""
    rng = np.random.default_rng(seed)
    docs = [np.concatenate([[BOS_ID], rng.integers(BOS_ID + 1, V, int(n))]) for n in rng.integers(lo, hi, n_docs)]
    return np.concatenate(docs).astype(np.int64)


def toy_luts(seed: int = 0) -> ByteLUTs:
    rng = np.random.default_rng(seed)
    boundary = np.zeros(V, bool)
    boundary[BOS_ID] = True
    return ByteLUTs(rng.integers(1, 4, V), rng.random(V) < 0.5, boundary)


# ---------------------------------------------------------------------------------------
# adapters
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", [FRONTIER_TINY, MERGE_TINY, PLAIN_TINY], ids=["top-recur", "merge-ve-untied", "plain"])
def test_fresh_adapters_are_the_plain_model_and_every_site_is_hooked(arch):
    model = tiny_gpt(**arch)
    x = torch.from_numpy(toy_stream(1, 8, 20, 40)[:60].reshape(3, 20))
    y = torch.roll(x, -1, dims=1)
    bank = LoRABank(model, 3, 4, 8.0, torch.Generator().manual_seed(0))
    assert bank.slots == len(model.virtual_layers)
    with torch.no_grad():
        plain, plain_nll = model.logits(x), model.per_token_nll(x, y)
        with adapted(model, bank):
            assert torch.equal(adapted_logits(model, bank, x), plain)  # B = 0: exactly the plain model
            assert torch.equal(adapted_nll(model, bank, x, y), plain_nll)
            moved = {}
            for site in (*LoRABank.SITES, "head"):
                loras = [bank.head] if site == "head" else list(bank.sites[site])
                for lora in loras:
                    lora.B.normal_()
                moved[site] = (adapted_logits(model, bank, x) - plain).abs().max().item()
                bank.reset(warm_a=True)
            rows = adapted_logits(model, bank, x)
        assert torch.equal(model.logits(x), plain)  # hooks removed on exit
    assert torch.equal(rows, plain) and all(v > 0 for v in moved.values()), moved


def test_documents_order_and_phases():
    tokens = np.array([BOS_ID, 5, 6, BOS_ID, 7, BOS_ID, 8, 9, 10, BOS_ID])
    docs = document_spans(tokens)
    assert docs == [(0, 4), (3, 3), (5, 5)]  # the next BOS is the last predicted token; a final lone BOS is not a doc
    assert sum(n - 1 for _, n in docs) == len(tokens) - 1  # the predicted tokens tile every target
    assert processing_order([5, 1, 4, 3, 9, 2], 2) == [[0, 4], [3, 2], [1, 5]]
    assert phase_boundaries(50_000, 2500, 3) == [833, 1666, 2500]  # the record's (SPEC §2.5 (c))
    assert phase_boundaries(10, 0, 3) == [] and phase_boundaries(4, 10, 2) == [2, 4]
    with pytest.raises(TTTError, match="must start with BOS"):
        document_spans(np.array([5, BOS_ID, 6]))
    with pytest.raises(TTTError, match="ttt_eval_seq_len"):
        PhasedTTT(tiny_gpt(**PLAIN_TINY), EvalConfig(ttt_chunk_size=64, ttt_eval_seq_len=32), tokens, toy_luts())


# ---------------------------------------------------------------------------------------
# the legality property (issue 24, deliverable 2)
# ---------------------------------------------------------------------------------------

class UpdateBeforeScore(PhasedTTT):
    """Broken on purpose: steps on a chunk before recording its NLLs."""

    def chunk_step(self, bank, opt, plan):
        if plan.train_rows.numel():
            self.update(opt, plan, self.forward(bank, plan))
        with torch.no_grad():
            self.record(plan, self.forward(bank, plan))


class PeekingPhases(PhasedTTT):
    """Broken on purpose: every global phase trains on the whole prefix, scored or not."""

    def phase_tokens(self, _boundary):
        prefix = [i for b in self.batches for i in b][:self.boundaries[-1]]
        return np.concatenate([self.tokens[s:s + n] for s, n in (self.docs[i] for i in prefix)])


LEGAL_STREAM = dict(seed=3, n_docs=12, lo=28, hi=80)  # 4 batches of 3; phases after batches 0 and 1


def legality_diffs(cls, base_nll, batch: int, row: int) -> tuple[float, float, PhasedTTT]:
    """(max |ΔNLL| where the rule says none may be, max |ΔNLL| elsewhere in the document, the run) after
    changing document (batch, row)'s tokens after its position t and every document later in processing order."""
    tokens, luts, model = toy_stream(**LEGAL_STREAM), toy_luts(), tiny_gpt(**FRONTIER_TINY)
    ref = cls(copy.deepcopy(model), EvalConfig(**SMALL), tokens, luts)
    order = [i for b in ref.batches for i in b]
    d = ref.batches[batch][row]
    s, n = ref.docs[d]
    chunk = SMALL["ttt_chunk_size"]
    assert n - 1 >= 3 * chunk
    t = s + 1 + chunk + chunk // 2  # the first changed target (predicting t + 1) sits mid chunk 1
    changed = np.zeros(len(tokens), bool)
    changed[t + 1:s + n] = True
    for i in order[order.index(d) + 1:]:
        s2, n2 = ref.docs[i]
        changed[s2:s2 + n2] = True
    changed &= tokens != BOS_ID  # document boundaries stay: same documents, same order, same shapes
    rng = np.random.default_rng(7)
    other = tokens.copy()
    k = V - BOS_ID - 1  # non-BOS ids BOS_ID+1 .. V-1, each shifted to a different one
    other[changed] = (tokens[changed] - BOS_ID - 1 + rng.integers(1, k, changed.sum())) % k + BOS_ID + 1
    run = cls(copy.deepcopy(model), EvalConfig(**SMALL), other, luts)
    nll = run.run().nll
    base = base_nll if base_nll is not None else ref.run().nll
    protected = np.zeros(len(tokens) - 1, bool)
    for i in order[:order.index(d)]:
        s2, n2 = ref.docs[i]
        protected[s2:s2 + n2 - 1] = True
    protected[s:t] = True  # the targets predicting positions s+1 .. t
    diff = np.abs(nll - base)
    return float(diff[protected].max()), float(diff[t:s + n - 1].max()), run


@pytest.fixture(scope="module")
def legal_base():
    run = PhasedTTT(tiny_gpt(**FRONTIER_TINY), EvalConfig(**SMALL), toy_stream(**LEGAL_STREAM), toy_luts())
    return run.run().nll, run


@pytest.mark.parametrize("batch, row", [(0, 1), (1, 1), (3, 1)],
                         ids=["first-batch", "between-phases", "after-every-phase"])
def test_scores_never_depend_on_later_tokens(legal_base, batch, row):
    base_nll, base = legal_base
    assert len(base.batches) == 4 and base.boundaries == [3, 6] and min(base.phase_steps) > 0
    protected, elsewhere, run = legality_diffs(PhasedTTT, base_nll, batch, row)
    print(f"\nlegality {batch=} {row=}: max |dNLL| protected {protected:.3g}, after t {elsewhere:.3g}")
    assert protected == 0.0
    assert elsewhere > 0  # the change reached the document: the comparison can see a difference


@pytest.mark.parametrize("cls, batch", [(UpdateBeforeScore, 0), (PeekingPhases, 1)],
                         ids=["update-before-score", "phase-on-unscored-docs"])
def test_the_legality_check_catches_a_leak(cls, batch):
    protected, _, _ = legality_diffs(cls, None, batch, 1)
    print(f"\n{cls.__name__}: max |dNLL| where none may be {protected:.3g}")
    assert protected > 0


# ---------------------------------------------------------------------------------------
# reset isolation
# ---------------------------------------------------------------------------------------

def test_reset_isolates_documents_within_and_across_batches():
    """Without a phase in between, a document's NLLs depend on its own tokens, its row's A and (warm A only) the
    documents of that row in earlier batches; never on the other rows of its batch."""
    model, tokens, luts = tiny_gpt(**FRONTIER_TINY), toy_stream(5, 8, 20, 60), toy_luts()
    docs = document_spans(tokens)

    def score(batches, warm_a=True):
        run = PhasedTTT(model, EvalConfig(**(SMALL | dict(phased_ttt_prefix_docs=0, ttt_warm_start_a=warm_a))),
                        tokens, luts)
        with run.prepared():
            for b in batches:
                run.score_batch([docs[i] for i in b])
        return run.nll.numpy().copy()

    s, n = docs[0]
    d0 = slice(s, s + n - 1)
    alone = score([[0]])[d0]
    assert np.array_equal(score([[0, 1, 2]])[d0], alone)  # other rows, other lengths: bit-identical
    assert np.array_equal(score([[0, 5]])[d0], alone)
    assert not np.array_equal(score([[1, 0]])[d0], alone)  # row 1 has another A draw
    # across batches: the warm A carries what row 0 learned on an earlier document, a redrawn A does not
    after = [score([[i], [0]], warm_a)[d0] for warm_a in (True, False) for i in (3, 4)]
    assert not np.array_equal(after[0], after[1]) and np.array_equal(after[2], after[3])


# ---------------------------------------------------------------------------------------
# a briefly trained tiny model on real text
# ---------------------------------------------------------------------------------------

def train_tiny(tiny_data, steps: int = 60) -> GPT:
    cfg = ModelConfig(vocab_size=1024, num_layers=2, model_dim=64, num_heads=4, num_kv_heads=2, rope_dims=4,
                      mlp_mult=2.0, parallel_start_layer=-1, recur_start=-1)
    torch.manual_seed(0)
    model = GPT(cfg)
    train = np.asarray(read_shard(list_shards(tiny_data["dataset_dir"], "train")[0]), dtype=np.int64)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        idx = rng.integers(0, len(train) - 129, 16)[:, None] + np.arange(129)
        batch = torch.from_numpy(train[idx])
        loss = model(batch[:, :-1], batch[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_ttt_on_a_briefly_trained_model(tiny_data):
    model = train_tiny(tiny_data)
    full = load_val_tokens(tiny_data["dataset_dir"], 0)
    # the first 400 tokens of each of the 40 validation documents (they average ~2,700): 5 batches of 8
    val = np.concatenate([full[s:s + min(n - 1, 400)] for s, n in document_spans(full)] + [[BOS_ID]])
    luts = build_byte_luts(tiny_data["tokenizer"], 1024)
    t0 = time.perf_counter()
    sliding = eval_sliding(model_nll_fn(model, None), val, luts, seq_len=128, stride=32, batch_seqs=16)
    t_sliding = time.perf_counter() - t0
    knobs = dict(eval_seq_len=128, ttt_enabled=True, ttt_lora_rank=8, ttt_lora_lr=1e-3, ttt_beta2=0.99,
                 ttt_weight_decay=0.5, ttt_chunk_size=32, ttt_eval_seq_len=128, ttt_batch_size=8,
                 global_ttt_lr=3e-3, global_ttt_chunk_tokens=1024, global_ttt_batch_seqs=4)
    results = {}
    for name, extra in [("no-op", dict(ttt_lora_lr=0.0, ttt_weight_decay=0.0, phased_ttt_prefix_docs=0)),
                        ("lora", dict(phased_ttt_prefix_docs=0)),
                        ("phased", dict(phased_ttt_prefix_docs=16, phased_ttt_num_phases=2))]:
        t0 = time.perf_counter()
        run = PhasedTTT(copy.deepcopy(model), EvalConfig(**(knobs | extra)), val, luts)
        results[name] = run.run()
        results[name].elapsed_ms = 1000 * (time.perf_counter() - t0)
        assert len(run.batches) == 5 and len(run.phase_steps) == (2 if name == "phased" else 0)
    print(f"\nsliding (128/32) bpb {sliding.val_bpb:.4f} in {t_sliding:.2f}s; " + "; ".join(
        f"TTT {k} bpb {r.val_bpb:.4f} ({r.val_bpb - sliding.val_bpb:+.4f}) in {r.elapsed_ms / 1000:.2f}s "
        f"({r.elapsed_ms / 1000 / t_sliding:.1f}x sliding)" for k, r in results.items()))
    for r in results.values():  # the same targets and bytes as golf.metric, the one BPB formula
        assert r.tokens == sliding.tokens == len(val) - 1 and r.bytes == sliding.bytes
        assert r.nll_sum == pytest.approx(float(r.nll.astype(np.float64).sum()), rel=1e-12)
        assert r.val_bpb == pytest.approx(r.nll_sum / (math.log(2) * r.bytes), rel=1e-12) and math.isfinite(r.val_bpb)
    # no-op TTT = the plain model on each document's windows: a document's first chunk from its BOS on
    noop = results["no-op"].nll
    for s, n in document_spans(val)[:5]:
        x = torch.from_numpy(val[s:s + 32][None])
        y = torch.from_numpy(val[s + 1:s + 33][None])
        with torch.no_grad():
            want = model.per_token_nll(x, y)[0].numpy()
        np.testing.assert_allclose(noop[s:s + min(32, n - 1)], want[:min(32, n - 1)], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------

RECORD_TTT = {"ttt_enabled": True, "ttt_lora_rank": 80, "ttt_lora_alpha": 144.0, "ttt_lora_lr": 1e-4,
              "ttt_beta1": 0.0, "ttt_beta2": 0.99, "ttt_eps": 1e-10, "ttt_weight_decay": 0.5, "ttt_chunk_size": 48,
              "ttt_eval_seq_len": 2048, "ttt_batch_size": 64, "ttt_warm_start_a": True,
              "phased_ttt_prefix_docs": 2500, "phased_ttt_num_phases": 3, "global_ttt_lr": 0.001,
              "global_ttt_momentum": 0.9, "global_ttt_epochs": 1, "global_ttt_chunk_tokens": 32768,
              "global_ttt_batch_seqs": 32, "global_ttt_grad_clip": 1.0}  # SPEC §2.5 (c), the record's run


def test_the_record_values_resolve_on_frontier_and_every_preset_leaves_ttt_off():
    frontier = preset_config("frontier")
    apply_overrides(frontier, FRONTIER_TTT)
    assert {k: getattr(frontier.eval, k) for k in RECORD_TTT} == RECORD_TTT
    assert feature_flags(frontier)["TTT_CODE"]
    for name in PRESETS:  # frontier too, until train_gpt.py and golf verify run TTT
        cfg = preset_config(name)
        assert not cfg.eval.ttt_enabled and not feature_flags(cfg)["TTT_CODE"], name


def test_env_and_set_resolve_and_bad_values_are_named():
    env = {"TTT_ENABLED": "1", "TTT_LORA_RANK": "80", "TTT_CHUNK_SIZE": "32", "PHASED_TTT_PREFIX_DOCS": "2500",
           "PHASED_TTT_NUM_PHASES": "3", "TTT_WARM_START_A": "0", "GLOBAL_TTT_LR": "0.002", "TTT_EPS": "1e-9"}
    cfg = GolfConfig()
    assert apply_env(cfg, env) == {f"eval.{k.lower()}": k for k in env}
    e = cfg.eval
    assert (e.ttt_enabled, e.ttt_lora_rank, e.ttt_chunk_size, e.phased_ttt_prefix_docs, e.phased_ttt_num_phases,
            e.ttt_warm_start_a, e.global_ttt_lr, e.ttt_eps) == (True, 80, 32, 2500, 3, False, 0.002, 1e-9)
    cfg, applied = resolve_config("seed", sets={"eval.ttt_batch_size": "16"}, environ={"TTT_LORA_ALPHA": "72"})
    assert (cfg.eval.ttt_batch_size, cfg.eval.ttt_lora_alpha, applied) == (16, 72.0, ["TTT_LORA_ALPHA"])
    with pytest.raises(ConfigError, match=r"TTT_LORA_RANK=0 \(eval.ttt_lora_rank\): must be >= 1"):
        resolve_config("seed", environ={"TTT_LORA_RANK": "0"})
    with pytest.raises(ConfigError, match=r"--set eval.ttt_beta2=1.0: must be in \[0, 1\)"):
        resolve_config("seed", sets={"eval.ttt_beta2": "1.0"}, environ={})
    with pytest.raises(ConfigError, match="ttt_eval_seq_len"):
        apply_overrides(GolfConfig(), {"eval.ttt_chunk_size": 64, "eval.ttt_eval_seq_len": 32})
