#!/usr/bin/env python3
"""Write the seven chapter sources ``notebooks/NN_*.ipynb`` (outputs stripped).

The notebooks are the source of truth that readers open and edit; this script
only keeps their common parts (title, Colab cell, parameters cell, set-up)
identical across chapters when the chapters are regenerated:

    python scripts/make_notebooks.py            # write all seven
    python scripts/make_notebooks.py --check    # exit 1 if a notebook differs from this script

Every chapter follows the book contract (``book/CONTRACT.md``): a title cell,
a Colab cell (a no-op outside Colab), a ``parameters`` cell with exactly
``profile``, ``data_dir``, ``runs_dir``, ``seed``, ``device``, then
``ctx = chapter_setup(...)``.  All logic lives in ``cyclegan_lib``; the cells
here are prose, a few calls, and figures.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "notebooks"


def repository_url() -> str:
    """``repository.url`` of ``_config.yml`` (the one place the URL is written)."""
    text = (REPO / "_config.yml").read_text()
    match = re.search(r"^repository:\s*\n(?:\s+.*\n)*?\s+url:\s*(\S+)", text, re.M)
    if not match:
        raise SystemExit("_config.yml has no repository.url")
    return match.group(1)


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(text.strip("\n"))


def code(text: str, tags: list[str] | None = None) -> nbformat.NotebookNode:
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = tags
    return cell


def header(title: str, intro: str) -> list[nbformat.NotebookNode]:
    """Title, Colab install cell, parameters, set-up: the same four cells in every chapter."""
    url = repository_url()
    return [
        md(f"# {title}\n\n{intro.strip()}"),
        code(f'''
# On Google Colab: install the library and fetch the data. A no-op elsewhere.
import sys
if "google.colab" in sys.modules:
    %pip install -q "cyclegan-lib @ git+{url}"
    from cyclegan_lib.book import colab_setup
    colab_setup()
'''),
        code('''
profile = "cpu"
data_dir = None
runs_dir = None
seed = 0
device = "auto"
''', tags=["parameters"]),
        code('''
from cyclegan_lib import book, report, viz
from cyclegan_lib.book import chapter_setup

ctx = chapter_setup(profile=profile, data_dir=data_dir, runs_dir=runs_dir,
                    seed=seed, device=device)
'''),
    ]


SETUP_NOTE = md('''
The parameters cell above is what [papermill](https://papermill.readthedocs.io) replaces
when the book is built; the line printed by `chapter_setup` says which profile, data and
runs this copy of the chapter was executed with. The published book uses the `cpu`
profile; the continuous-integration tests run every chapter at the `smoke` profile, where
the models train for a few steps only and the figures show nothing but that the code runs.
''')


# -- 1. data --------------------------------------------------------------------------------

def chapter_data() -> list:
    return header("The data: selfies and anime faces", '''
CycleGAN learns to translate between two *unpaired* sets of images: domain A, photos of
human faces, and domain B, anime faces. Nobody drew an anime version of any of the photos;
the model only ever sees the two piles. This chapter looks at the two piles the book trains
on, at what the loader does to every image before a network sees it, and at how this data
differs from the paper's.
''') + [SETUP_NOTE, md('''
## The paper's data and ours

The paper (Bernstein & Petri) collected its own two sets, which are not available. This book
uses **selfie2anime**, the benchmark introduced with U-GAT-IT (Kim et al., 2020), which is
the standard dataset for exactly this task:

| | the paper | this book (selfie2anime) |
|---|---|---|
| human faces (A) | 1,081 real faces, 600x600 px, women and men, from a public face-detection dataset | 3,400 training + 100 test selfies, 256x256 px, **all women** |
| anime faces (B) | 22,805 anime faces of 82-220 px, cropped with an anime-face detector | 3,400 training + 100 test anime faces, 256x256 px |
| ratio A : B | about 1 : 21 | 1 : 1 |

What these differences may change:

* **Gender.** Every training selfie shows a woman. A generator trained on them has never seen
  a beard or a typically male face, so chapter 6 tests exactly that (facial hair, men's
  faces). The paper's human set had both genders. The folder `faces/pool/` beside the data
  holds 326 everyday faces of women and men, for readers who want to build a mixed-gender
  domain A.
* **Framing.** Selfies are close-up, centred and often tilted, like the anime crops; photos
  from a face-detection dataset are framed less uniformly. Expect selfie2anime to be the
  easier task.
* **Resolution.** The paper's anime faces were small (82-220 px) and had to be upscaled to
  the 256 px the networks take; selfie2anime's are 256 px already.
* **Epoch length.** An epoch of the official code is as long as the larger domain: 22,805
  iterations in the paper, 3,400 here. Epoch counts of the two are therefore not comparable;
  iteration counts are.
'''), md('''
## What is on disk

First a look at the files themselves, from their headers only (no pixels are decoded): how
many there are, what format the bytes really are (a name ending in `.jpg` proves nothing),
colour modes and pixel sizes.
'''), code('''
folders = ["trainA", "trainB", "testA", "testB"]
overview = [book.folder_overview(ctx.data_dir / f) for f in folders]
book.show_markdown(report.markdown_table(overview))
'''), md('''
In the original selfie2anime download the anime files are PNG data behind `.jpg` names; the
copy used here was re-encoded as real JPEG to save space (see the data README). The
`formats` column shows what the files hold now. All images are 256x256, so at every profile
the networks see downscaled versions (the `full` profile: the paper's 256 px crops of a
287 px resize).

## Cleaning: what the loader keeps

Before training, the loader opens every file once (`cyclegan_lib.data.scan_folder`).
It converts what can be converted to 8-bit RGB (grayscale, CMYK, palette, transparency,
16-bit) and drops what cannot be used (empty, truncated or unrecognised files, and images
smaller than the crop), writing the reason for each decision. Every run directory keeps that
report as `data_report.txt`. The cell below makes the same call as the trainer, at this
chapter's profile.
'''), code('''
rows, scan_report = book.scan_overview(ctx)
book.show_markdown(report.markdown_table(rows))
print(scan_report)
'''), code('''
cfg = book.profile_config(ctx)
book.show_markdown(report.describe_scan(rows, cfg.max_images))
'''), md('''
The `tensor` column is what the trainer keeps in memory: every usable image decoded once,
resized once, and stored as one `uint8` tensor per domain. No JPEG is decoded twice during
training, which matters on a CPU where decoding would otherwise cost as much as a small
network's forward pass.

## A look at both domains

Eight training images of each domain, as the loader sees them:
'''), code('''
import torch

x_a = viz.test_images(ctx.data_dir, "A", n=8, size=128, split="train")
x_b = viz.test_images(ctx.data_dir, "B", n=8, size=128, split="train")
viz.show_grid(torch.cat([x_a, x_b]), nrow=8,
              row_titles=["trainA (human)", "trainB (anime)"]);
'''), md('''
What a translation has to change: anime faces have much larger eyes, tiny noses and mouths,
pointed chins, flat colour areas with dark outlines, and hair colours no selfie has. Selfies
bring hands, glasses, phones and busy backgrounds. Much of the difference is *shape*, not
only texture and colour, and shape changes are the known weak point of CycleGAN (Zhu et al.
list them among its failure cases). Keep that in mind when judging the outputs in later
chapters.

## The transforms, step by step

The paper uses the official CycleGAN pre-processing: resize to a load size a little larger
than the crop, take a random crop, flip horizontally with probability 1/2, and scale the
pixel values to [-1, 1] (the range of the generator's `tanh` output). The figure applies
these steps to one training image with this chapter's profile sizes; the crop position comes
from the same seeded plan the trainer draws (`cyclegan_lib.data.EpochPlan`), and
the flip is forced on so that the step is visible.
'''), code('''
first = sorted((ctx.data_dir / "trainA").iterdir())[0]
load, crop = cfg.resolved_load_size, cfg.image_size
print(f"profile {ctx.profile}: resize to {load} px, crop {crop} px")
viz.transform_steps(first, load, crop, seed=ctx.seed, flip=True);
'''), md('''
Steps 1-2 happen once, when the data are loaded (and cached on disk); steps 3-5 happen for
every training image at every step, on the tensors in memory. Crops and flips are cheap
augmentation: the networks rarely see exactly the same pixels twice. Because the crop
positions and flips are drawn from the seed and the epoch number alone, an interrupted run
that is resumed sees exactly the batches an uninterrupted run would have seen.

The histogram (panel 5) shows the values the network receives, one curve per colour
channel: on this scale 0 is mid-grey, and everything darker (hair, pupils, shadows,
outlines) is negative. Keep this in mind for chapter 2, where a generator ending in a ReLU
can only produce the non-negative half.

## Summary

* The book trains on selfie2anime (3,400 + 3,400 training images), not the paper's data; the
  main differences are an all-female human domain, a 1:1 instead of 1:21 ratio, and 256 px
  anime faces.
* The scan report above lists every file that was converted or dropped; the same report is
  written into every run directory.
* Every image goes through resize (once), random crop, random flip and scaling to [-1, 1].
''')]


# -- 2. naive -------------------------------------------------------------------------------

def chapter_naive() -> list:
    return header("A naive first model", '''
The paper's first attempt keeps CycleGAN's structure (two generators G_AB: human to anime
and G_BA: anime to human, two discriminators D_A and D_B, and the cycle-consistency loss)
but builds the adversarial part the way the original GAN did. This chapter trains that model
and looks at what goes wrong, and why.
''') + [SETUP_NOTE, md('''
## What is naive about it

Four choices separate this model from the official CycleGAN recipe of the next chapter:

1. **One verdict per image.** The discriminator ends in a single sigmoid output: the
   probability that its whole 70x70 input is real. The official PatchGAN instead returns a
   map of scores, one for each overlapping 70x70 patch, which gives the generator a training
   signal for every region of the image.
2. **Negative log-likelihood loss** (binary cross-entropy), the loss of the original GAN.
   Once the discriminator is confident, its sigmoid saturates and the generator's gradients
   become small.
3. **No history buffer.** The discriminator sees only the newest fakes, so it can chase the
   generator's latest mode and the two networks can oscillate.
4. **A ReLU output layer** (and residual blocks computing `relu(x + F(x))`). Images live in
   [-1, 1]; a ReLU cannot output anything below 0, which is every shade darker than
   mid-grey.

The settings of the naive and the official (stabilised) model side by side, as this
profile builds them:
'''), code('''
settings = report.preset_table(["naive", "stabilized"], ctx.profile)
book.show_markdown(report.markdown_table(settings))
cfg = book.profile_config(ctx, "naive")
print(f"Images are {cfg.image_size} px at this profile; the naive discriminator judges "
      f"{cfg.d_patch}x{cfg.d_patch} px inputs (70 px, capped at the image size).")
'''), md('''
## Training

`ensure_runs` loads the run from the runs folder if it is complete (the published book's runs
were trained by `scripts/train_cpu_runs.sh` at the `cpu` profile) and trains it otherwise,
so this chapter also runs on its own.
'''), code('''
runs = book.ensure_runs(ctx, ["naive"])
print(report.describe_run("naive", runs["naive"]))
'''), md('''
## Loss curves

Each panel shows both directions (A solid, B dashed), smoothed, with the raw values faint
behind. How to read them: an NLL discriminator that cannot tell real from fake has a loss of
ln 2 = 0.693; a loss falling towards 0 means it wins. The cycle term is an L1 reconstruction
error that does not depend on the discriminators; it should fall steadily in any healthy run.
'''), code('''
viz.plot_losses({"naive": runs["naive"]});
'''), code('''
summary = report.loss_summary(runs["naive"])
book.show_markdown(report.describe_losses("naive", summary))
'''), md('''
## Samples

The trainer saves a grid of four fixed test images at regular steps. Rows: a selfie, its
anime translation, and the translation translated back; then the same for an anime face.
'''), code('''
viz.sample_grid_from_run(runs["naive"]);
'''), md('''
What to look for: does row 2 look like an anime face, or like a tinted copy of row 1? Do the
reconstructions (row 3) match the inputs? A low cycle error alone proves little: a generator
can hide the information it needs for the way back in faint patterns of its output
(Chu et al., 2017), so the reconstruction can be good while the translation is poor.

The same translation of the four selfies at several points of training shows whether the
model settles or keeps changing its mind:
'''), code('''
viz.sample_timeline(runs["naive"]);
'''), md('''
## The ReLU output cannot draw dark pixels

The histogram compares pixel values of real anime faces with the naive generator's outputs
for the same number of test selfies.
'''), code('''
size = cfg.image_size
x_a = viz.test_images(ctx.data_dir, "A", n=16, size=size)
real_b = viz.test_images(ctx.data_dir, "B", n=16, size=size)
fake_b = viz.generate(runs["naive"], x_a, device=ctx.device)
batches = {"real anime (testB)": real_b, "naive G_AB(testA)": fake_b}
viz.plot_value_histograms(batches);
rows = [{"images": k, **report.output_value_summary(x)} for k, x in batches.items()]
book.show_markdown(report.markdown_table(rows))
'''), md('''
The `share < 0` column is the fraction of values darker than mid-grey. For the naive
generator it is exactly 0 by construction: whatever it learns, dark hair, outlines and
pupils are out of its reach: no output pixel can be darker than mid-grey. This failure needs no
training to show; the other three choices act through training.

## Does the output depend on the input?

A generator can also fail by *collapse*: it learns one output that fools the discriminator
well enough and produces it for every input. The timeline above shows four different
selfies in each row; if the four translations look alike, that is collapse. The number below
measures it: how different the outputs are from each other, relative to how different the
inputs are.
'''), code('''
book.show_markdown(report.describe_diversity(x_a, {"naive": fake_b}))
'''), md('''
## Metrics

Numbers next to the pictures (computed by `cyclegan_lib.evaluate` on the 100 test
images of each domain, cached in the run directory):

* **anime det. G_AB(A)**: the share of translated selfies on which an anime-face detector
  fires (on real anime faces it fires about 9 times in 10, on real selfies about 3 in 10);
  a good human-to-anime translator pushes this up.
* **human det. G_BA(B)**: the same with OpenCV's human-face detector on anime faces
  translated to humans.
* **cycle L1**: mean absolute error of a round trip on the [-1, 1] scale; **identity L1**:
  how much a generator changes an image that is already in its target domain.
* **KID x100 / FID**, the standard distribution distances (U-GAT-IT reports KID x100 of 13.08
  for CycleGAN and 11.61 for U-GAT-IT on selfie2anime at 256 px), when the Inception weights
  are available; otherwise the table says why they are missing.
'''), code('''
metrics = book.show_metrics(ctx, runs)
'''), code('''
from cyclegan_lib import evaluate

book.show_markdown(evaluate.detector_table(metrics["naive"]))
'''), md('''
The second table puts the translated images beside the real ones: the rows `testA` and
`testB` are the detectors' rates on real selfies and real anime faces, the scale against
which the translations can be read.

## Why it is expected to fail

* With a sigmoid output and NLL loss, a discriminator that wins easily saturates: its
  gradients with respect to the fakes vanish, and the generator stops learning. The loss
  summary above says how confident the discriminators became in this run.
* One probability per image gives the generator a single number of feedback per image; a
  patch map gives one per region.
* Without a history buffer the discriminator only ever sees the newest fakes and can
  forget what earlier ones looked like, which invites oscillation; compare the timeline
  above with the stabilised model's in the next chapter.
* The ReLU output cannot reach the dark half of the colour range (measured above).
* A generator that barely gets a useful gradient can settle on one output that fools the
  discriminator often enough, whatever the input: the diversity measurement above says
  whether that happened in this run.

How much worse this model is than the official recipe can only be judged against it:
chapter 3 trains that recipe on the same data and compares the two side by side.
''')]


# -- 3. stabilisation -----------------------------------------------------------------------

def chapter_stabilization() -> list:
    return header("Stabilising training: LSGAN and a history buffer", '''
The paper's second model adopts the recipe of the official CycleGAN code: a least-squares
(LSGAN) loss, a history buffer of 50 generated images, a PatchGAN discriminator that scores
every 70x70 patch, and a generator ending in `tanh`. This chapter trains it on the same data
as the naive model and compares the two.
''') + [SETUP_NOTE, md('''
## What changes

* **LSGAN** (Mao et al., 2017) replaces the log loss by squared errors: the discriminator
  minimises $\\frac{1}{2}\\left[(D(b) - 1)^2 + D(G(a))^2\\right]$ and the generator
  $(D(G(a)) - 1)^2$. Fakes that the discriminator already rejects still produce gradients
  proportional to their distance from the real target, so the generator keeps learning
  when the discriminator is ahead.
* **History buffer** (Shrivastava et al., 2017): the discriminator is trained on a mix of the
  newest fakes and fakes from the last 50 it has seen, so it cannot over-fit to the
  generator's latest output.
* **PatchGAN map**: one score per overlapping 70x70 patch instead of one per image.
* **tanh output** and the official residual block `x + F(x)`: outputs can use the whole
  [-1, 1] range.

The paper changes these together, and so does the `stabilized` preset: the comparison below
says whether the recipe as a whole helps, not which of its parts does. (Each part is one
option of `cyclegan_lib.config.TrainConfig`, so single changes can be tried with
`make_config("naive", profile, gan_loss="lsgan")` and the like.)
'''), code('''
settings = report.preset_table(["naive", "stabilized"], ctx.profile)
book.show_markdown(report.markdown_table(settings))
'''), md('''
## Training

Both runs come from the runs folder when they exist and are trained otherwise.
'''), code('''
runs = book.ensure_runs(ctx, ["naive", "stabilized"])
for name, run in runs.items():
    print(report.describe_run(name, run))
'''), md('''
## Loss curves side by side

Mind the scales: an NLL discriminator at chance has a loss of 0.693, an LSGAN one 0.25 (both
halved, as in the official code). Compare the shapes of the curves, and the discriminator
losses relative to their chance levels in the table below, not the heights.
'''), code('''
viz.plot_losses({"naive": runs["naive"], "stabilised": runs["stabilized"]});
'''), code('''
summaries = {name: report.loss_summary(run) for name, run in runs.items()}
book.show_markdown(report.markdown_table(
    [{"run": name, **s} for name, s in summaries.items()],
    columns=["run", "gan_loss", "steps", "D", "D / chance", "G_adv", "g_spread",
             "cycle"]))
for name, s in summaries.items():
    book.show_markdown(report.describe_losses(name, s))
'''), md('''
`D / chance` is the discriminators' mean loss over the last quarter of training divided by
its value at chance; `g_spread` is how much the generators' adversarial loss swings there
(standard deviation over mean). Both are rough summaries of the curves above, not measures
of image quality.

## Translations side by side

The same test images through both models: first selfies to anime, then anime to selfies.
'''), code('''
models = {"naive": runs["naive"], "stabilised": runs["stabilized"]}
viz.translate_examples(models, ctx.data_dir, n=6, device=ctx.device);
'''), code('''
viz.translate_examples(models, ctx.data_dir, n=6, direction="BtoA",
                       device=ctx.device);
'''), md('''
Do the outputs follow their inputs, or has a model collapsed to one answer (chapter 2)?
'''), code('''
x_a = viz.test_images(ctx.data_dir, "A", n=16, size=book.profile_config(ctx).image_size)
outputs = {name: viz.generate(run, x_a, device=ctx.device) for name, run in models.items()}
book.show_markdown(report.describe_diversity(x_a, outputs))
'''), md('''
And the stabilised model's training samples and how its translation developed over time
(compare with the naive model's timeline in chapter 2):
'''), code('''
viz.sample_grid_from_run(runs["stabilized"]);
'''), code('''
viz.sample_timeline(runs["stabilized"]);
'''), md('''
## Metrics
'''), code('''
metrics = book.show_metrics(ctx, models)
book.show_markdown(report.describe_comparison(
    "stabilised", "naive", metrics["stabilised"], metrics["naive"]))
'''), md('''
The sentence above is computed from the table: it uses KID when it was measured and the
anime-detector rate otherwise, and it treats small differences as noise (100 test images
do not resolve them). Judge the pictures too: a detector firing on an output says that it
has the layout of an anime face, not that it is a good one.

## Scaling out: training on several GPUs

A reader who outgrows one GPU can run the same command under PyTorch's launcher; the
trainer detects `torchrun`'s environment and wraps the four networks in
`DistributedDataParallel`:

```bash
torchrun --nproc_per_node=4 --no-python cyclegan-anime train \\
    --preset stabilized --profile full --data DIR --out runs/full/stabilized
```

What changes:

* **Effective batch.** Every process trains on a different part of each epoch and the
  gradients are averaged across processes at every step, so the effective batch is the
  number of processes times the batch size: the paper's batch of 1 becomes a batch of 4
  here, and at the `full` profile an epoch (one pass over the data) takes a quarter of the
  steps. The epoch count and the learning rate (the paper's 2e-4) stay as they are; they
  have not been re-tuned for larger batches.
* **History buffer per process.** Each process keeps its own buffer of 50 earlier fakes, as
  the official code does in its distributed mode.
* **One writer.** Only the first process writes the run directory (config, losses averaged
  over processes, samples, checkpoints). Checkpoints hold the plain networks, so a model
  trained by 4 processes resumes, translates and is evaluated on a single CPU, and the
  chapters of this book read it like any other run.

How much it buys, measured on the 2-core CPU machine that built this book (Gloo backend, one
thread per process, the `cpu` profile's 64 px networks, bf16;
`benchmarks/ddp_throughput.py --procs 1 2`, 2026-11-26): one process trained at 3.56
images/s, two at 6.00 (1.69x; each step takes 0.33 s instead of 0.28 s, for the gradient
all-reduce and the shared memory system). No multi-GPU machine was available for this book,
so there is no GPU figure; the NCCL path is the same code. The README's section on scaling
out has the details (resuming, errors, what only the first process writes).

## Summary

* The stabilised recipe changes the loss, the discriminator's output, the buffer and the
  generator's output layer at once.
* The tables and the computed comparison above say, for this profile, whether it beat the
  naive model and by how much; chapter 7 collects the verdicts of all chapters.
''')]


# -- 4. patch32 -----------------------------------------------------------------------------

def chapter_patch32() -> list:
    return header("Smaller patches: a 32x32 discriminator", '''
A PatchGAN discriminator judges image patches rather than whole images. The paper tried
making those patches smaller: the discriminator sees random 32x32 crops of real and
generated images instead of 70x70 ones. This chapter trains that variant next to the
stabilised model of chapter 3, with everything else unchanged.
''') + [SETUP_NOTE, md('''
## What a smaller patch changes

A discriminator that sees only 32x32 pixels at a time can judge local texture (flat colour,
line work, the look of an anime eye) but not the layout of a whole face. A generator
trained against it is rewarded for anime-like texture everywhere, whether or not the face as
a whole looks anime. In this implementation each discriminator call sees one random crop per
image (`cyclegan_lib.models.random_patches`), for real and generated images alike.
'''), code('''
settings = report.preset_table(["stabilized", "patch32"], ctx.profile)
book.show_markdown(report.markdown_table(settings))
print(report.describe_patch(ctx.profile))
'''), md('''
At small profiles the difference between the two models is larger than at the paper's
resolution: on 64 px images the stabilised discriminator's 70 px receptive field already
covers the whole image, while the 32 px crops see a quarter of it.

## Training
'''), code('''
runs = book.ensure_runs(ctx, ["stabilized", "patch32"])
for name, run in runs.items():
    print(report.describe_run(name, run))
'''), md('''
## Loss curves

Both runs use the LSGAN loss, so here the heights are comparable too.
'''), code('''
models = {"70x70": runs["stabilized"], "32x32": runs["patch32"]}
viz.plot_losses(models);
for name, run in models.items():
    book.show_markdown(report.describe_losses(name, report.loss_summary(run)))
'''), md('''
## Translations side by side
'''), code('''
viz.translate_examples(models, ctx.data_dir, n=6, device=ctx.device);
'''), code('''
viz.sample_timeline(runs["patch32"]);
'''), md('''
What to look for: with 32x32 patches, does the output take on anime texture (flat areas,
dark outlines) while the face keeps human proportions? Are eyes and chin reshaped as much
as with the 70x70 discriminator, or less?

## Metrics
'''), code('''
metrics = book.show_metrics(ctx, models)
book.show_markdown(report.describe_comparison(
    "32x32", "70x70", metrics["32x32"], metrics["70x70"]))
'''), md('''
## Summary

* The 32x32 variant changes only what the discriminator sees. (The training times printed
  above are wall-clock times on a shared machine whose load varied between runs; they do not
  measure the cost of either variant.)
* The computed comparison above is this profile's answer to whether smaller patches help;
  chapter 7 lists it next to the paper's other claims.
''')]


# -- 5. residual blocks ---------------------------------------------------------------------

def chapter_blocks() -> list:
    return header("Ablation: how many residual blocks?", '''
The CycleGAN generator downsamples the image twice, transforms it with a stack of residual
blocks at a quarter of the resolution, and upsamples it back. The official code uses 9 blocks
for 256 px images. The paper compares 3, 6 and 9: fewer blocks mean a smaller, faster model,
and the question is what that costs in quality.
''') + [SETUP_NOTE, md('''
## Parameters

The counts are computed from `cyclegan_lib.models.ResnetGenerator` itself, first
at the paper's width (ngf = 64 channels in the first layer):
'''), code('''
p64 = report.parameter_table(ngf=64)
book.show_markdown(report.markdown_table(p64))
book.show_markdown(report.describe_parameters(p64))
'''), md('''
The residual blocks hold most of the generator's parameters, which is why removing six of
nine cuts the model to well under half. The `in residual blocks` column gives their share.
At this chapter's profile the networks are narrower, and the same ratios hold (each count
scales with the square of the width):
'''), code('''
cfg = book.profile_config(ctx)
book.show_markdown(report.markdown_table(report.parameter_table(ngf=cfg.ngf)))
'''), md('''
## Training time

The three runs (the 9-block model is the stabilised run of chapter 3):
'''), code('''
runs = book.ensure_runs(ctx, ["blocks3", "blocks6", "stabilized"])
by_n = {3: runs["blocks3"], 6: runs["blocks6"], 9: runs["stabilized"]}
timing = report.timing_table(by_n)
book.show_markdown(report.markdown_table(timing))
viz.plot_bars({f"{r['blocks']} blocks": r["s / step"] for r in timing},
              xlabel="seconds per training step", fmt="{:.3f}");
'''), md('''
Parameters are not time. A training step also runs the two discriminators, which do not
change with the block count, and a generator's compute depends on where its parameters
sit: the residual blocks work at a quarter of the resolution, the 7x7 layers at both ends
at full resolution. The column `G compute vs largest` counts the generator's multiply-adds
exactly, a measure that does not depend on the machine:
'''), code('''
book.show_markdown(report.describe_timing(timing))
'''), md('''
The times are wall-clock times from each run's `summary.json`, measured on a shared
2-core machine whose load varied while the runs trained; read them as a rough guide.

## Translations side by side
'''), code('''
models = {f"{n} blocks": run for n, run in by_n.items()}
viz.translate_examples(models, ctx.data_dir, n=6, device=ctx.device);
'''), code('''
viz.translate_examples(models, ctx.data_dir, n=6, direction="BtoA",
                       device=ctx.device);
'''), md('''
## Pick a block count

The slider switches between the three generators' translations of the same six test
selfies (top row: input; bottom row: output), with each model's size and training time.
All outputs were computed when this chapter was executed, and the slider is linked to the
images in the browser, so it also works on the static page of the book, without a running
kernel.
'''), code('''
from cyclegan_lib import widgets

x = viz.test_images(ctx.data_dir, "A", n=6, size=cfg.image_size)
widgets.block_slider(by_n, x, device=ctx.device)
'''), md('''
## Metrics
'''), code('''
metrics = book.show_metrics(ctx, models)
for small in ("3 blocks", "6 blocks"):
    book.show_markdown(report.describe_comparison(
        small, "9 blocks", metrics[small], metrics["9 blocks"]))
'''), md('''
## Loss curves
'''), code('''
viz.plot_losses(models);
'''), md('''
## Summary

* At ngf = 64 the 3-block generator has 38% of the 9-block generator's parameters, the
  paper's figure; the count is computed, not copied.
* The smaller generators also need fewer multiply-adds (table above); measured training
  times come from a shared machine and are a rough guide only.
* Whether the smaller generators lose quality at this profile is answered by the metrics
  and the computed comparisons above, and by the pictures; chapter 6 adds harder photos.
''')]


# -- 6. qualitative -------------------------------------------------------------------------

CATEGORY_TEXT = {
    "expressive": ('''
## 1. Expressions

Open mouths, grimaces, raised eyebrows. The anime training faces mostly smile gently with
closed mouths. What to look for: does an output keep the expression (an open mouth, bared
teeth, wide eyes), or does it fall back to the average calm anime face?
'''),
    "consistency": ('''
## 2. The same person in two scenes

Pairs of photos of one person in different light, pose or setting, side by side in one row
(`NAME_a` on the left, `NAME_b` on the right).
What to look for: do the two outputs of one person share hair colour, face shape, eye
colour, or does each follow its photo's lighting and background instead?
'''),
    "facial_hair": ('''
## 3. Facial hair

No training selfie has a beard (they are all women). What to look for: is the beard kept,
turned into something else (a shadow, a chin, hair), or removed?
'''),
    "angled": ('''
## 4. Angled faces

Three-quarter views and full profiles. The training selfies are mostly frontal, and OpenCV's
frontal-face detector can miss a profile; rows marked "no face" use the centre square of
the photo, exactly as the command line does. What to look for: does the output
still look like a face at all, and which way does it face?
'''),
    "dark": ('''
## 5. Dark faces

Faces in low light, under-exposed or lit from one side. Rows marked SYNTHETIC were darkened artificially (by 3 stops, see
the credits) and are not real low-light photos. What to look for: does the model produce
the pale skin typical of its anime training faces regardless of the input, keep the input's
darkness, or lose the face in noise?
'''),
}


def chapter_qualitative() -> list:
    cells = header("Qualitative tests on real photos", '''
The paper judged its models by eye, on five kinds of photos that probe what a translator
trained on selfies might not handle: strong expressions, the same person in different
scenes, facial hair, angled faces, and dark faces. This chapter runs the same five tests on
real photos (listed, with their sources and licences, at the end of the chapter) with the
3-, 6- and 9-block generators of chapter 5.
''') + [SETUP_NOTE, md('''
## From a photo to a translation

Each photo goes through exactly what `cyclegan-anime translate --crop-face` does: OpenCV's
frontal-face detector finds the largest face, a square around it is cropped with a margin
framed like the training selfies, the crop is resized to the model's input size and
translated. If no face is found, the centre square of the photo is used instead. In each grid
the first column is the crop at the network's input size, followed by the three models'
outputs.

Keep the training data in mind (chapter 1): only women's selfies, at this profile's
resolution. Several of these photos are far from that.
'''), code('''
runs = book.ensure_runs(ctx, ["blocks3", "blocks6", "stabilized"])
models = {"3 blocks": runs["blocks3"], "6 blocks": runs["blocks6"],
          "9 blocks": runs["stabilized"]}
tests = ("expressive", "consistency", "facial_hair", "angled", "dark")
photos = {c: book.face_photos(ctx, c) for c in tests}
pairs = book.consistency_pairs(ctx)
photos["consistency"] = [p for pair in pairs for p in pair]
if not any(photos.values()):
    print(f"No test photos in {ctx.faces_dir}: set CYCLEGAN_FACES to them.")
results = {c: viz.translate_faces(ps, models, device=ctx.device)
           for c, ps in photos.items() if ps}
'''), md('''
How often the face detector found a face, and how often the anime-face detector fires on the
9-block model's output (the same detector as the metrics of the earlier chapters):
'''), code('''
book.show_markdown(report.markdown_table(report.face_summary(results)))
'''), md('''
The anime-detector rate is a crude, automatic signal on a handful of photos per test; the
grids are the real evidence.
''')]
    for category, text in CATEGORY_TEXT.items():
        per_row = 2 if category == "consistency" else 1
        cells += [md(text), code(f'''
if "{category}" in results:
    r = results["{category}"]
    labels = book.photo_labels(ctx, r.photos)
    viz.face_comparison(r, labels=labels, photos_per_row={per_row});
''')]
    cells += [md('''
## Try your own photo

With a running kernel (on Colab, or in Jupyter) the widget below translates a photo of your
own with the 9-block model: upload a photo with a face, and it shows the crop and its
translation side by side. On the static page of the book the button does nothing.
'''), code('''
from cyclegan_lib import widgets

widgets.photo_upload(runs["stabilized"], device=ctx.device)
'''), md('''
## What the models do

Read the grids with these questions, and compare your answers with the paper's own
observations:

* **Does the output follow the input?** A translator that ignores its input produces
  similar faces for different photos; compare rows, especially the consistency pairs.
* **Where does it break?** Photos whose face the detector missed (marked in the grids, counted
  in the table above) are translated from a centre crop that may not be centred on the face;
  outputs there say more about the crop than about the model.
* **What does it do with what it never saw?** Beards and men's faces are absent from the
  training selfies; whatever the model makes of them is extrapolation.
* **Do more blocks help?** Compare the three output columns row by row.

At the `cpu` profile the models work on 64 px images after minutes of training, so fine
detail (teeth, stubble, the exact direction of a gaze) is a few pixels at most; the `full`
profile is needed to judge those the way the paper did.

## What we saw in the published run

These notes describe the grids of the published book, executed at the `cpu` profile (64 px,
2,400 steps per model; if you re-run the chapter at another profile, look again).

* **No model yet draws an anime face.** Every output is the input photo re-textured: the
  head's outline, pose, hair mass and the layout of the background survive, skin turns paler
  and pinker, eyes become dark blobs, and a regular checkerboard pattern (the mark of
  transposed convolutions early in training) covers the image. The detector rates in the
  table above come from these images, and should be read as "partly anime-like texture",
  not as a finished translation.
* **Expressions are kept, not calmed.** Open mouths stay open, as a dark region with
  tooth-like stripes; grimaces keep their shape. The models do not fall back to the
  closed-mouth smile of the anime training faces, because at this stage they change
  texture, not geometry.
* **The same person is not recognisably the same.** The two outputs of a pair follow each
  photo's lighting and background (a pale studio background gives a pale, washed-out
  output, a darker photo a darker one) more than the person: the models have no notion of
  identity beyond the pixels.
* **Beards stay.** Facial hair, which no training selfie has, is carried through as a dark
  textured region; it is neither removed nor turned into hair or shadow.
* **Angled faces keep their angle.** Profiles and three-quarter views come out facing the
  same way; the models do not turn them frontal, and one profile was missed by the face
  detector and translated from the centre crop.
* **Dark faces are brightened.** The artificially darkened photos come out bright, with the
  pale skin and light background of the training selfies: the models map every input
  towards the training data's exposure. Real low-key photos keep their dark backgrounds,
  but their faces turn pale.
* **Block count makes little visible difference.** In every test the 3-, 6- and 9-block
  columns are close to one another, as chapter 5's numbers suggested: at this budget the
  training time, not the generator's depth, limits the result.

## Photo credits

The photos are not part of this repository; they are read from the faces folder
(`CYCLEGAN_FACES`). Several sources allow research or non-commercial use only.
'''), code('''
book.show_markdown(report.markdown_table(book.credits_table(ctx, list(results))))
''')]
    return cells


# -- 7. conclusions -------------------------------------------------------------------------

def chapter_conclusions() -> list:
    return header("Conclusions: what reproduced", '''
This chapter collects every run of the book in one table and goes through the paper's
claims one by one, each with what this reproduction measured. The verdicts are computed from
the numbers, with the rules stated below, so they change when the runs change (for example
when a GPU run at the `full` profile replaces the `cpu` runs).
''') + [SETUP_NOTE, md('''
## All runs
'''), code('''
presets = ["naive", "stabilized", "patch32", "blocks3", "blocks6"]
runs = book.ensure_runs(ctx, presets)
metrics = book.run_metrics(ctx, runs)
book.show_markdown(report.markdown_table(report.runs_table(runs, metrics)))
'''), md('''
`anime det. G_AB(A)` is the share of translated test selfies on which the anime-face
detector fires, `human det. G_BA(B)` the share of translated anime faces on which the
human-face detector fires, `cycle L1 A` the round-trip error of selfies (chapter 2 explains
each). The full metrics of every run:
'''), code('''
from cyclegan_lib import evaluate

table = evaluate.metrics_table(list(metrics.values()), names=list(metrics))
book.show_markdown(table)
'''), md('''
## The paper's claims, one by one

How the verdicts are made: the quality of a human-to-anime translation is compared by KID
(lower is better, differences under 1.0 x 100 are treated as noise) when it was measured for
both runs, and otherwise by the anime-detector rate on the translated test selfies (higher
is better, differences under 0.1, about two standard errors on 100 images, are treated as
noise). "Reproduced" means the difference points the paper's way and exceeds that
threshold. Stability is judged by two signs from chapters 2 and 3: whether the
discriminators' loss ended near chance (0.5 to 1.2 times it) rather than far below it, and
whether the generator's outputs still differ from input to input (at least 0.2 times the
inputs' diversity) rather than collapsing to one image.

How large is run-to-run variation? For the published `cpu` runs we measured it once: the
whole book was rebuilt from a clean clone (2026-11-26, same seed and settings, two torch
threads per run instead of one, so the rounding differs) and the anime-detector rates of
the five retrained models moved by up to 0.1: stabilised 0.55 to 0.56, 32x32 patches 0.41
to 0.34, 3 blocks 0.61 to 0.51, 6 blocks 0.48 to 0.54, naive 0 to 0. Differences within
the 0.1 threshold say nothing; differences near it deserve a second seed before they are
believed.
'''), code('''
infos = {p: report.run_info(r) for p, r in runs.items()}
losses = {p: report.loss_summary(r) for p, r in runs.items()}
diversity = {p: book.diversity_ratio(ctx, r) for p, r in runs.items()}
p64 = report.parameter_table(ngf=64)
claims = report.paper_claims(metrics, infos, losses, p64, diversity)
book.show_markdown(report.markdown_table(claims))
'''), md('''
## Against published numbers
'''), code('''
print(report.describe_kid(ctx.profile, metrics["stabilized"]))
'''), md('''
## What limits this reproduction

* **Data** (chapter 1): selfie2anime instead of the paper's sets; all-female selfies and a
  1:1 ratio instead of mixed genders and 1:21.
* **Scale.** The published chapters were executed at the profile printed at the top; the
  cell below compares its training budget with the paper's.
* **One seed per experiment** and **100 test images per domain**: differences smaller than
  the thresholds above cannot be told from noise, and even larger ones could change with
  another seed.
* **Crude automatic judges.** The face detectors measure whether an image has the layout of
  an anime or a human face, not whether it is a good translation of its input. KID needs the
  Inception weights, which are not always available.
'''), code('''
print(book.describe_budget(ctx))
'''), md('''
## Reproducing at full scale

On a machine with a GPU, the same chapters at the paper's settings:

```bash
scripts/train_cpu_runs.sh full      # trains runs/full/<preset>, resumable
CYCLEGAN_PROFILE=full ./dev.sh book # executes the chapters against those runs and builds the book
```

or open any chapter in Colab (launch button at the top of each page), set `profile = "full"`
in its parameters cell, and run it: missing runs are trained, finished ones reused.
''')]


CHAPTERS = {
    "01_data": chapter_data,
    "02_naive": chapter_naive,
    "03_stabilization": chapter_stabilization,
    "04_patch32": chapter_patch32,
    "05_residual_blocks": chapter_blocks,
    "06_qualitative": chapter_qualitative,
    "07_conclusions": chapter_conclusions,
}


def build(name: str) -> nbformat.NotebookNode:
    nb = new_notebook(cells=CHAPTERS[name]())
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                 "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    # Stable cell ids, so regenerating a chapter does not churn its diff.
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name[:2]}-{i:02d}"
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if a notebook differs from what this writes")
    parser.add_argument("names", nargs="*", help="chapters to write (default: all)")
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    differ = []
    for name in args.names or CHAPTERS:
        nb = build(name)
        text = nbformat.writes(nb) + "\n"
        path = OUT / f"{name}.ipynb"
        if args.check:
            if not path.exists() or path.read_text() != text:
                differ.append(path.name)
            continue
        path.write_text(text)
        print(f"wrote {path.relative_to(REPO)}")
    if differ:
        print("differ from scripts/make_notebooks.py: " + ", ".join(differ), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
