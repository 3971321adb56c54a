"""Put the EMA pieces that train_on_bare_gpu.py sends back into a checkpoint (how run 4 was assembled).

Usage: python assemble_checkpoint.py START_CHECKPOINT RETURNED_DIR OUT [NOTE]
START_CHECKPOINT is the checkpoint the GPU run started from (its model config, codec settings and data hash are
kept); RETURNED_DIR holds ema_final_0.pt, ema_final_1.pt and history_final.json.
"""
import json
import sys
from pathlib import Path

import torch

from pccd_flows.model.checkpoint import load_checkpoint, save_checkpoint

start, returned, out = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
payload = load_checkpoint(start)
ema = {**torch.load(returned / "ema_final_0.pt", weights_only=True),
       **torch.load(returned / "ema_final_1.pt", weights_only=True)}
if set(ema) != set(payload["ema_state"]):
    raise SystemExit("the returned weights do not belong to this model")
history = json.loads((returned / "history_final.json").read_text())
source = {"path": sys.argv[4] if len(sys.argv) > 4 else f"GPU continuation of {start}", "sha256": payload["sha256"]}
payload = {k: v for k, v in payload.items() if k not in ("sha256", "path")}  # added by load_checkpoint
payload.update(ema_state=ema, step=history["step"], history=history["history"],
               trained_seconds=history["trained_seconds"], training_settings=history["training_settings"],
               exported_from=source)
save_checkpoint(out, payload)
print(f"{out}: step {history['step']}, sha256 {load_checkpoint(out)['sha256'][:12]}")
