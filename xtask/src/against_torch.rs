//! `cargo xtask bench --against-torch`: one training step of selfsup and of
//! PyTorch on the same device in the same run, alternating, several rounds.
//!
//! Ours is `selfsup bench CONFIG --json` (a release CLI built here with the
//! backends asked for); PyTorch's is `tools/bench_torch.py WORKLOAD`, the
//! same step written in plain torch and torchvision, run in the torch venv
//! (torch 2.9.0 and the torchvision that matches it). Each timing is its own
//! process, so each peak resident memory is that workload's. Within a round
//! the order alternates (ours first in even rounds, PyTorch first in odd
//! ones), so slow drift of the machine falls on both sides.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::{flag_value, release_cli, root, run, torch_venv, with_torch};

/// torchvision's release that goes with torch 2.9.0.
const TORCHVISION_VERSION: &str = "0.24.0";

/// A workload: `tools/bench_torch.py`'s name and the config ours runs.
const WORKLOADS: &[(&str, &str, &str)] = &[
    ("mae", "MAE ViT-B/16", "configs/mae/mae_vit-base-p16_8xb512-coslr-400e_in1k.toml"),
    ("simclr", "SimCLR ResNet-50, 2 views", "configs/simclr/simclr_resnet50_8xb32-coslr-200e_in1k.toml"),
    ("mocov3", "MoCo v3 ViT-S/16, 2 views", "configs/mocov3/mocov3_vit-small-p16_16xb256-amp-coslr-300e_in1k.toml"),
];

/// The run's settings, from the command line.
struct Settings {
    workloads: Vec<&'static (&'static str, &'static str, &'static str)>,
    backends: Vec<String>,
    device: String,
    batch: usize,
    steps: usize,
    warmup: usize,
    rounds: usize,
    threads: usize,
    out: PathBuf,
}

impl Settings {
    fn parse(args: &[String]) -> Result<Self> {
        let num = |name: &str, default: usize| -> Result<usize> {
            flag_value(args, name).map_or(Ok(default), |v| v.parse().with_context(|| format!("{name} {v}")))
        };
        let list = |name: &str, default: &str| flag_value(args, name).unwrap_or_else(|| default.into());
        let workloads = list("--workloads", "mae,simclr,mocov3")
            .split(',')
            .map(|w| WORKLOADS.iter().find(|(n, ..)| *n == w).with_context(|| format!("unknown workload {w} (mae, simclr, mocov3)")))
            .collect::<Result<Vec<_>>>()?;
        let device = list("--device", "cpu");
        let backends: Vec<String> =
            list("--backends", if device == "cpu" { "flex,tch" } else { "tch,cuda,wgpu" }).split(',').map(str::to_string).collect();
        if let Some(b) = backends.iter().find(|b| !["flex", "tch", "wgpu", "cuda"].contains(&b.as_str())) {
            bail!("unknown backend {b}");
        }
        if device == "cpu" && backends.iter().any(|b| b == "cuda") {
            bail!("the cuda backend needs --device cuda");
        }
        if device != "cpu" && device != "cuda" {
            bail!("--device is cpu or cuda, not {device}");
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            workloads,
            backends,
            device,
            batch: num("--batch-size", 8)?,
            steps: num("--steps", 2)?,
            warmup: num("--warmup", 1)?,
            rounds: num("--rounds", 2)?,
            threads: num("--threads", threads)?,
            out: flag_value(args, "--out").map_or_else(|| root().join("target/bench/against-torch.json"), PathBuf::from),
        })
    }

    /// Our `--device` for a backend.
    fn our_device(&self, backend: &str) -> &'static str {
        match (self.device.as_str(), backend) {
            ("cpu", _) => "cpu",
            (_, "wgpu") => "discrete:0",
            _ => "cuda:0",
        }
    }
}

/// The CPU's model name and its widest x86 vector ISA, from `/proc/cpuinfo`.
fn cpu_isa() -> (String, String) {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string()).unwrap_or_default()
    };
    (field("model name"), vector_isa(&field("flags")))
}

/// The widest vector ISA a `flags` line names: `AVX-512 (f, bw, ...)`,
/// `AVX2`, or what is there.
fn vector_isa(flags: &str) -> String {
    let flags: Vec<&str> = flags.split_whitespace().collect();
    let avx512: Vec<&str> = flags.iter().filter_map(|f| f.strip_prefix("avx512")).map(|f| f.trim_start_matches('_')).collect();
    if avx512.contains(&"f") {
        format!("AVX-512 ({})", avx512.join(", "))
    } else if flags.contains(&"avx2") {
        "AVX2".into()
    } else if flags.is_empty() {
        "unknown".into()
    } else {
        "below AVX2".into()
    }
}

/// The last JSON object a command printed on stdout.
fn json_line(cmd: &mut Command) -> Result<Value> {
    eprintln!("$ {}", format!("{cmd:?}").replace('"', ""));
    let out = cmd.output().with_context(|| format!("could not start {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).lines().rev().take(5).collect::<Vec<_>>().join(" | "));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).context("no JSON line in the output")?;
    Ok(serde_json::from_str(line)?)
}

/// torchvision beside torch in the venv (bench_torch.py builds SimCLR's
/// ResNet-50 with it).
fn ensure_torchvision(venv: &Path) -> Result<()> {
    let python = venv.join("bin/python");
    if Command::new(&python).args(["-c", "import torchvision"]).status().is_ok_and(|s| s.success()) {
        return Ok(());
    }
    if super::bypass_version_check() {
        bail!("torchvision is missing from {}: install the one built for its torch", venv.display());
    }
    eprintln!("installing torchvision {TORCHVISION_VERSION} into {}", venv.display());
    if !run(Command::new(&python).args(["-m", "pip", "install", "-q", &format!("torchvision=={TORCHVISION_VERSION}")]))? {
        bail!("pip could not install torchvision {TORCHVISION_VERSION}");
    }
    Ok(())
}

/// The release CLI with the asked-for backends, built once.
fn build_cli(s: &Settings, venv: &Path) -> Result<PathBuf> {
    let mut cmd = release_cli("build", &s.backends.join(","));
    with_torch(&mut cmd, venv)?;
    if !run(&mut cmd)? {
        bail!("building the release CLI failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    Ok(target.join("release/selfsup"))
}

/// One summary row: a workload on one of our backends against PyTorch.
fn summary_row(runs: &[Value], workload: &str, backend: &str) -> Option<Value> {
    let pick = |side: &str, key: &str| -> Vec<f64> {
        runs.iter().filter(|r| r["workload"] == workload && r["side"] == side).filter_map(|r| r[key].as_f64()).collect()
    };
    let ours = pick(backend, "ms_per_step");
    let torch = pick("torch", "ms_per_step");
    if ours.is_empty() || torch.is_empty() {
        return None;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let max = |v: &[f64]| v.iter().copied().fold(f64::NAN, f64::max);
    let (our_mem, torch_mem) = (max(&pick(backend, "peak_rss_mib")), max(&pick("torch", "peak_rss_mib")));
    Some(json!({
        "workload": workload,
        "backend": backend,
        "ours_ms": ours,
        "torch_ms": torch,
        // Speed relative to PyTorch: its mean step time over ours (1.0 = as fast).
        "ratio": mean(&torch) / mean(&ours),
        "ours_peak_rss_mib": our_mem,
        "torch_peak_rss_mib": torch_mem,
        "memory_ratio": our_mem / torch_mem,
    }))
}

fn seconds(v: &[Value]) -> String {
    v.iter().filter_map(Value::as_f64).map(|ms| format!("{:.2}", ms / 1000.0)).collect::<Vec<_>>().join(", ")
}

/// `cargo xtask bench --against-torch`.
pub fn bench_against_torch(args: &[String]) -> Result<()> {
    let s = Settings::parse(args)?;
    let venv = torch_venv(true)?;
    ensure_torchvision(&venv)?;
    let cli = build_cli(&s, &venv)?;
    if s.backends.iter().any(|b| b == "wgpu") {
        super::ensure_lavapipe(true)?;
    }
    let (cpu, isa) = cpu_isa();
    let root = root();
    let mut runs = Vec::new();
    for round in 0..s.rounds {
        for &&(workload, _, config) in &s.workloads {
            let mut sides: Vec<&str> = s.backends.iter().map(String::as_str).filter(|b| s.device != "cpu" || *b != "cuda").collect();
            sides.push("torch");
            if round % 2 == 1 {
                sides.reverse();
            }
            for side in sides {
                let mut cmd;
                if side == "torch" {
                    cmd = Command::new(venv.join("bin/python"));
                    cmd.arg(root.join("tools/bench_torch.py")).arg(workload).args(["--device", &s.device]);
                    cmd.args(["--batch", &s.batch.to_string(), "--steps", &s.steps.to_string(), "--warmup", &s.warmup.to_string()]);
                    cmd.args(["--threads", &s.threads.to_string()]);
                } else {
                    cmd = Command::new(&cli);
                    cmd.arg("bench").arg(root.join(config)).args(["--backend", side, "--device", s.our_device(side), "--json"]);
                    cmd.args(["--batch-size", &s.batch.to_string(), "--steps", &s.steps.to_string(), "--warmup", &s.warmup.to_string()]);
                }
                with_torch(&mut cmd, &venv)?;
                cmd.current_dir(&root).env("RAYON_NUM_THREADS", s.threads.to_string());
                let mut r = json_line(&mut cmd)?;
                r["workload"] = json!(workload);
                r["side"] = json!(side);
                r["round"] = json!(round);
                eprintln!("round {round}, {workload}, {side}: {:.0} ms/step", r["ms_per_step"].as_f64().unwrap_or(f64::NAN));
                runs.push(r);
            }
        }
    }
    let torch_isa = runs.iter().find_map(|r| r["isa"].as_str().map(str::to_string)).unwrap_or_default();
    let gpu = runs.iter().find_map(|r| r["device"].as_str().filter(|d| *d != "cpu").map(str::to_string));
    let summary: Vec<Value> = s.workloads.iter().flat_map(|(w, ..)| s.backends.iter().filter_map(|b| summary_row(&runs, w, b))).collect();

    println!();
    match &gpu {
        Some(name) => println!("device: {name}, float32; host CPU {cpu} ({isa})"),
        None => println!("CPU: {cpu}; vector ISA: {isa}; PyTorch reports {torch_isa}; {} threads", s.threads),
    }
    println!(
        "one training step at batch {}, {} timed steps after {} warm-up, {} rounds alternating; ratio = PyTorch's time / ours (1.0 = as fast)\n",
        s.batch, s.steps, s.warmup, s.rounds
    );
    println!("| workload | backend | selfsup (s/step) | PyTorch (s/step) | ratio | peak memory selfsup / PyTorch |");
    println!("|---|---|---|---|---|---|");
    for row in &summary {
        let name = WORKLOADS.iter().find(|(w, ..)| row["workload"] == *w).map_or("", |w| w.1);
        println!(
            "| {name} | {} | {} | {} | {:.2}× | {:.0} / {:.0} MiB ({:.2}×) |",
            row["backend"].as_str().unwrap_or_default(),
            seconds(row["ours_ms"].as_array().map_or(&[][..], Vec::as_slice)),
            seconds(row["torch_ms"].as_array().map_or(&[][..], Vec::as_slice)),
            row["ratio"].as_f64().unwrap_or(f64::NAN),
            row["ours_peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
            row["torch_peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
            row["memory_ratio"].as_f64().unwrap_or(f64::NAN),
        );
    }
    let report = json!({
        "machine": { "cpu": cpu, "isa": isa, "torch_isa": torch_isa, "gpu": gpu, "threads": s.threads },
        "settings": { "device": s.device, "batch_size": s.batch, "steps": s.steps, "warmup": s.warmup, "rounds": s.rounds, "precision": "fp32" },
        "summary": summary,
        "runs": runs,
    });
    if let Some(dir) = s.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&s.out, serde_json::to_string_pretty(&report)?)?;
    println!("\nwrote {}", s.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_widest_isa() {
        assert_eq!(vector_isa("fpu sse2 avx avx2 avx512f avx512bw avx512vl avx512_bf16"), "AVX-512 (f, bw, vl, bf16)");
        assert_eq!(vector_isa("fpu sse2 avx avx2 fma"), "AVX2");
        assert_eq!(vector_isa("fpu sse2"), "below AVX2");
        // avx512_vnni-style flags without the foundation are not AVX-512.
        assert_eq!(vector_isa("avx2 avx512_vnni"), "AVX2");
    }

    #[test]
    fn ratio_is_torch_time_over_ours_and_memory_ours_over_torch() {
        let runs = vec![
            json!({"workload": "mae", "side": "flex", "ms_per_step": 4000.0, "peak_rss_mib": 1200.0}),
            json!({"workload": "mae", "side": "torch", "ms_per_step": 2000.0, "peak_rss_mib": 1000.0}),
            json!({"workload": "mae", "side": "flex", "ms_per_step": 6000.0, "peak_rss_mib": 1100.0}),
            json!({"workload": "mae", "side": "torch", "ms_per_step": 3000.0, "peak_rss_mib": 900.0}),
        ];
        let row = summary_row(&runs, "mae", "flex").unwrap();
        assert!((row["ratio"].as_f64().unwrap() - 0.5).abs() < 1e-12);
        assert!((row["memory_ratio"].as_f64().unwrap() - 1.2).abs() < 1e-12);
        assert!(summary_row(&runs, "mae", "tch").is_none());
    }
}
