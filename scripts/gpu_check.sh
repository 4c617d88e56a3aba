#!/bin/bash
# The GPU checks in one prepared run (bpkit never needs a GPU; this is for a machine that has one):
#   1. determinism: two small sweeps, each run twice with XLA's default GPU ops and twice with
#      XLA_FLAGS=--xla_gpu_deterministic_ops=true, and once on the CPU; every store's results
#      (all but wall time and device) are hashed and compared run by run with the first;
#   2. the test suite, in the background on 8 workers (JAX's preallocation off, so they share the GPU);
#   3. scripts/bench.py's grad, batch, sweep and online benchmarks.
# Usage: bash scripts/gpu_check.sh [OUT_DIR]   (default gpu-check/; logs and bench.json go there)
# Works offline: bpkit runs from this checkout (PYTHONPATH), with the machine's jax, optax, flax, chex.
set -u
O=${1:-${OUT:-gpu-check}}; mkdir -p "$O"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
W=$(mktemp -d)
{ nvidia-smi -L; python3 -V; python3 -c "import jax, optax, flax, chex
print('jax', jax.__version__, 'optax', optax.__version__, 'flax', flax.__version__, 'chex', chex.__version__, jax.devices())"; nproc; } > "$O/env.txt" 2>&1
cat "$O/env.txt"
( timeout "${SUITE_S:-270}" python3 -m pytest -q -n 8 -p no:cacheprovider --durations=25 -o addopts="-ra" > "$O/pytest.log" 2>&1
  echo "pytest rc $?" >> "$O/pytest.log" ) &
SUITE=$!
cat > "$W/det_digits.toml" <<'TOML'
# Digits 64-32-10, batch gradient descent and PR+ CG: matmul reductions and a line search.
name = "det_digits"
seeds = [0, 1, 2, 3]
loss = "mse"
[data]
name = "digits"
[network]
hidden = [32]
activation = ["sigmoid", "tanh"]
output = "sigmoid"
[training]
max_epochs = 40
batch_size = "full"
[[axis.method]]
label = "batch"
optimizer.name = "sgd"
optimizer.learning_rate = [3.0]
[[axis.method]]
label = "PR+ CG"
optimizer.name = "cg"
optimizer.beta = "pr+"
TOML
cat > "$W/digest.py" <<'PY'
import hashlib, json, sys
from bpkit.store import Store
def rows(path):
    runs, errors = Store(path, create=False).runs()
    assert not errors, errors
    return [{k: v for k, v in r.items() if k not in ("wall_time", "device")} for r in runs]
first = rows(sys.argv[1])
for path in sys.argv[1:]:
    r = rows(path)
    digest = hashlib.sha256(json.dumps(r, sort_keys=True).encode()).hexdigest()[:16]
    equal = sum(a == b for a, b in zip(r, first))
    dloss = max(abs((a["train_loss"] or 0) - (b["train_loss"] or 0)) for a, b in zip(r, first))
    depochs = sum(a["epochs"] != b["epochs"] for a, b in zip(r, first))
    print(f"{path}: {len(r)} runs, sha256 {digest}; equal to the first store: {equal}/{len(r)}; "
          f"max |train loss difference| {dloss:.3g}; other epochs in {depochs}")
PY
for config in experiments/xor.toml "$W/det_digits.toml"; do
  n=$(basename "$config" .toml)
  for take in 1 2; do
    /usr/bin/time -f "$n default ops, take $take: %e s, %M KB" timeout 120 python3 -m bpkit sweep "$config" --store "$W/$n.default$take.sqlite" --no-progress 2>&1 | tail -2
    XLA_FLAGS=--xla_gpu_deterministic_ops=true /usr/bin/time -f "$n deterministic ops, take $take: %e s, %M KB" \
      timeout 120 python3 -m bpkit sweep "$config" --store "$W/$n.deterministic$take.sqlite" --no-progress 2>&1 | tail -2
  done
  JAX_PLATFORMS=cpu /usr/bin/time -f "$n on the CPU: %e s, %M KB" timeout 120 python3 -m bpkit sweep "$config" --store "$W/$n.cpu.sqlite" --no-progress 2>&1 | tail -2
  python3 "$W/digest.py" "$W/$n".default{1,2}.sqlite "$W/$n".deterministic{1,2}.sqlite "$W/$n.cpu.sqlite"
done 2>&1 | tee "$O/determinism.txt"
wait $SUITE
tail -40 "$O/pytest.log"
timeout "${BENCH_S:-150}" python3 scripts/bench.py --only grad,batch,sweep,online --rounds 2 --json "$O/bench.json" 2>&1 | tee "$O/bench.txt"
