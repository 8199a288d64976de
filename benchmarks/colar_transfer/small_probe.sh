#!/bin/bash
# Run from /tmp; results quoted in README.md ("What limits it"). Usage: small_probe.sh SEED (data: /tmp/ct, see README).
# Model-size probe (issue #23's "what limits it"): the small preset on permutation, quickstart recipes.
export OMP_NUM_THREADS=1
S=$1; D=/tmp/ct/permutation/data; W=/tmp/ct/permutation/seed$S
cd /tmp
ponder train cot --init small --data $D --max-steps 700 --batch-size 32 --lr 5e-4 --seed $S --out $W/cot-small
ponder eval --model $W/cot-small --data $D --report $W/eval_cot-small.json
ponder train colar --init $W/cot-small --data $D --max-steps 3000 --batch-size 32 --lr 1e-3 --max-compression 4 --seed $S --out $W/colar-sum-small
ponder eval --model $W/colar-sum-small --data $D --speeds 1,2,3,4 --report $W/eval_colar-sum-small.json
echo SMALL_DONE
