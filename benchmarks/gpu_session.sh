#!/usr/bin/env bash
# Everything worth running on a lent GPU, as one prepared run: the CUDA tests of every topic, then each
# benchmark with --device cuda at the sizes the issues quote, then a short end-to-end training through the
# CLI. Each step has its own time limit so one slow step cannot eat the others' time.
#
#   bash benchmarks/gpu_session.sh OUT_DIR
#
# The machine's preinstalled PyTorch/transformers/peft are used; packages it lacks (PyAV, pycocotools,
# rouge-score, nltk) are installed from wheels in .whl/ when that folder exists.
set -u
out=${1:-/tmp/deepnotes-gpu}
mkdir -p "$out"
py=${PYTHON:-python3}
if [ -d .whl ]; then
  $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS command...: run with a limit, keep its output in OUT/NAME.txt
  local name=$1 limit=$2
  shift 2
  echo "=== $name (limit ${limit}s)"
  local t0=$SECONDS
  timeout "$limit" "$@" >"$out/$name.txt" 2>&1
  local rc=$?
  tail -n 40 "$out/$name.txt"
  echo "=== $name: exit $rc after $((SECONDS - t0)) s"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$py -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__,
'peft', peft.__version__, torch.cuda.get_device_name())"

# the end-to-end step's data is rendered on the CPU while the GPU steps run
( $py -m deepnotes.cli pose synth /tmp/e2e/train --n 1000 --seed 0 --size 160,160 \
  && $py -m deepnotes.cli pose synth /tmp/e2e/val --n 150 --seed 1 --size 160,160 && touch /tmp/e2e/done || touch /tmp/e2e/failed ) \
  >"$out/pose_synth.txt" 2>&1 &

step cuda_tests 120 $py -m pytest -q -p no:cacheprovider tests/test_cuda.py
step optim_step 120 $py benchmarks/optim_step.py --device cuda --params 166e6 --repeat 20 \
  --impls torch-loop,torch-foreach,torch-fused,ours-loop,ours-foreach,ours-fused,ours-fused_nopack
step peft_step 150 $py benchmarks/peft_step.py --device cuda --layers 12 --width 768 --batch 8 --seq 512 --bf16
step video_models 90 $py benchmarks/video_models.py --device cuda --repeat 10
step pose_heads 45 $py benchmarks/pose_heads.py --device cuda

# end to end on the GPU: each pose head trained through the CLI on synthetic data, then scored
export py
e2e() {
  wait_for_data || return 1
  for head in rle regression heatmap; do
    $py -m deepnotes.cli pose train --head $head --train /tmp/e2e/train/annotations.json \
      --val /tmp/e2e/val/annotations.json --out /tmp/e2e/run-$head --epochs 20 --batch-size 64 --lr 3e-3 \
      --input-size 128,96 --heatmap-size 32,24 --depth 18 --width 32 --device cuda --workers 8 | tail -n 3 || return 1
    echo "$head:"
    $py -m deepnotes.cli pose eval /tmp/e2e/run-$head --ann /tmp/e2e/val/annotations.json \
      | grep -E '"(AP|AP50|AP75|PCK@0.05|PCK@0.1|mean_error_px)"' 
  done
}
wait_for_data() { while [ ! -f /tmp/e2e/done ]; do [ -f /tmp/e2e/failed ] && return 1; sleep 2; done; }
export -f e2e wait_for_data
step pose_e2e 150 bash -c e2e
