"""golf.metric on a real sp1024 tokenizer and real validation shards (the `tiny_data` fixture)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import sentencepiece as spm
import torch

from golf.data.loader import load_val_tokens
from golf.data.tokenizer import OFFICIAL_TRAINER_OPTIONS
from golf.metric import build_byte_luts, eval_plain, eval_sliding, model_nll_fn, token_bytes

SPACE = "\u2581"
# Edge cases next to the real documents: tabs/newlines/runs of spaces, digits, NFKC ligatures,
# full-width and no-break spaces, accents, rare CJK and emoji (byte fallback), a literal "▁".
EDGE_DOCS = [
    "Tab\tseparated\tvalues  and   runs of spaces\n\n\nthen newlines \r\n end",
    "Numbers 1234567890, 3.14159 and 2024-06-11.",
    "The \ufb01ne o\ufb03ce ligatures, \u2460 circled, \uff21\uff22 full width, x\u00a0y\u3000z",
    "caf\u00e9 na\u00efve \u00c5ngstr\u00f6m e\u0301 \u00df \u0416\u0443\u043a",
    "\u9f98\u9f49\u9ef7 rare CJK \u3042\u3044 and emoji \U0001f600\U0001f9ea\U0001f3f3\ufe0f\u200d\U0001f308",
    "   leading and trailing whitespace   ",
    f"a literal {SPACE} lower-one-eighth block",
]


@pytest.fixture(scope="module")
def sp(tiny_data):
    return spm.SentencePieceProcessor(model_file=str(tiny_data["tokenizer"]))


@pytest.fixture(scope="module")
def luts(tiny_data):
    return build_byte_luts(tiny_data["tokenizer"], tiny_data["vocab_size"])


def bigram_nll_fn(vocab: int, seed: int = 0):
    """A context-independent model: NLL depends only on (previous token, target)."""
    g = torch.Generator().manual_seed(seed)
    table = -torch.log_softmax(torch.randn(vocab, vocab, generator=g), dim=-1)
    return table, (lambda x, y: table[x, y])


def brute_force(val: np.ndarray, table: torch.Tensor, luts) -> tuple[float, int, int]:
    """Σ NLL (float64), targets and bytes by a plain Python loop over the stream."""
    t = table.double().numpy()
    nll = nbytes = 0
    for p, y in zip(val[:-1].tolist(), val[1:].tolist()):
        nll += t[p, y]
        nbytes += int(luts.base_bytes[y]) + int(luts.has_leading_space[y] and not luts.is_boundary[p])
    return nll, len(val) - 1, nbytes


def combine(results) -> tuple[float, int, int, np.ndarray]:
    return (sum(r.nll_sum for r in results), sum(r.tokens for r in results), sum(r.bytes for r in results),
            np.concatenate([r.nll for r in results]))


# ---------------------------------------------------------------- byte LUTs

def test_luts_special_pieces(sp, tiny_data):
    n_sp = sp.vocab_size()
    luts = build_byte_luts(sp, n_sp + 64)  # model vocab bigger than the tokenizer's
    assert len(luts.base_bytes) == len(luts.has_leading_space) == len(luts.is_boundary) == n_sp + 64
    for i in (sp.pad_id(), sp.bos_id(), sp.eos_id(), sp.unk_id()):
        assert luts.is_boundary[i] and luts.base_bytes[i] == 0 and not luts.has_leading_space[i]
    assert luts.is_boundary[n_sp:].all() and (luts.base_bytes[n_sp:] == 0).all()
    assert not luts.has_leading_space[n_sp:].any()
    byte_ids = [i for i in range(n_sp) if sp.is_byte(i)]
    assert len(byte_ids) == 256
    assert (luts.base_bytes[byte_ids] == 1).all() and not luts.is_boundary[byte_ids].any()
    assert not luts.has_leading_space[byte_ids].any()
    space = sp.piece_to_id(SPACE)
    assert luts.has_leading_space[space] and luts.base_bytes[space] == 0 and not luts.is_boundary[space]
    for i in range(n_sp):  # every ordinary piece: bytes of the text it stands for
        if not (luts.is_boundary[i] or sp.is_byte(i)):
            text = sp.id_to_piece(i).replace(SPACE, " ")
            assert luts.base_bytes[i] + luts.has_leading_space[i] == len(text.encode("utf-8")), sp.id_to_piece(i)
    # a model vocab smaller than the tokenizer's keeps the tokenizer's size; path and processor agree
    small = build_byte_luts(str(tiny_data["tokenizer"]), 16)
    assert len(small.base_bytes) == n_sp
    assert (small.base_bytes == luts.base_bytes[:n_sp]).all()


def test_token_bytes_rule_numpy_and_torch(sp, luts):
    word = sp.piece_to_id(f"{SPACE}the")
    plain = next(i for i in range(sp.vocab_size()) if not luts.is_boundary[i] and not luts.has_leading_space[i]
                 and not sp.is_byte(i))
    beyond = len(luts.base_bytes) + 5
    luts_big = build_byte_luts(sp, beyond + 1)
    prev = np.array([plain, sp.bos_id(), sp.unk_id(), beyond, plain, word])
    tgt = np.array([word, word, word, word, sp.bos_id(), plain])
    expected = np.array([4, 3, 3, 3, 0, luts.base_bytes[plain]])
    assert word != sp.unk_id()
    got = token_bytes(luts_big, prev, tgt)
    assert got.dtype == np.int64 and (got == expected).all()
    got_t = token_bytes(luts_big, torch.from_numpy(prev), torch.from_numpy(tgt))
    assert got_t.dtype == torch.int64 and (got_t.numpy() == expected).all()


def test_missing_space_piece_is_rejected(tmp_path):
    texts = ["".join(chr(97 + (i * j) % 26) for j in range(200)) for i in range(1, 60)]  # no spaces at all
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_prefix=str(tmp_path / "nospace"),
                                   vocab_size=300, num_threads=1, minloglevel=2, **OFFICIAL_TRAINER_OPTIONS)
    with pytest.raises(ValueError, match=r"nospace\.model.*no standalone"):
        build_byte_luts(tmp_path / "nospace.model", 300)


def test_lut_bytes_equal_normalized_text_bytes(sp, luts, sample_docs):
    """Core invariant: LUT bytes of [BOS] + tokens(doc) == UTF-8 bytes of the normalized doc, for every doc."""
    docs = sample_docs + EDGE_DOCS
    n_byte_pieces = 0
    for doc, ids in zip(docs, sp.encode(docs)):
        stream = np.array([sp.bos_id()] + ids)
        lut_bytes = int(token_bytes(luts, stream[:-1], stream[1:]).sum())
        normalized = sp.normalize(doc).replace(SPACE, " ")
        assert lut_bytes == len(normalized.encode("utf-8")) == len(sp.decode(ids).encode("utf-8")), doc[:80]
        n_byte_pieces += sum(sp.is_byte(i) for i in ids)
    assert len(docs) > 800 and n_byte_pieces > 1000  # byte fallback really exercised
    # the normalizer's effect on the byte count (SPEC §2.1): whitespace runs collapse, NFKC expands
    assert sp.normalize(EDGE_DOCS[0]) == SPACE.join("Tab separated values and runs of spaces then newlines end".split())
    assert "fine office" in sp.normalize(EDGE_DOCS[2]).replace(SPACE, " ")


# ---------------------------------------------------------------- BPB

def test_bpb_hand_computed(sp, luts):
    docs = ["Hello world.", "Yes, 42 times!"]  # 12 + 14 bytes
    val = np.array([1] + sp.encode(docs[0]) + [1] + sp.encode(docs[1]) + [1])
    n = len(val) - 1
    expected_bpb = 0.5 * n / (math.log(2) * 26)
    const = lambda x, _y: torch.full(x.shape, 0.5)  # noqa: E731
    for res in (eval_plain(const, val, luts, seq_len=n, batch_seqs=1, return_nll=True),
                eval_sliding(const, val, luts, seq_len=4, stride=2, batch_seqs=3, return_nll=True),
                eval_sliding(const, val, luts, seq_len=4 * n, stride=8, batch_seqs=3)):
        assert (res.tokens, res.bytes) == (n, 26)
        assert res.val_loss == pytest.approx(0.5, rel=1e-12)
        assert res.val_bpb == pytest.approx(expected_bpb, rel=1e-12)
        assert res.nll is None or (len(res.nll) == n and res.nll.dtype == np.float32)


@pytest.mark.parametrize("n_targets,seq_len,stride", [
    (1000, 128, 32), (1001, 128, 48), (1000, 128, 128), (1000, 128, 1), (128, 128, 16),
    (100, 128, 16), (113, 128, 16), (1, 8, 4), (258, 128, 127), (37, 16, 5),
])
def test_sliding_scores_every_target_once(n_targets, seq_len, stride, sp):
    """NLL := target id on an arange stream, so the returned NLLs name the scored targets in order."""
    val = np.arange(n_targets + 1)
    big = build_byte_luts(sp, n_targets + 1)  # a "model vocab" covering every synthetic id
    ctx = seq_len - stride

    def record(x, y):
        valid = y > 0  # padding is zeros; real targets are >= 1
        assert (y[valid] == x[valid] + 1).all()
        assert (x[:, 1:][valid[:, 1:]] == x[:, :-1][valid[:, 1:]] + 1).all()  # windows are contiguous
        return y.float()

    res = eval_sliding(record, val, big, seq_len=seq_len, stride=stride, batch_seqs=3, return_nll=True)
    assert (res.nll == np.arange(1, n_targets + 1)).all() and res.tokens == n_targets
    # context of each target: the window's start is at most its position - ctx (first window excepted)
    pos = eval_sliding(lambda x, _y: torch.arange(seq_len).float().expand(x.shape), val, big, seq_len=seq_len,
                       stride=stride, batch_seqs=4, return_nll=True).nll
    j = np.arange(n_targets)
    assert ((pos == j) | ((j >= seq_len) & (pos >= ctx))).all()


@pytest.mark.parametrize("seq_len,stride", [(64, 16), (128, 48)])
def test_plain_and_sliding_match_brute_force_for_bigram_model(tiny_data, luts, seq_len, stride):
    val = load_val_tokens(tiny_data["dataset_dir"], seq_len, tiny_data["vocab_size"], max_tokens=60_000)
    table, nll_fn = bigram_nll_fn(tiny_data["vocab_size"])
    nll, n, nbytes = brute_force(val, table, luts)
    plain = eval_plain(nll_fn, val, luts, seq_len, batch_seqs=7, return_nll=True)
    slide = eval_sliding(nll_fn, val, luts, seq_len=seq_len, stride=stride, batch_seqs=5, return_nll=True)
    for res in (plain, slide):
        assert (res.tokens, res.bytes) == (n, nbytes) and len(res.nll) == n
        assert res.nll_sum == pytest.approx(nll, rel=1e-12)
        assert res.val_loss == pytest.approx(nll / n, rel=1e-12)
        assert res.val_bpb == pytest.approx(nll / (math.log(2) * nbytes), rel=1e-12)
    assert (plain.nll == slide.nll).all()
    assert 2.0 < nbytes / n < 3.0  # real sp1024 text: about 2.4 bytes per token (SPEC §1.5)


@pytest.mark.parametrize("world_size", [2, 3, 7])
def test_rank_split_sums_to_single_process(tiny_data, luts, world_size):
    val = load_val_tokens(tiny_data["dataset_dir"], 64, tiny_data["vocab_size"], max_tokens=6_000)
    _, nll_fn = bigram_nll_fn(tiny_data["vocab_size"], seed=1)
    for run in (lambda **kw: eval_plain(nll_fn, val, luts, 64, 4, return_nll=True, **kw),
                lambda **kw: eval_sliding(nll_fn, val, luts, seq_len=64, stride=24, batch_seqs=4,
                                          return_nll=True, **kw)):
        single = run()
        parts = [run(rank=r, world_size=world_size) for r in range(world_size)]
        assert all(0 < p.tokens < single.tokens for p in parts)
        nll_sum, n, nbytes, nll = combine(parts)
        assert (n, nbytes) == (single.tokens, single.bytes)
        assert nll_sum == pytest.approx(single.nll_sum, rel=1e-12)
        assert (nll == single.nll).all()


def _dist_worker(rank: int, world_size: int, init_file: str, tokenizer: str, val: np.ndarray, out: str) -> None:
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        luts = build_byte_luts(tokenizer, 1024)
        _, nll_fn = bigram_nll_fn(1024, seed=2)
        res = [eval_plain(nll_fn, val, luts, 64, 4, rank=rank, world_size=world_size),
               eval_sliding(nll_fn, val, luts, seq_len=64, stride=24, batch_seqs=4, rank=rank, world_size=world_size)]
        np.save(f"{out}.{rank}.npy", np.array([[r.nll_sum, r.tokens, r.bytes, r.val_bpb] for r in res]))
    finally:
        dist.destroy_process_group()


def test_all_reduce_gives_every_rank_the_global_metric(tiny_data, luts, tmp_path):
    val = load_val_tokens(tiny_data["dataset_dir"], 64, tiny_data["vocab_size"], max_tokens=6_000)
    torch.multiprocessing.spawn(_dist_worker, nprocs=2, args=(2, str(tmp_path / "init"), str(tiny_data["tokenizer"]),
                                                            val, str(tmp_path / "res")))
    _, nll_fn = bigram_nll_fn(1024, seed=2)
    single = [eval_plain(nll_fn, val, luts, 64, 4), eval_sliding(nll_fn, val, luts, seq_len=64, stride=24)]
    expected = np.array([[r.nll_sum, r.tokens, r.bytes, r.val_bpb] for r in single])
    for rank in range(2):
        np.testing.assert_allclose(np.load(tmp_path / f"res.{rank}.npy"), expected, rtol=1e-12)


def test_more_ranks_than_windows(sp, luts):
    val = np.array([1] + sp.encode("Short text, few windows: ranks without work.")[:8])  # 8 targets
    assert len(val) == 9
    nll_fn = lambda x, _y: torch.ones(x.shape)  # noqa: E731
    for run in (lambda **kw: eval_plain(nll_fn, val, luts, 4, 2, return_nll=True, **kw),  # 2 sequences
                lambda **kw: eval_sliding(nll_fn, val, luts, seq_len=4, stride=2, return_nll=True, **kw)):  # 3
        single = run()
        parts = [run(rank=r, world_size=5) for r in range(5)]
        idle = [p for p in parts if p.tokens == 0]
        assert len(idle) >= 2 and all(math.isnan(p.val_bpb) and len(p.nll) == 0 for p in idle)
        assert combine(parts)[1:3] == (single.tokens, single.bytes) == (8, single.bytes) and single.bytes > 8


class TinyLM(torch.nn.Module):
    """Embedding -> Linear: the Linear runs in bf16 under autocast."""

    def __init__(self, vocab: int):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(vocab, 32)
        self.head = torch.nn.Linear(32, vocab)

    def per_token_nll(self, idx, targets):
        logits = self.head(self.emb(idx)).float()
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none"
                                                 ).view(targets.shape)


def test_model_nll_fn_fp32_and_autocast(tiny_data, luts):
    val = load_val_tokens(tiny_data["dataset_dir"], 32, tiny_data["vocab_size"], max_tokens=2_000)
    model = TinyLM(tiny_data["vocab_size"]).eval()
    with torch.no_grad():
        ref = float(model.per_token_nll(torch.from_numpy(val[None, :-1]), torch.from_numpy(val[None, 1:]))
                    .double().sum())
    fp32 = eval_plain(model_nll_fn(model, None), val, luts, 32, 8)
    bf16 = eval_plain(model_nll_fn(model, torch.bfloat16), val, luts, 32, 8)
    assert fp32.nll_sum == pytest.approx(ref, rel=1e-6)
    assert bf16.nll_sum == pytest.approx(ref, rel=1e-2) and bf16.nll_sum != fp32.nll_sum


def test_scoring_runs_without_autograd(luts):
    seen = []

    def nll_fn(x, _y):
        seen.append(torch.is_grad_enabled())
        return torch.zeros(x.shape, requires_grad=True) * 1.0

    eval_plain(nll_fn, np.arange(1, 34), luts, 8, 2)
    eval_sliding(nll_fn, np.arange(1, 34), luts, seq_len=8, stride=4, batch_seqs=2)
    assert seen and not any(seen)


def test_bad_arguments_are_reported(luts):
    val = np.arange(1, 40)
    ok = lambda x, _y: torch.zeros(x.shape)  # noqa: E731
    with pytest.raises(ValueError, match="stride"):
        eval_sliding(ok, val, luts, seq_len=8, stride=9)
    with pytest.raises(ValueError, match="stride"):
        eval_sliding(ok, val, luts, seq_len=8, stride=0)
    with pytest.raises(ValueError, match="rank"):
        eval_plain(ok, val, luts, 8, 2, rank=2, world_size=2)
    with pytest.raises(ValueError, match="shorter than one sequence"):
        eval_plain(ok, val, luts, 64, 2)
    with pytest.raises(ValueError, match=r"shape \(2, 8\)"):
        eval_plain(lambda x, _y: torch.zeros(x.shape[0]), val, luts, 8, 2)
