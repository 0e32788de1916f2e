"""Exploration: plain loop over the project's pieces, context gain on whole held-out texts (<=128 tokens)."""
import argparse, math, time, json
import torch, numpy as np
from torch.nn import functional as F
from mlm_bench.config import preset
from mlm_bench.data.corpus import load_corpus
from mlm_bench.data.tokenizer import build_tokenizer
from mlm_bench.data.encode import encode
from mlm_bench.data.collate import build_collator
from mlm_bench.modeling.model import build_model, sparse_mlm_loss
from mlm_bench.training.evaluate import unigram_log_probs
import datasets; datasets.disable_progress_bars()

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=1400)
p.add_argument("--batch_tokens", type=int, default=4096)
p.add_argument("--sched", default="16:1.0")  # "16:0.5,128:0.5"
p.add_argument("--lr", type=float, default=2e-3)
p.add_argument("--warmup", type=int, default=100)
p.add_argument("--hidden", type=int, default=128)
p.add_argument("--layers", type=int, default=2)
p.add_argument("--heads", type=int, default=2)
p.add_argument("--inter", type=int, default=512)
p.add_argument("--untie", action="store_true")
p.add_argument("--offset", action="store_true")
p.add_argument("--mlm", type=float, default=0.15)
p.add_argument("--wd", type=float, default=0.0)
p.add_argument("--eval_every", type=int, default=200)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--seed", type=int, default=42)
p.add_argument("--pos_std", type=float, default=None)
p.add_argument("--decay", default="linear")
p.add_argument("--device", default="cpu")
p.add_argument("--pos_init", default="bert")
p.add_argument("--tag", default="")
a = p.parse_args()
torch.set_num_threads(a.threads)
s = preset("tiny-zh", hidden_size=a.hidden, num_hidden_layers=a.layers, num_attention_heads=a.heads,
           intermediate_size=a.inter, max_length=128, mlm_probability=a.mlm, seed=a.seed)
torch.manual_seed(a.seed)
corpus = load_corpus(s)
tok = build_tokenizer(list(corpus.train["completion"]), 128)
rows = encode(corpus.train, "completion", tok, s)
ids_all = torch.tensor(rows["input_ids"]); stm_all = torch.tensor(rows["special_tokens_mask"])
ev = encode(corpus.heldout, "completion", tok, s.replace(packing=False))
model = build_model(s, tok)
if a.untie:
    model.config.tie_word_embeddings = False
    dec = torch.nn.Linear(a.hidden, len(tok)); dec.weight.data = model.cls.predictions.decoder.weight.data.clone()
    model.cls.predictions.decoder = dec
if a.pos_std is not None:
    torch.nn.init.normal_(model.bert.embeddings.position_embeddings.weight, std=a.pos_std)
if a.pos_init == "sin":
    pe = model.bert.embeddings.position_embeddings.weight
    pos = torch.arange(pe.shape[0])[:, None]; div = torch.exp(torch.arange(0, a.hidden, 2) * (-math.log(10000.0) / a.hidden))
    with torch.no_grad():
        pe[:, 0::2] = torch.sin(pos * div) * 0.1; pe[:, 1::2] = torch.cos(pos * div) * 0.1
dev = torch.device(a.device); model.to(dev)
uni = unigram_log_probs(rows, tok, len(tok))
coll = build_collator(tok, s)
# eval: per text masks, fixed seed
ecoll = build_collator(tok, s.replace(mlm_probability=0.15, packing=False), seed=1234)
eval_batches = []
erows = [dict(r) for r in ev]
for i in range(0, len(erows), 64):
    eval_batches.append(ecoll(erows[i:i+64]))
@torch.no_grad()
def evaluate():
    model.eval(); tm=tu=0.0; n=0; corr=0; tk=0.0; nk=0
    for b in eval_batches:
        b = {k: v.to(dev) for k, v in b.items()}
        lab = b.pop("labels"); b.pop("special_tokens_mask", None)
        logits = model(**b).logits
        sel = (lab != -100) & (b["input_ids"] == tok.mask_token_id)
        t = lab[sel]
        tm += F.cross_entropy(logits[sel].float(), t, reduction="sum").item(); tu += -uni.to(dev)[t].sum().item()
        corr += (logits[sel].argmax(-1) == t).sum().item(); n += t.numel()
    model.train()
    return (tu - tm) / n, tm / n, corr / n
opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.wd)
phases = []
for part in a.sched.split(","):
    l, f = part.split(":"); phases.append((int(l), float(f)))
bounds = np.cumsum([f for _, f in phases]) * a.steps
def length_at(step):
    for (l, _), b in zip(phases, bounds):
        if step < b: return l
    return phases[-1][0]
def lr_at(step):
    if step < a.warmup: return a.lr * (step + 1) / a.warmup
    frac = (step - a.warmup) / max(1, a.steps - a.warmup)
    return a.lr * (1 - frac) if a.decay == "linear" else a.lr * 0.5 * (1 + math.cos(math.pi * frac))
g = torch.Generator().manual_seed(a.seed)
rows_per = a.batch_tokens // 128
t0 = time.perf_counter(); log = []
model.train()
for step in range(a.steps):
    idx = torch.randint(len(ids_all), (rows_per,), generator=g)
    batch = coll([{"input_ids": ids_all[i].tolist(), "special_tokens_mask": stm_all[i].tolist()} for i in idx])
    l = length_at(step)
    inp = batch["input_ids"].reshape(-1, l); lab = batch["labels"].reshape(-1, l)
    kw = {}
    if a.offset and l < 128:
        off = torch.randint(0, 128 - l + 1, (inp.shape[0], 1), generator=g)
        kw["position_ids"] = off + torch.arange(l)[None]
    for gr in opt.param_groups: gr["lr"] = lr_at(step)
    kw = {k: v.to(dev) for k, v in kw.items()}
    inp, lab = inp.to(dev), lab.to(dev)
    loss = sparse_mlm_loss(model, {"input_ids": inp, "attention_mask": torch.ones_like(inp), "labels": lab, **kw})
    loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); opt.zero_grad()
    if (step + 1) % a.eval_every == 0 or step + 1 == a.steps:
        gain, nll, acc = evaluate()
        el = time.perf_counter() - t0
        log.append((step + 1, round(el, 1), round(gain, 3), round(acc, 3)))
        print(f"step {step+1} t {el:.0f}s len {l} loss {loss.item():.3f} gain {gain:.3f} nll {nll:.3f} acc {acc:.3f}", flush=True)
print("RESULT", json.dumps({"args": vars(a), "log": log}))
