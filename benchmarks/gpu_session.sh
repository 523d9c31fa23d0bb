#!/usr/bin/env bash
# Everything worth running on a lent GPU, as one prepared run: the CUDA tests of every topic, then each
# benchmark with --device cuda at the sizes the open issues quote (optim, peft, video; the pose benchmarks and
# an end-to-end pose training ran on 2026-11-26, see docs/measurements/2026-11-26-h200/). Each step has
# its own time limit so one slow step cannot eat the others' time; at most ~9.5 minutes in all.
#
#   bash benchmarks/gpu_session.sh OUT_DIR
#
# The machine's preinstalled PyTorch/transformers/peft are used; packages it lacks (PyAV, pycocotools,
# rouge-score, nltk) are installed from wheels in .whl/ when that folder exists (carry it along).
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

step cuda_tests 60 $py -m pytest -q -p no:cacheprovider tests/test_cuda.py
step optim_step 80 $py benchmarks/optim_step.py --device cuda --params 166e6 --repeat 20 --profile \
  --impls torch-loop,torch-foreach,torch-fused,ours-loop,ours-foreach,ours-fused,ours-fused_nopack
step peft_step 100 $py benchmarks/peft_step.py --device cuda --layers 12 --width 768 --batch 8 --seq 512 --bf16 \
  --profile
# a cold machine compiles 4 train steps and 3 inference graphs here: 150 s was not enough (2026-11-26, commit 6f71362)
step peft_compile 200 $py benchmarks/peft_step.py --device cuda --layers 12 --width 768 --batch 8 --seq 512 --bf16 \
  --compile --dropout 0
step video_models 40 $py benchmarks/video_models.py --device cuda --repeat 10
step video_graphs 90 $py benchmarks/video_models.py --device cuda --repeat 10 --compile reduce-overhead \
  --models tsn,tsm,tam,i3d
