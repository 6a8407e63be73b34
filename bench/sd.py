"""Stable Diffusion 1.5 networks at real size (random weights): tfao exact and fast mode against diffusers and
transformers on torch.

Workloads: the CLIP text encoder on 2 x 77 tokens, one UNet step at 256 px with classifier-free guidance
(batch 2, 32 x 32 latents; ``--512`` adds 64 x 64), the VAE decoding one 32 x 32 latent to 256 px. Each side
runs in its own process (see ``harness``). CLIP and VAE sides alternate; a full-size UNet is 3.4 GB in fp32
(and twice that again as exact-mode integers), so on a small machine the UNet sides run one after another,
never two at once. ``--memory`` reports peak and private memory while loading a real-size random-weight
single file in fp32 and fp16. The random checkpoints are written once into ``--cache``.

``--components pipeline``: txt2img end to end (tokenize, CLIP, ``--steps`` UNet steps with CFG, VAE decode)
at 256 px (``--512`` adds 512 px; ``--sizes`` picks them) from the same initial latents, tfao's
StableDiffusionPipeline against diffusers' StableDiffusionPipeline, one side at a time; reports seconds per
image and each side's peak RSS.

    python bench/sd.py [--repeats 3] [--512] [--memory] [--profile] [--cache DIR]
                       [--components pipeline --steps 20 --sizes 256,512]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harness import Side, compare, measure, print_machines, print_profile, print_table, serve_side  # noqa: E402

COMPONENTS = {
    "clip": ["CLIP 2 x 77"],
    "vae": ["VAE decode 256 px"],
    "unet": ["UNet step 256 px CFG"],
}
UNET_512 = "UNet step 512 px CFG"
PROMPT = "a photo of a cat"


def pipeline_workload(size: int, steps: int) -> str:
    return f"txt2img {size} px {steps} steps CFG"


def inputs(workload):
    """Fixed inputs per workload, the same on every side (numpy's generator only makes test data here)."""
    import numpy as np

    rng = np.random.default_rng(0)
    if workload.startswith("CLIP"):
        ids = np.full((2, 77), 49407, dtype=np.int64)
        ids[:, :6] = [[49406, 320, 1125, 539, 320, 49407], [49406, 2368, 49407, 49407, 49407, 49407]]
        return (ids,)
    if workload.startswith("VAE"):
        return (rng.standard_normal((1, 4, 32, 32)).astype(np.float32),)
    size = 64 if "512" in workload else 32
    return (rng.standard_normal((2, 4, size, size)).astype(np.float32), 500,
            rng.standard_normal((2, 77, 768)).astype(np.float32))


def prepare(cache: Path) -> None:
    """Random-weight SD1.5 networks as a diffusers folder and as fp32 / fp16 single files (run once, with torch)."""
    import diffusers
    import torch
    import transformers
    from safetensors.torch import save_file

    from tfao.kernels.sd_single_file import (SD15_TEXT_ENCODER_CONFIG, SD15_UNET_CONFIG, SD15_VAE_CONFIG,
                                             SingleFileNames)
    from tfao.kernels.stable_diffusion import SD15_SCHEDULER_CONFIG

    def settings(config):
        return {key: value for key, value in config.items() if not key.startswith("_")}

    torch.manual_seed(0)
    folder = cache / "folder"
    modules = {"unet": diffusers.UNet2DConditionModel(**settings(SD15_UNET_CONFIG)),
               "vae": diffusers.AutoencoderKL(**settings(SD15_VAE_CONFIG)),
               "text_encoder": transformers.CLIPTextModel(transformers.CLIPTextConfig(**SD15_TEXT_ENCODER_CONFIG))}
    names = SingleFileNames(SD15_UNET_CONFIG, SD15_VAE_CONFIG)
    single = {}
    for part, module in modules.items():
        module.save_pretrained(folder / part, safe_serialization=True)
        for name, tensor in module.state_dict().items():
            original = names.original(f"{part}.{name}")
            single[original] = tensor[:, :, None, None] if "mid.attn_1." in original and tensor.ndim == 2 else tensor
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(SD15_SCHEDULER_CONFIG))
    index = {"_class_name": "StableDiffusionPipeline", "text_encoder": ["transformers", "CLIPTextModel"],
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
    (folder / "model_index.json").write_text(json.dumps(index))
    write_tokenizer(folder / "tokenizer")
    save_file({name: t.contiguous() for name, t in single.items()}, cache / "sd15-fp32.safetensors")
    save_file({name: t.half().contiguous() if t.is_floating_point() else t for name, t in single.items()},
              cache / "sd15-fp16.safetensors")


def write_tokenizer(folder: Path) -> None:
    """A CLIP-format byte-level tokenizer (the real vocabulary is not needed to time the networks)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from sd_fixtures import write_tiny_bpe

    write_tiny_bpe(folder)
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 77, "pad_token": "<|endoftext|>"}))


def pipeline_latents(size: int):
    import numpy as np

    return np.random.default_rng(0).standard_normal((1, 4, size // 8, size // 8)).astype(np.float32)


def pipeline_workloads(name, cache, steps, sizes):
    folder = cache / "folder"
    if not (folder / "tokenizer" / "vocab.json").exists():
        write_tokenizer(folder / "tokenizer")
    if name == "torch":
        import diffusers
        import torch

        pipe = diffusers.StableDiffusionPipeline.from_pretrained(
            folder, safety_checker=None, requires_safety_checker=False, feature_extractor=None,
            tokenizer=_torch_tokenizer(folder), scheduler=diffusers.PNDMScheduler.from_pretrained(folder / "scheduler"))
        pipe.set_progress_bar_config(disable=True)

        def run(size, steps):
            with torch.inference_mode():
                pipe(PROMPT, height=size, width=size, num_inference_steps=steps, guidance_scale=7.5,
                     latents=torch.from_numpy(pipeline_latents(size)), output_type="np")
    else:
        from tfao.models.stable_diffusion import StableDiffusionPipeline

        pipe = StableDiffusionPipeline.from_pretrained(folder, mode=name)

        def run(size, steps):
            pipe(PROMPT, height=size, width=size, num_inference_steps=steps, latents=pipeline_latents(size), progress=False)
    for size in sizes:  # a two-step image warms what the timed runs use (a full run would double the bench)
        run(size, 2)
    return {pipeline_workload(size, steps): (lambda size=size: run(size, steps)) for size in sizes}


def _torch_tokenizer(folder):
    from transformers import CLIPTokenizer

    return CLIPTokenizer(str(folder / "tokenizer" / "vocab.json"), str(folder / "tokenizer" / "merges.txt"), model_max_length=77)


def peak_rss_gb(side) -> float:
    """The side process's peak resident memory so far."""
    with open(f"/proc/{side.child.pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 2**20


def pipeline_sizes(args) -> list[int]:
    if args.sizes:
        return [int(size) for size in args.sizes.split(",")]
    return [256, 512] if args.large else [256]


def run_pipeline_bench(args) -> None:
    sizes = pipeline_sizes(args)
    workloads = [pipeline_workload(size, args.steps) for size in sizes]
    side_args = ["--component", "pipeline", "--cache", str(args.cache), "--steps", str(args.steps),
                 "--sizes", ",".join(map(str, sizes))]
    medians, machines, peaks = {}, {}, {}
    for name in ("torch", "exact", "fast"):  # full-size pipelines: one side at a time
        side = Side(__file__, name, *side_args)
        try:
            medians.update(compare([side], workloads, args.repeats))
            peaks[name] = peak_rss_gb(side)
        finally:
            side.close()
        machines[name] = side.machine
    for name, machine in machines.items():
        print(f"{name}: {machine['cpu']}; BLAS {', '.join(machine['blas']) or '-'}; peak RSS {peaks[name]:.2f} GB")
    print_table(f"SD1.5 txt2img end to end, random weights, median of {args.repeats} (s/image = ms / 1000)",
                medians, "torch", workloads)


def tfao_workloads(mode, component, cache, extra):
    from tfao.kernels.clip import CLIPTextModel
    from tfao.kernels.unet import UNet2DConditionModel
    from tfao.kernels.vae import AutoencoderKL

    folder = cache / "folder"
    if component == "clip":
        model = CLIPTextModel.from_pretrained(folder / "text_encoder")
        run = lambda ids: model(ids, mode=mode)
    elif component == "vae":
        vae = AutoencoderKL.from_pretrained(folder / "vae")
        run = lambda z: vae.decode(z, mode=mode)
    else:
        unet = UNet2DConditionModel.from_pretrained(folder / "unet")
        run = lambda sample, t, context: unet(sample, t, context, mode=mode)
    return {name: (lambda args=inputs(name): run(*args)) for name in COMPONENTS[component] + extra}


def torch_workloads(component, cache, extra):
    import diffusers
    import torch
    import transformers

    folder = cache / "folder"
    if component == "clip":
        model = transformers.CLIPTextModel.from_pretrained(folder / "text_encoder").eval()
        run = lambda ids: model(torch.from_numpy(ids))
    elif component == "vae":
        vae = diffusers.AutoencoderKL.from_pretrained(folder / "vae").eval()
        run = lambda z: vae.decode(torch.from_numpy(z))
    else:
        unet = diffusers.UNet2DConditionModel.from_pretrained(folder / "unet").eval()
        run = lambda sample, t, context: unet(torch.from_numpy(sample), t, torch.from_numpy(context))

    def infer(args):
        with torch.inference_mode():
            run(*args)

    return {name: (lambda args=inputs(name): infer(args)) for name in COMPONENTS[component] + extra}


def side_builder(name, component, cache, extra, steps, sizes):
    if component == "pipeline":
        return lambda: pipeline_workloads(name, cache, steps, sizes)
    if name == "torch":
        return lambda: torch_workloads(component, cache, extra)
    return lambda: tfao_workloads(name, component, cache, extra)


def memory_report(path: Path) -> dict:
    """Load a single file (in this process) and report peak RSS and anonymous (private) memory in GB."""
    from tfao.kernels.stable_diffusion import load_single_file

    models = load_single_file(path)  # kept alive while its memory is measured
    with open("/proc/self/smaps_rollup") as rollup:
        fields = {line.split(":")[0]: int(line.split()[1]) for line in rollup if line.split()[-1] == "kB"}
    return {"peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "rss_gb": fields["Rss"] / 2**20,
            "private_gb": fields["Anonymous"] / 2**20, "referenced_gb": models.nbytes() / 2**30}


def fp32_weight_gb(path: Path) -> float:
    from tfao.kernels.weights import Weights

    weights = Weights.load(path)
    return sum(weights.get(name).size for name in weights.names() if not name.endswith("position_ids")) * 4 / 2**30


def run_memory(cache: Path) -> None:
    size = fp32_weight_gb(cache / "sd15-fp32.safetensors")
    print(f"\nLoading a real-size random-weight SD1.5 single file (fp32 weights {size:.2f} GB):")
    for precision in ("fp32", "fp16"):
        done = subprocess.run([sys.executable, __file__, "--memory-child", str(cache / f"sd15-{precision}.safetensors")],
                              capture_output=True, text=True, check=True)
        report = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  {precision}: peak RSS {report['peak_rss_gb']:.2f} GB, RSS {report['rss_gb']:.2f} GB, private "
              f"{report['private_gb']:.2f} GB = {report['private_gb'] / size:.2f}x the fp32 weights "
              f"(cache budget nbytes, exact copy included: {report['referenced_gb']:.2f} GB)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "tfao-sd15-bench")
    parser.add_argument("--512", dest="large", action="store_true", help="also time the UNet at 512 px")
    parser.add_argument("--memory", action="store_true", help="report memory while loading single files")
    parser.add_argument("--profile", action="store_true", help="profile one exact-mode UNet step")
    parser.add_argument("--components", default="clip,vae,unet", help="any of clip, vae, unet, pipeline")
    parser.add_argument("--steps", type=int, default=20, help="pipeline: denoising steps (default 20)")
    parser.add_argument("--sizes", help="pipeline: image sizes in px, e.g. 512 (default 256; --512 adds 512)")
    parser.add_argument("--side")
    parser.add_argument("--component")
    parser.add_argument("--prepare", action="store_true")
    parser.add_argument("--memory-child", type=Path)
    args = parser.parse_args()
    extra = [UNET_512] if args.large and args.component == "unet" else []
    if args.prepare:
        return prepare(args.cache)
    if args.memory_child:
        return print(json.dumps(memory_report(args.memory_child)))
    if args.side:
        return serve_side(side_builder(args.side, args.component, args.cache, extra, args.steps, pipeline_sizes(args)),
                          warm=args.component != "pipeline")
    if not (args.cache / "sd15-fp16.safetensors").exists():
        args.cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, __file__, "--prepare", "--cache", str(args.cache)], check=True)
    for component in args.components.split(","):
        if component == "pipeline":
            run_pipeline_bench(args)
            continue
        workloads = COMPONENTS[component] + ([UNET_512] if args.large and component == "unet" else [])
        side_args = ["--component", component, "--cache", str(args.cache)] + (["--512"] if args.large else [])
        medians, machines = {}, {}
        # full-size UNets run one side at a time; the smaller networks alternate with all sides loaded
        groups = [["torch"], ["exact"], ["fast"]] if component == "unet" else [["torch", "exact", "fast"]]
        for group in groups:
            group_medians, group_machines = measure(__file__, group, workloads, args.repeats, *side_args)
            medians.update(group_medians)
            machines.update(group_machines)
        print_machines(machines)
        print_table(f"SD1.5 {component}, random weights, median of {args.repeats}", medians, "torch", workloads)
    if args.memory:
        run_memory(args.cache)
    if args.profile:
        unet_step = COMPONENTS["unet"][0]
        print_profile(tfao_workloads("exact", "unet", args.cache, [])[unet_step], 1, f"exact mode, {unet_step}")


if __name__ == "__main__":
    main()
