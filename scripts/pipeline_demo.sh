#!/usr/bin/env bash
# The model pipeline end to end on this CPU (issue 5): a small Chinese instruction set is masked and
# converted, the embedded model is LoRA-tuned on it, scored before and after on a held-out split, and the
# result exported as one GGUF that `glmkit serve -m` loads. About 20-30 minutes on 2 quiet cores.
#
#   bash scripts/pipeline_demo.sh [OUT_DIR] [STEPS]      # default: pipeline-demo, 200 steps
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
out=${1:-pipeline-demo}
steps=${2:-200}
g=.venv/bin/glmkit

python3 bench/data/tnews_sft.py "$out"
for split in train test; do
  $g data mask "$out/$split.alpaca.jsonl" --field input -o "$out/$split.masked.jsonl" --json
  $g data convert "$out/$split.masked.jsonl" --from alpaca -o "$out/$split.jsonl" --json
done

cat > "$out/lora.yaml" <<YAML
model: default
method: lora
data: train.jsonl
eval_data: test.jsonl
eval_every: 100
output_dir: run
max_steps: $steps
batch_size: 2
grad_accum: 1
lr: 3.0e-4
warmup: 10
max_seq_len: 128
save_every: 50
log_every: 10
threads: 2
lora: {r: 8, alpha: 16, dropout: 0.05, target_modules: [q_proj, k_proj, v_proj, o_proj]}
YAML

$g eval predict "$out/test.jsonl" --out "$out/before.jsonl" --task classify --max-tokens 8 \
  --report "$out/report-before" --json > "$out/before.json"
$g train run "$out/lora.yaml" --json > "$out/train.json"
$g train export "$out/run" --gguf "$out/tnews.gguf" --dtype q8_0 --json
$g eval predict "$out/test.jsonl" --out "$out/after.jsonl" --task classify --max-tokens 8 \
  -m "$out/tnews.gguf" --report "$out/report-after" --json > "$out/after.json"

# Serve the tuned model and ask it one held-out title over the OpenAI-compatible API.
port=${GLMKIT_DEMO_PORT:-8765}
$g serve -m "$out/tnews.gguf" --port "$port" > "$out/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$port/health" > /dev/null && break; sleep 1; done
python3 - "$out" "$port" <<'PY'
import json, sys, urllib.request
out, port = sys.argv[1], sys.argv[2]
first = json.loads(open(f"{out}/test.jsonl", encoding="utf-8").readline())
msgs = [{"role": m["role"], "content": m["content"]} for m in first["conversations"] if m["role"] != "assistant"]
model = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models"))["data"][0]["id"]
req = urllib.request.Request(
    f"http://127.0.0.1:{port}/v1/chat/completions",
    data=json.dumps({"model": model, "messages": msgs, "max_tokens": 8, "temperature": 0}).encode(),
    headers={"Content-Type": "application/json"},
)
reply = json.load(urllib.request.urlopen(req, timeout=300))["choices"][0]["message"]["content"]
gold = [m for m in first["conversations"] if m["role"] == "assistant"][0]["content"]
print(f"served {out}/tnews.gguf as {model!r}: {msgs[-1]['content'].splitlines()[-1]!r} -> {reply!r} (gold {gold!r})")
json.dump({"reply": reply, "gold": gold}, open(f"{out}/served.json", "w"), ensure_ascii=False)
PY
kill $server; wait $server 2>/dev/null || true

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
b, a = (json.load(open(f"{out}/{n}.json")) for n in ("before", "after"))
t = json.load(open(f"{out}/train.json"))
log = [json.loads(x) for x in open(f"{out}/run/log.jsonl")]
window = [r["loss"] for r in log if "loss" in r]
print(f"training loss (mean of 10 steps): {window[0]:.3f} -> {window[-1]:.3f} over {t['steps']} steps")
print(f"held-out loss: {t['start_eval_loss']:.3f} -> {t['eval_loss']:.3f}")
for k in ("accuracy",):
    print(f"held-out {k}: {b[k]:.3f} -> {a[k]:.3f}")
print(f"held-out macro-F1: {b['macro']['f1']:.3f} -> {a['macro']['f1']:.3f}")
print(f"serve it again: .venv/bin/glmkit serve -m {out}/tnews.gguf")
PY
