"""An offline corpus and its tokenizer: the Python sources of the interpreter's installed packages
(site-packages), split by file into train and held-out, a byte-level BPE tokenizer trained with the
`tokenizers` library on part of the train split, and both splits encoded to uint16 token arrays.

Key assumption: the machine's installed packages are fixed (one image), so "every .py file under
site-packages, ordered by the SHA-1 of its path relative to its root, up to `max_bytes`" is the same
corpus every run; a file is held out when that hash says so (about 1 in `heldout_every`), so no
held-out text was seen in training, not even a neighbouring chunk of the same file.
"""
from __future__ import annotations

import hashlib
import json
import site
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPECIAL = ("<bos>", "<eos>", "<pad>")  # ids 0, 1, 2 (family.py's bos/eos/pad ids)
EOS_ID = 1


@dataclass(frozen=True)
class CorpusConfig:
    max_bytes: int = 48_000_000
    max_file_bytes: int = 400_000  # larger files are mostly generated tables
    heldout_every: int = 25
    tokenizer_bytes: int = 12_000_000  # BPE is trained on this much of the train split
    vocab: int = 8192


def site_roots() -> list[Path]:
    roots = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    return sorted({Path(r).resolve() for r in roots if Path(r).is_dir()})


def _key(rel: str) -> str:
    return hashlib.sha1(rel.encode()).hexdigest()


def list_sources(roots, cfg: CorpusConfig) -> list[tuple[str, Path]]:
    """(relative path, path) of every readable .py file, in hash order, deduplicated by content root."""
    seen, files = set(), []
    for root in roots:
        for p in Path(root).rglob("*.py"):
            try:
                real = p.resolve()
                if real in seen or not real.is_file() or real.stat().st_size > cfg.max_file_bytes:
                    continue
            except OSError:
                continue
            seen.add(real)
            files.append((str(p.relative_to(root)), p))
    files.sort(key=lambda f: (_key(f[0]), f[0]))
    return files


def collect(roots, cfg: CorpusConfig) -> tuple[list[str], list[str], dict]:
    """Train and held-out texts (up to max_bytes together) and a manifest describing them."""
    train, held, used, n_files = [], [], 0, 0
    held_paths: list[str] = []
    digest = hashlib.sha1()
    for rel, p in list_sources(roots, cfg):
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if not text.strip():
            continue
        is_held = int(_key(rel)[:8], 16) % cfg.heldout_every == 0
        (held if is_held else train).append(text)
        if is_held:
            held_paths.append(rel)
        digest.update(rel.encode())
        used += len(text.encode())
        n_files += 1
        if used >= cfg.max_bytes:
            break
    manifest = {"roots": [str(r) for r in roots], "files": n_files, "bytes": used,
                "train_files": len(train), "heldout_files": len(held), "file_list_sha1": digest.hexdigest(),
                "config": cfg.__dict__, "heldout_paths": held_paths}
    return train, held, manifest


def domain_of(rel: str) -> str:
    """A held-out file's domain: its top-level package (the first path component, '.py' dropped)."""
    top = rel.replace("\\", "/").split("/")[0]
    return top[:-3] if top.endswith(".py") else top


def train_tokenizer(texts: list[str], cfg: CorpusConfig):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=cfg.vocab, special_tokens=list(SPECIAL), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    sample, n = [], 0
    for t in texts:
        if n >= cfg.tokenizer_bytes:
            break
        sample.append(t)
        n += len(t)
    tok.train_from_iterator(sample, trainer=trainer)
    return tok


def encode(tok, texts: list[str]) -> np.ndarray:
    """All texts as one uint16 stream, each file followed by <eos>."""
    parts = []
    for i in range(0, len(texts), 2048):
        for enc in tok.encode_batch(texts[i:i + 2048]):
            parts.append(np.asarray(enc.ids + [EOS_ID], dtype=np.uint16))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint16)


def build(directory: str | Path, cfg: CorpusConfig = CorpusConfig(), roots=None, log=print) -> dict:
    """Build (or reuse) tokenizer.json, train.npy, heldout.npy and manifest.json in `directory`."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if (d / "manifest.json").exists():
        log(f"corpus: reusing {d}")
        return json.loads((d / "manifest.json").read_text())
    train, held, manifest = collect(roots or site_roots(), cfg)
    if not train or not held:
        raise RuntimeError(f"corpus: found {len(train)} train / {len(held)} held-out files under {roots}")
    tok = train_tokenizer(train, cfg)
    tok.save(str(d / "tokenizer.json"))
    tr, he = encode(tok, train), encode(tok, held)
    np.save(d / "train.npy", tr)
    np.save(d / "heldout.npy", he)
    lengths = [len(e.ids) + 1 for e in tok.encode_batch(held)]  # + <eos>, as encode() writes
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).tolist()
    if sum(lengths) != he.size:
        raise RuntimeError(f"corpus: held-out file lengths sum to {sum(lengths)}, the stream holds {he.size}")
    (d / "heldout_files.json").write_text(json.dumps(
        [{"path": p, "domain": domain_of(p), "start": int(s), "tokens": int(n)}
         for p, s, n in zip(manifest.pop("heldout_paths"), starts, lengths)]) + "\n")
    manifest.update(train_tokens=int(tr.size), heldout_tokens=int(he.size), vocab=tok.get_vocab_size(),
                    bytes_per_token=manifest["bytes"] / max(1, tr.size + he.size))
    (d / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    log(f"corpus: {manifest['files']} files, {manifest['bytes'] / 1e6:.1f} MB → {tr.size / 1e6:.2f} M train + "
        f"{he.size / 1e6:.2f} M held-out tokens (vocab {manifest['vocab']})")
    return manifest


def prompts(heldout: np.ndarray, n: int, length: int, seed: int, half: int) -> np.ndarray:
    """n prompt windows [n, length] from one half of the held-out stream (half 0 → set A, 1 → set B),
    so acceptance traces and throughput runs can use disjoint text."""
    lo, hi = (0, heldout.size // 2) if half == 0 else (heldout.size // 2, heldout.size)
    rng = np.random.default_rng(seed)
    starts = np.sort(rng.choice(np.arange(lo, hi - length), size=n, replace=False))
    return np.stack([heldout[s:s + length].astype(np.int64) for s in starts])


def domain_prompts(heldout: np.ndarray, files: list[dict], sizes: dict, length: int, seed: int,
                   n_domains: int = 3) -> dict[str, list[tuple[str, str, list[int]]]]:
    """Prompt sets by domain, disjoint by file: for the `n_domains` domains with the most held-out
    files long enough for a `length`-token window, each domain's files are split by the parity of
    the SHA-1 of their path into two halves (set A: calibration, set B: timed), and sizes[set]
    windows per domain are drawn from that half's files (cycling through them in a seeded order,
    a file reused at another offset only when the half has fewer files than windows).
    Returns {"A": [(id, domain, tokens)], "B": [...]}."""
    rng = np.random.default_rng(seed)
    ok = [f for f in files if f["tokens"] - 1 > length]  # the window stays inside the file (no <eos>)
    by_dom: dict = {}
    for f in ok:
        by_dom.setdefault(f["domain"], []).append(f)
    doms = sorted(by_dom, key=lambda d: (-len(by_dom[d]), d))[:n_domains]
    if len(doms) < n_domains or any(len(by_dom[d]) < 2 for d in doms):
        raise RuntimeError(f"held-out text has {len(doms)} domains with ≥ 2 long files; {n_domains} needed")
    out: dict = {"A": [], "B": []}
    for d in doms:
        halves = {"A": [], "B": []}
        for f in by_dom[d]:
            halves["A" if int(_key(f["path"])[:8], 16) % 2 == 0 else "B"].append(f)
        if not halves["A"] or not halves["B"]:  # tiny domain: split by order instead
            fs = sorted(by_dom[d], key=lambda f: _key(f["path"]))
            halves = {"A": fs[::2], "B": fs[1::2]}
        for s, fs in halves.items():
            order = rng.permutation(len(fs))
            for i in range(sizes[s]):
                f = fs[order[i % len(fs)]]
                off = int(rng.integers(0, f["tokens"] - 1 - length))
                toks = heldout[f["start"] + off:f["start"] + off + length].astype(np.int64).tolist()
                out[s].append((f"{s}-{d}-{i}:{f['path']}@{off}", d, toks))
    return out
