#!/usr/bin/env bash
# Real-image results: SimCLR and MAE pre-training on scikit-learn's
# handwritten digits against random initialisation, judged by kNN, linear
# probe and fine-tuning top-1 on the 449 test digits, over several seeds.
#
#   bash tools/digits_benchmark.sh [SEEDS...]        (default: 0 1 2)
#
# Needs the release CLI (`cargo build --release -p selfsup-cli`) and
# data/digits.csv.gz (scikit-learn's file; see the README). Writes
# work_dirs/digits/results.jsonl (one line per measurement) and prints the
# table as mean ± sample standard deviation over the seeds.
#
# Per seed S and algorithm: pre-train (`randomness.seed=S`; an existing
# final checkpoint in the work dir is reused); kNN (k=20) and
# linear probe (`--seed S`) of the pre-trained and of the randomly
# initialised backbone; fine-tune from the pre-trained backbone and from
# random initialisation (`randomness.seed=S`).
set -euo pipefail
cd "$(dirname "$0")/.."
SELFSUP=${SELFSUP:-${CARGO_TARGET_DIR:-target}/release/selfsup}
[ $# -gt 0 ] || set -- 0 1 2
SEEDS=("$@")
OUT=work_dirs/digits
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: > "$RESULTS"
[ -d data/digits/train ] || "$SELFSUP" export-digits --data-file data/digits.csv.gz --out data/digits

record() { # algo seed init metric value
    printf '{"algorithm":"%s","seed":%s,"init":"%s","metric":"%s","top1":%s}\n' "$1" "$2" "$3" "$4" "$5" >> "$RESULTS"
    echo "$1 seed $2 $3 $4: $5"
}
top1_of() { python3 -c 'import json,sys; d=[json.loads(l) for l in sys.stdin if l.startswith("{")]; print(d[-1]["top1"] if "top1" in d[-1] else d[-1]["accuracy"]["topk"][0][1])'; }

for algo in simclr mae; do
    case $algo in
        simclr) pre=configs/simclr/simclr_resnet18-tiny_digits.toml; ft=configs/benchmarks/classification/digits/resnet18-tiny_ft_digits.toml; ep=30 ;;
        mae) pre=configs/mae/mae_vit-tiny-p4_digits.toml; ft=configs/benchmarks/classification/digits/vit-tiny-p4_ft_digits.toml; ep=20 ;;
    esac
    for s in "${SEEDS[@]}"; do
        w=$OUT/${algo}_pre_s$s
        ckpt=$w/epoch_$ep.safetensors
        # A finished pre-training (same config and seed) is reused.
        [ -f "$ckpt" ] || "$SELFSUP" train "$pre" --work-dir "$w" --no-progress --cfg-options randomness.seed="$s" > "$w.log" 2>&1
        for init in pretrained random; do
            c=(); [ $init = pretrained ] && c=(--checkpoint "$ckpt")
            v=$("$SELFSUP" knn "$pre" "${c[@]}" --train data/digits/train --val data/digits/test --k 20 --json --cfg-options randomness.seed="$s" | top1_of)
            record $algo "$s" $init knn "$v"
            v=$("$SELFSUP" linear-probe "$pre" "${c[@]}" --train data/digits/train --val data/digits/test --seed "$s" --json | top1_of)
            record $algo "$s" $init linear "$v"
            rm -rf "$OUT/${algo}_ft_${init}_s$s"
            v=$("$SELFSUP" finetune "$ft" "${c[@]}" --work-dir "$OUT/${algo}_ft_${init}_s$s" --no-progress --json \
                --cfg-options randomness.seed="$s" 2> "$OUT/${algo}_ft_${init}_s$s.log" | top1_of)
            record $algo "$s" $init finetune "$v"
        done
    done
done

python3 - "$RESULTS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("\n| algorithm | init | kNN (k=20) | linear probe | fine-tune |\n|---|---|---|---|---|")
for algo in ("simclr", "mae"):
    for init in ("random", "pretrained"):
        cells = []
        for metric in ("knn", "linear", "finetune"):
            v = [r["top1"] for r in rows if (r["algorithm"], r["init"], r["metric"]) == (algo, init, metric)]
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            cells.append(f"{statistics.mean(v):.2f} ± {sd:.2f}" if v else "-")
        print(f"| {algo} | {init} | " + " | ".join(cells) + " |")
EOF
