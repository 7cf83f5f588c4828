"""Static legality scan: each rejected pattern in an illegal and a legal hand-written variant,
exec wrappers decoded first, aliases resolved, unresolved names reported."""
from __future__ import annotations

import base64
import lzma
import zlib
from pathlib import Path

import pytest

from golf.verifier.lint.legality import decode_wrapper, legality_checks, scan_folder

HEAD = "import torch\nimport numpy as np\n"

CASES = {  # pattern: (illegal script, legal script)
    "val_training": (
        HEAD + "def ttt(model, opt, val_tokens):\n"
               "    for chunk in val_tokens.split(1024):\n"
               "        loss = model(chunk)\n        loss.backward()\n        opt.step()\n"
               "        with torch.no_grad():\n            nll = model(chunk)\n",
        HEAD + "def ttt(model, opt, val_tokens):\n"
               "    for chunk in val_tokens.split(1024):\n"
               "        with torch.no_grad():\n            nll = model(chunk)\n"
               "        loss = model(chunk)\n        loss.backward()\n        opt.step()\n"),
    "val_cache": (
        HEAD + "def run(model, val_tokens):\n"
               "    counts = {}\n"
               "    for i, tok in enumerate(val_tokens):\n"
               "        counts[tok] = counts.get(tok, 0) + 1\n"
               "        s = score_token(model, tok, counts)\n",
        HEAD + "def run(model, val_tokens):\n"
               "    counts = {}\n"
               "    for i, tok in enumerate(val_tokens):\n"
               "        s = score_token(model, tok, counts)\n"
               "        counts[tok] = counts.get(tok, 0) + 1\n"),
    "two_pass": (
        HEAD + "def main(model, val_tokens):\n"
               "    first = eval_val(model, val_tokens)\n"
               "    second = eval_val(model, val_tokens, prior=first)\n",
        HEAD + "def main(model, val_tokens):\n"
               "    first = eval_val(model, val_tokens)\n    print(first)\n"),
    "paid_prefix": (
        HEAD + "def pack(model):\n    prefix = load_validation_tokens('x')[:4096]\n"
               "    torch.save({'w': model.state_dict(), 'p': prefix}, 'final_model.pt')\n",
        HEAD + "def pack(model):\n    torch.save({'w': model.state_dict()}, 'final_model.pt')\n"),
    "eval_io": (
        HEAD + "import urllib.request as u\ndef eval_val(model):\n"
               "    return u.urlopen('http://example.org/answers').read()\n",
        HEAD + "def eval_val(model, path):\n    return np.fromfile(path, dtype=np.uint16)\n"),
}


def _folder(tmp_path, name: str, code: str, **siblings):
    d = tmp_path / name
    d.mkdir()
    (d / "train_gpt.py").write_text(code)
    for mod, text in siblings.items():
        (d / f"{mod}.py").write_text(text)
    return d


def _status(checks, name):
    return next(c for c in checks if c.name == name)


@pytest.mark.parametrize("pattern", sorted(CASES))
def test_each_pattern_illegal_is_a_warning_with_file_line_and_legal_passes(tmp_path, pattern):
    bad, good = CASES[pattern]
    checks = legality_checks(_folder(tmp_path, "bad", bad))
    c = _status(checks, f"legality.{pattern}")
    assert c.status == "warn" and "suspicious, needs a human" in c.message and "train_gpt.py:" in c.message
    assert not any(x.status == "fail" for x in checks)  # a pattern alone is never a hard failure
    others = [x for x in checks if x.name.startswith("legality.") and x.name not in ("legality.scan",
                                                                                     f"legality.{pattern}")]
    assert all(x.status == "pass" for x in others), [(x.name, x.message) for x in others]
    checks = legality_checks(_folder(tmp_path, "good", good))
    assert all(x.status == "pass" for x in checks), [(x.name, x.message) for x in checks if x.status != "pass"]


def test_score_first_ttt_is_recognised_as_the_legal_form(tmp_path):
    c = _status(legality_checks(_folder(tmp_path, "g", CASES["val_training"][1])), "legality.val_training")
    assert c.status == "pass" and "score-first" in c.message


def test_a_table_built_from_the_whole_validation_stream(tmp_path):
    bad = HEAD + ("def run(model, val_tokens):\n"
                  "    bigram_counts = np.bincount(val_tokens[:-1] * 1024 + val_tokens[1:])\n"
                  "    return eval_with_cache(model, val_tokens, bigram_counts)\n")
    good = HEAD + ("def run(model, val_tokens, train_tokens):\n"
                   "    bigram_counts = np.bincount(train_tokens[:-1] * 1024 + train_tokens[1:])\n"
                   "    return eval_with_cache(model, val_tokens, bigram_counts)\n")
    c = _status(legality_checks(_folder(tmp_path, "b", bad)), "legality.val_cache")
    assert c.status == "warn" and "whole validation stream" in c.message and "train_gpt.py:4" in c.message
    assert _status(legality_checks(_folder(tmp_path, "g", good)), "legality.val_cache").status == "pass"


def test_gptq_calibration_on_validation_data(tmp_path):
    bad = HEAD + "def build(model, val_tokens):\n    H = gptq_collect_hessians(model, val_tokens[:65536])\n"
    good = HEAD + "def build(model, train_tokens):\n    H = gptq_collect_hessians(model, train_tokens[:65536])\n"
    assert _status(legality_checks(_folder(tmp_path, "b", bad)), "legality.val_training").status == "warn"
    assert _status(legality_checks(_folder(tmp_path, "g", good)), "legality.val_training").status == "pass"


def test_aliases_are_resolved_and_dynamic_names_reported(tmp_path):
    aliased = HEAD + ("import socket as s\nopen_conn = getattr(s, 'create_connection')\n"
                      "def eval_val(model):\n    open_conn(('example.org', 80))\n")
    res = scan_folder(_folder(tmp_path, "a", aliased))
    assert any("socket.create_connection" in f.evidence for f in res.findings if f.pattern == "eval_io")
    dyn = HEAD + "import os\nname = 'system'\nrun = getattr(os, name)\n"
    scan = _status(legality_checks(_folder(tmp_path, "d", dyn)), "legality.scan")
    assert scan.status == "warn" and "could not resolve train_gpt.py:5: getattr(os, <computed name>)" in scan.message
    benign = HEAD + "def cast(x, name):\n    return x.to(getattr(torch, name))\n"
    scan = _status(legality_checks(_folder(tmp_path, "t", benign)), "legality.scan")
    assert scan.status == "pass" and "getattr(torch, <computed name>)" in scan.message


def test_wrappers_are_decoded_and_sibling_imports_scanned(tmp_path):
    inner = CASES["paid_prefix"][0] + "import helpers\n"
    packed = base64.b85encode(lzma.compress(inner.encode())).decode()
    wrapper = f"import lzma as L,base64 as B\nexec(L.decompress(B.b85decode('{packed}')))\n"
    decoded = decode_wrapper(wrapper)
    assert decoded is not None and decoded[0] == inner and decoded[1] == "lzma+b85"
    z = base64.b64encode(zlib.compress(wrapper.encode())).decode()  # a wrapper inside a wrapper
    outer = f"import zlib,base64\nexec(zlib.decompress(base64.b64decode('{z}')))\n"
    d = _folder(tmp_path, "w", outer, helpers=CASES["eval_io"][0])
    res = scan_folder(d)
    assert res.files == ["train_gpt.py", "helpers.py"]
    assert res.decoded == ["train_gpt.py: zlib+b64 wrapper", "train_gpt.py: lzma+b85 wrapper"]
    assert {f.pattern for f in res.findings} == {"paid_prefix", "eval_io"}
    assert any(f.file == "helpers.py" for f in res.findings)


FRONTIER = Path(__file__).resolve().parents[2] / "shared" / "reference" / "frontier_1.0611"
SCORE_LOOP = ("def ttt_eval(model, opt, val_tokens):\n"
              "    for i, chunk in enumerate(val_tokens.split(1024)):\n"
              "        with torch.no_grad():\n            nll = model(chunk)\n"
              "        loss = model(chunk)\n        loss.backward()\n        opt.step()\n")


@pytest.mark.skipif(not (FRONTIER / "train_gpt.py").is_file(), reason="frontier reference script not present")
def test_the_final_record_script_scans_clean_with_its_phased_ttt_as_the_legal_form():
    checks = legality_checks(FRONTIER)
    assert all(c.status == "pass" for c in checks), [(c.name, c.message) for c in checks if c.status != "pass"]
    assert "score-first test-time training" in _status(checks, "legality.val_training").message


def test_a_training_helper_is_legal_only_when_every_call_follows_scoring(tmp_path):
    helper = ("def global_sgd(model, opt, val_tokens):\n"
              "    for chunk in val_tokens.split(32768):\n"
              "        loss = model(chunk)\n        loss.backward()\n        opt.step()\n")
    phased = HEAD + helper + ("def phased_eval(model, opt, val_tokens):\n"
                              "    for phase in val_tokens.split(3):\n"
                              "        with torch.no_grad():\n            nll = model(phase)\n"
                              "        global_sgd(model, opt, phase)\n")
    c = _status(legality_checks(_folder(tmp_path, "phased", phased)), "legality.val_training")
    assert c.status == "pass" and "score-first" in c.message
    early = phased + "def warm(model, opt, val_tokens):\n    global_sgd(model, opt, val_tokens)\n"
    c = _status(legality_checks(_folder(tmp_path, "early", early)), "legality.val_training")
    assert c.status == "warn" and "train_gpt.py:6" in c.message  # the helper's backward, called unscored too
    unused = HEAD + helper  # a helper nobody calls after scoring is judged by its own loop
    assert _status(legality_checks(_folder(tmp_path, "unused", unused)), "legality.val_training").status == "warn"


def test_pre_quantization_ttt_on_validation_tokens_is_flagged(tmp_path):
    in_place = HEAD + SCORE_LOOP + "    blob = quantize_state_dict(model)\n"
    c = _status(legality_checks(_folder(tmp_path, "a", in_place)), "legality.val_training")
    assert c.status == "warn" and "pre-quantization" in c.message and "quantize_state_dict() at line 10" in c.message
    via_caller = HEAD + SCORE_LOOP + ("def main(model, opt, val_tokens):\n    ttt_eval(model, opt, val_tokens)\n"
                                      "    gptq_quantize(model)\n")
    c = _status(legality_checks(_folder(tmp_path, "b", via_caller)), "legality.val_training")
    assert c.status == "warn" and "gptq_quantize() at line 12" in c.message
    after_quant = HEAD + SCORE_LOOP + ("def main(model, opt, val_tokens):\n    gptq_quantize(model)\n"
                                       "    model = dequantize(model)\n    ttt_eval(model, opt, val_tokens)\n")
    c = _status(legality_checks(_folder(tmp_path, "c", after_quant)), "legality.val_training")
    assert c.status == "pass", c.message  # TTT of the dequantized artifact, as the records do


def test_only_a_training_driver_may_name_training_data_in_an_eval_function(tmp_path):
    driver = HEAD + ("def train_model(files):\n    return files\n"
                     "def train_and_eval(model):\n    train_model('data/fineweb_train_*.bin')\n")
    assert _status(legality_checks(_folder(tmp_path, "d", driver)), "legality.eval_io").status == "pass"
    plain = HEAD + "def eval_val(model):\n    return np.fromfile('data/fineweb_train_000001.bin')\n"
    c = _status(legality_checks(_folder(tmp_path, "p", plain)), "legality.eval_io")
    assert c.status == "warn" and "reads training data" in c.message
    named = HEAD + "def train_eval(model):\n    return np.fromfile('data/fineweb_train_000001.bin')\n"
    assert _status(legality_checks(_folder(tmp_path, "n", named)), "legality.eval_io").status == "warn"
