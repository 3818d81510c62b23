# Two entry points (see README): `make demo` and `make test`. Each creates .venv if needed.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint setup data browser bench bench-any-scan bench-sim bench-vmn bench-finetune bench-online screenshots train-click train-sim train-vmn train-prompt3d clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch first, pinned: the local CPU wheel; a loose pin would pull a multi-GB CUDA build.
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e ".[test]"
	touch $(STAMP)

setup: $(STAMP) data browser

# Real labelled volumes come from Debian's mricron-data (Colin27 + AAL, INIA19) and nilearn (MNI152).
data:
	@test -f /usr/share/mricron/templates/ch2.nii.gz || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq mricron-data; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq mricron-data; fi; }

# The web app's end-to-end tests drive Debian's headless chromium.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium; fi; }

demo: setup
	$(BIN)/interactiveseg demo --out out/demo

# The gate: lint, format, types and the architecture rules, then the whole test suite.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python tools/check_architecture.py

test: setup lint
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/interactiveseg bench --engines click,growcut --json out/bench-click.json --markdown out/bench-click.md

# The click engine on every modality at hand (needs ../shared/data beside the repository).
# The web app in headless Chromium: click -> segment visible in the page (20 clicks, click
# engine, a 256 x 256 slice), and the screenshots of README and the Extension Index.
screenshots: setup
	$(BIN)/interactiveseg web-bench --clicks 20 --screenshots Resources/Screenshots --json out/web-bench.json

bench-any-scan: setup
	$(BIN)/interactiveseg bench --engines click,growcut --data colin27,inia19 --max-slices 3 --json out/bench-click-brain-atlas.json --markdown out/bench-click-brain-atlas.md
	$(BIN)/interactiveseg bench --engines click,growcut --data ct-abdomen --max-slices 5 --json out/bench-click-ct.json --markdown out/bench-click-ct.md
	$(BIN)/interactiveseg bench --engines click,growcut --data mni152,mni152-brain --max-slices 10 --json out/bench-click-mni.json --markdown out/bench-click-mni.md
	$(BIN)/interactiveseg bench --engines click,growcut --data mr-brain-tumor,mr-breast,mr-prostate-phantom --min-voxels 100 --min-area 20 --max-slices 10 --json out/bench-click-lesions.json --markdown out/bench-click-lesions.md
	$(BIN)/interactiveseg bench --engines click,growcut --data ct-abdomen --max-slices 5 --structures colon,duodenum,gallbladder,liver,portal_vein_and_splenic_vein,sacrum,small_bowel,spleen,stomach,urinary_bladder --json out/bench-click-ct-unpaired.json --markdown out/bench-click-ct-unpaired.md
	$(BIN)/interactiveseg bench --engines click --data mni152-brain,mni152,ct-abdomen --max-slices 5 --threads 2 --json out/bench-click-speed.json --markdown out/bench-click-speed.md

bench-sim: setup
	$(BIN)/interactiveseg bench --engines sim,growcut --ablation --json out/bench-sim.json --markdown out/bench-sim.md
	$(BIN)/interactiveseg bench --engines ddg-sim-d1,ddg-sim-d2,ddg-sim-d3,ddg-sim,ddg-sim-d5,ddg-sim-d6 --json out/bench-sim-depth.json --markdown out/bench-sim-depth.md

bench-vmn: setup
	$(BIN)/interactiveseg bench --engines vmn,vmn-mem0,vmn-growcut,vmn-registration --hint scribble,box,extreme --rounds 6 --max-structures 4 --json out/bench-vmn.json --markdown out/bench-vmn.md
	$(BIN)/interactiveseg bench --engines vmn --hint scribble,box,extreme --select random,oracle --rounds 6 --max-structures 4 --no-speed --json out/bench-vmn-select.json --markdown out/bench-vmn-select.md
	# issue 20: CT, thick-slice MRI and the brain atlases, 6 rounds (Resources/Models/vmn.md, prompt3d.md)
	$(BIN)/interactiveseg bench --engines vmn,prompt3d,vmn-growcut,vmn-registration --hint scribble,box,extreme --rounds 6 --no-speed --data ct-abdomen --max-structures 4 --json out/bench-vmn-ct.json --markdown out/bench-vmn-ct.md
	$(BIN)/interactiveseg bench --engines vmn,prompt3d,vmn-growcut,vmn-registration --hint scribble,box,extreme --rounds 6 --no-speed --image ../shared/data/ct-abdomen/ct.nii.gz --labels ../shared/data/ct-abdomen/organs.seg.nrrd --structures liver,lung_lower_lobe_right --json out/bench-vmn-ct-liver-lung.json --markdown out/bench-vmn-ct-liver-lung.md
	$(BIN)/interactiveseg bench --engines vmn,prompt3d,vmn-growcut,vmn-registration --hint scribble,box,extreme --rounds 6 --no-speed --data mr-brain-tumor,mni152-brain --min-voxels 200 --max-structures 4 --json out/bench-vmn-mr.json --markdown out/bench-vmn-mr.md
	$(BIN)/interactiveseg bench --engines vmn,prompt3d,vmn-growcut,vmn-registration --hint scribble,box,extreme --rounds 6 --no-speed --data colin27,inia19 --max-structures 4 --json out/bench-vmn-brain.json --markdown out/bench-vmn-brain.md
	$(BIN)/interactiveseg bench --engines vmn --hint scribble,box,extreme --select random --rounds 6 --no-speed --data ct-abdomen,colin27,inia19 --max-structures 4 --json out/bench-vmn-select-issue20.json --markdown out/bench-vmn-select-issue20.md
	# a generated CT of three bright balls 24, 50 and 90 mm across: a large structure from a short stroke
	$(BIN)/interactiveseg bench --engines vmn,prompt3d,vmn-growcut,vmn-registration --hint scribble,box,extreme --rounds 6 --no-speed --data balls --json out/bench-vmn-balls.json --markdown out/bench-vmn-balls.md
	# the same CT as a thick-slice scan (9 mm, as a chest CT of 3 x 3 x 10 mm)
	$(BIN)/interactiveseg bench --engines vmn,prompt3d,vmn-growcut,vmn-registration --hint scribble,box,extreme --rounds 6 --no-speed --data ct-abdomen --max-structures 4 --thick-slices 3 --json out/bench-vmn-ct-thick.json --markdown out/bench-vmn-ct-thick.md

# Resumable: after a stop, the same command with --resume continues from <out>.state.
train-click: setup
	# three stages (model card click_zoom.md): zoom and the previous mask, then merged targets twice
	$(BIN)/interactiveseg train-click --out Resources/Models/click_zoom.pt --init Resources/Models/click_fcnn.pt --iterations 1100 --p-merge 0
	$(BIN)/interactiveseg train-click --out Resources/Models/click_zoom.pt --init Resources/Models/click_zoom.pt --iterations 900 --threads 1 --lr 1e-3 --max-interactions 7 --p-merge 0.35 --seed 777
	$(BIN)/interactiveseg train-click --out Resources/Models/click_zoom.pt --init Resources/Models/click_zoom.pt --iterations 900 --threads 1 --lr 7e-4 --max-interactions 8 --p-merge 0.5 --seed 778

# The SIM network and the networks of its ablation (Resources/Models/sim.md: about 3 hours of
# one CPU core in all).
train-sim: setup
	for v in auto sdg-base; do $(BIN)/interactiveseg train-sim --variant $$v --iterations 2000 || exit 1; done
	# the DDG-CIM's first two stages (the shipped DDG-SIMs all start from the DDG-CIM)
	$(BIN)/interactiveseg train-sim --variant ddg-cim --init Resources/Models/sim_auto.pt --lr 5e-4 --iterations 2000
	$(BIN)/interactiveseg train-sim --variant ddg-cim --init Resources/Models/sim_ddg_cim.pt --lr 3e-4 --iterations 1500 --max-interactions 6
	# third stage: half the virtual users start by correcting the automatic result
	$(BIN)/interactiveseg train-sim --variant ddg-cim --init Resources/Models/sim_ddg_cim.pt --corrective-start 0.5 --lr 3e-4 --iterations 1000 --max-interactions 6
	# DDG-SIM from that DDG-CIM, once per memory depth D (the ablation; D = 4 is shipped as sim_ddg_sim.pt);
	# snapshots at 250 and 500 iterations, each D keeps the one with the higher training-slice Dice@3 (sim.md):
	# 500 for every D but D = 3 (250)
	for d in 1 2 3 4 5 6; do \
	  out=Resources/Models/sim_ddg_sim_d$$d.pt; [ $$d = 4 ] && out=Resources/Models/sim_ddg_sim.pt; \
	  $(BIN)/interactiveseg train-sim --variant ddg-sim --depth $$d --init Resources/Models/sim_ddg_cim.pt --corrective-start 0.5 --lr 5e-5 \
	    --iterations 500 --max-interactions 6 --threads 1 --save-every 250 --keep-snapshots --out $$out || exit 1; done
	cp Resources/Models/sim_ddg_sim_d3.it250.pt Resources/Models/sim_ddg_sim_d3.pt
	# a last stage with t = 12 offered to both DDG networks, kept where it raised the training-slice
	# Dice over 1-10 interactions: DDG-CIM keeps its 250-iteration snapshot, DDG-SIM (D = 4) its start
	$(BIN)/interactiveseg train-sim --variant ddg-cim --init Resources/Models/sim_ddg_cim.pt --corrective-start 0.5 --lr 5e-5 \
	  --iterations 250 --max-interactions 12 --threads 1
	rm -f Resources/Models/sim_ddg_sim*.it*.pt

bench-online: setup
	$(BIN)/interactiveseg bench --engines online --stream --json out/bench-online.json --markdown out/bench-online.md

bench-finetune: setup
	$(BIN)/interactiveseg bench --engines finetune,growcut,click,finetune-3d --json out/bench-finetune.json --markdown out/bench-finetune.md
	$(BIN)/interactiveseg bench --engines finetune --ablation --max-slices 6 --no-speed --json out/bench-finetune-ablation.json --markdown out/bench-finetune-ablation.md

train-vmn: setup
	# default sources: colin27 + inia19 + ct-abdomen train splits, modality-aware, randomised (--p-augment, --max-stride)
	# f_IN: the click engine's network trained on every hint kind (Resources/Models/vmn.md); the paper's
	# f_IN (vmn_interaction.pt) is `train-vmn --part interaction`
	$(BIN)/interactiveseg train-click --out Resources/Models/vmn_hint.pt --init Resources/Models/click_zoom.pt \
	  --iterations 1000 --lr 1e-3 --max-interactions 5 --p-merge 0.35 --hints click,scribble,box,extreme --seed 2020
	$(BIN)/interactiveseg train-vmn --part memory --iterations 1500
	# the quality head alone, on the engine's own propagations of training structures
	$(BIN)/interactiveseg train-vmn --part quality --structures-per-volume 24 --rounds 4 --iterations 1500

train-prompt3d: setup
	# the 3D prompt network: colin27 + inia19 + ct-abdomen train splits, modality-aware, randomised (--p-augment);
	# resumable (--resume), --device cuda on a GPU (Resources/Models/prompt3d.md)
	$(BIN)/interactiveseg train-prompt3d --iterations 5400 --lr-drop-at 3500  # the defaults
	# then its logit offset and slice-quality model, from benchmark sessions on held-out structures the benchmark does not report
	$(BIN)/interactiveseg calibrate-prompt3d --model Resources/Models/prompt3d.pt

clean:
	rm -rf $(VENV) out
