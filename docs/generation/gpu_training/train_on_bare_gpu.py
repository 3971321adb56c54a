"""How the shipped checkpoint's GPU run was made (docs/model-card.md): continue training the checkpoint with
``pccd_flows.model.train.train`` on a lent GPU machine that had torch but neither pymatgen nor pydantic. pydantic
travelled as wheels; pymatgen is stubbed here, since training touches none of it. The training data travelled as
``data.npz`` (compact_training_data.py: the encoded data set, rebuilt exactly below) with ``meta.json`` (the
element vocabulary and the data file's sha256). The EMA weights come back in <16 MB pieces (the machine's limit on
returned files); assemble_checkpoint.py puts them back into a checkpoint.

Run 4 (the shipped weights): ``LATTICE_LOSS_WEIGHT=10 LR=4e-4 TRAIN_SECONDS=535``, assembled, then the same from
that result (placed at pccd_flows/models/pccd-default.pt for the call, so that it travels with the tracked files)
with ``LR=2e-4 TRAIN_SECONDS=190``. The pydantic wheels travel in ``.whl`` (see the device tool's README).

On a GPU machine with pccd-flows installed none of this is needed:
``pccd train --out CKPT --resume --anneal-lr --device cuda --batch-size 512 --lr 6e-4 --hours 0.1167``.

Environment: TRAIN_SECONDS, BATCH, LR, OUT, START_CHECKPOINT, LATTICE_LOSS_WEIGHT (1: the plain loss).
"""
import json
import os
import shutil
import sys
import time
import types
import typing
from pathlib import Path

HERE = Path(__file__).resolve().parent
META = json.loads((HERE / "meta.json").read_text())
VOCAB = META["vocabulary"]


class _Element:
    def __init__(self, symbol):
        if symbol not in VOCAB[2:]:
            raise ValueError(symbol)
        self.symbol, self.Z = symbol, VOCAB.index(symbol) - 1

    @classmethod
    def from_Z(cls, z):
        return cls(VOCAB[int(z) + 1])

    def __str__(self):
        return self.symbol


import importlib.abc
import importlib.machinery


class _StubModule(types.ModuleType):
    __path__: typing.ClassVar[list] = []

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Element if name == "Element" else type(name, (), {})


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname == "pymatgen" or fullname.startswith("pymatgen."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _StubModule(spec.name)

    def exec_module(self, module):
        pass


for name in [m for m in sys.modules if m == "pymatgen" or m.startswith("pymatgen.")]:
    del sys.modules[name]
sys.meta_path.insert(0, _StubFinder())
REPO = Path(os.environ.get("PCCD_REPO", HERE.parents[2]))
sys.path.insert(0, str(REPO))

import numpy as np
import torch

from pccd_flows.codec.encode import balanced_repeats
from pccd_flows.codec.settings import CodecSettings
from pccd_flows.model.dataset import EncodedDataset
from pccd_flows.model.train import TrainingSettings, train

torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
seconds = float(os.environ.get("TRAIN_SECONDS", "30"))
batch = int(os.environ.get("BATCH", "512"))
lr = float(os.environ.get("LR", "6e-4"))
out_dir = Path(os.environ.get("OUT", "/tmp/out"))
out_dir.mkdir(parents=True, exist_ok=True)

d = dict(np.load(HERE / "data.npz"))  # NpzFile would decompress an array at every access
half = CodecSettings().lattice_rows
n = len(d["nsites"])
tensors = np.zeros((n, 3, 128, 3), np.float32)
for i in range(n):
    k = int(d["nsites"][i])
    r = balanced_repeats(k, 128)
    tensors[i, 0] = np.repeat(d["frac"][i, :k], r, axis=0)
    tensors[i, 1, np.arange(128), np.repeat(d["slot"][i, :k].astype(int), r)] = 1.0
    tensors[i, 2, :half] = d["lattice"][i, :3]
    tensors[i, 2, half:] = d["lattice"][i, 3:]
dataset = EncodedDataset(tensors, d["elements"], d["band_gap"], d["magnetic"], d["material_ids"],
                         int(d["n_skipped"]), META["data_sha256"])
print(f"{n} crystals rebuilt; device {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'}",
      flush=True)

ckpt = Path("/tmp/pccd-gpu-run.pt")
shutil.copy(os.environ.get("START_CHECKPOINT", REPO / "pccd_flows/models/pccd-default.pt"), ckpt)
# LATTICE_LOSS_WEIGHT > 1 continues with the lattice weighted in the loss (docs/reconstruction.md: the lattice lengths
# are what the reconstruction targets still miss)
settings = TrainingSettings(batch_size=batch, learning_rate=lr, validation_every_s=45.0, checkpoint_every_s=100.0,
                            lattice_loss_weight=float(os.environ.get("LATTICE_LOSS_WEIGHT", "1")))
last_export = [time.monotonic()]


def export(tag):
    payload = torch.load(ckpt, map_location="cpu", weights_only=True)
    keys = list(payload["ema_state"])
    for part, chunk in enumerate((keys[: len(keys) // 2], keys[len(keys) // 2 :])):
        torch.save({k: payload["ema_state"][k] for k in chunk}, out_dir / f"ema_{tag}_{part}.pt")
    (out_dir / f"history_{tag}.json").write_text(json.dumps({"step": payload["step"], "history": payload["history"],
        "trained_seconds": payload["trained_seconds"], "training_settings": payload["training_settings"]}))
    print(f"exported {tag} at step {payload['step']}", flush=True)


def on_step(info):
    if info["run_steps"] % 200 == 0:
        print(f"step {info['step']} loss {info['loss']:.4f} t {time.monotonic() - t0:.0f}s", flush=True)
    if time.monotonic() - last_export[0] > 130 and ckpt.stat().st_mtime > last_export[1]:
        export("mid")
        last_export[:] = [time.monotonic(), ckpt.stat().st_mtime]


last_export.append(0.0)
t0 = time.monotonic()
train(dataset, ckpt, settings=settings, hours=seconds / 3600, resume=True, anneal_lr=True,
      log_path=out_dir / "train_log.jsonl", on_step=on_step, device="auto")
export("final")
for f in out_dir.glob("ema_mid_*"):
    f.unlink()  # the final export replaces it
print("done", flush=True)
