"""The encoded training set in 4 MB instead of 238 MB (positions, slots and cell of each crystal; the point cloud is
rebuilt exactly from them, checked below), with the vocabulary and data hash, for train_on_bare_gpu.py."""
import json
import sys

import numpy as np

from pccd_flows.codec.encode import balanced_repeats
from pccd_flows.codec.settings import CodecSettings
from pccd_flows.data.io import file_sha256
from pccd_flows.model.conditions import element_vocabulary
from pccd_flows.model.dataset import load_encoded_dataset
from pccd_flows.settings import get_settings

out = sys.argv[1] if len(sys.argv) > 1 else "."
data_file = get_settings().data_file
dataset = load_encoded_dataset(data_file)
with open(f"{out}/meta.json", "w") as meta:
    json.dump({"vocabulary": element_vocabulary(), "data_sha256": file_sha256(data_file)}, meta)
T = dataset.tensors
N = len(T); half = CodecSettings().lattice_rows
print(N, T.shape, half)
frac = np.zeros((N,16,3), np.float32); slot = np.full((N,16), -1, np.int8); nsites = np.zeros(N, np.int8)
for i in range(N):
    rows = np.concatenate([T[i,0], T[i,1]], axis=1)
    change = np.ones(128, bool); change[1:] = np.any(rows[1:] != rows[:-1], axis=1)
    starts = np.flatnonzero(change); n = len(starts)
    frac[i,:n] = T[i,0,starts]; slot[i,:n] = T[i,1,starts].argmax(1); nsites[i] = n
lat = np.concatenate([T[:,2,0], T[:,2,half]], axis=1)
def rebuild(i):
    n = nsites[i]; t = np.zeros((3,128,3), np.float32); r = balanced_repeats(int(n),128)
    t[0] = np.repeat(frac[i,:n], r, axis=0); t[1, np.arange(128), np.repeat(slot[i,:n], r)] = 1
    t[2,:half] = lat[i,:3]; t[2,half:] = lat[i,3:]; return t
bad = [i for i in range(N) if not np.array_equal(rebuild(i), T[i])]
print("mismatch", len(bad), bad[:5])
assert not bad
np.savez_compressed(f"{out}/data.npz", frac=frac, slot=slot, nsites=nsites, lattice=lat, elements=dataset.elements,
                    band_gap=dataset.band_gap, magnetic=dataset.magnetic, material_ids=dataset.material_ids,
                    n_skipped=dataset.n_skipped)
