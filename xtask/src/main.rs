//! Developer workflows for selfsup, as `cargo xtask <command>`.
//!
//! - `test-all`: the whole test suite on every backend that runs here (the
//!   pure-Rust CPU default, libtorch on CPU, wgpu on a software Vulkan
//!   adapter), a compile check of cuda, and a per-backend summary. It
//!   installs what is missing: torch 2.9.0 into `.venv-torch` (PyPI) for
//!   libtorch, and Debian's `mesa-vulkan-drivers` (lavapipe) for wgpu.
//! - `lint`: the house rules: `cargo fmt --check`, `cargo clippy -D
//!   warnings`, and the crate-dependency invariants of ARCHITECTURE.md
//!   (component crates never depend on each other sideways); `test-all`
//!   runs it first.
//! - `fixtures --check`: rebuilds every golden fixture with the reference
//!   implementation (`tools/reference/setup.sh` installs it) and compares
//!   it with the committed files and `tests/fixtures/SHA256SUMS`.
//! - `bench`: training throughput of a config on chosen backends;
//!   `bench --against-torch` times ours and PyTorch's step of the same
//!   workloads in one run, alternating ([`against_torch`]).
mod against_torch;

use std::{
    env,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    time::Instant,
};

use anyhow::{bail, Context, Result};

const TORCH_VERSION: &str = "2.9.0";

/// The workspace `cargo xtask` runs in: the current directory or its
/// nearest ancestor whose `Cargo.toml` has a `[workspace]` table. Not the
/// compile-time manifest directory: a build cache shared between clones
/// (CI's) may hold an xtask binary built in another clone.
fn root() -> PathBuf {
    let cwd = env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    cwd.ancestors()
        .find(|d| std::fs::read_to_string(d.join("Cargo.toml")).is_ok_and(|t| t.contains("[workspace]")))
        .map(Path::to_path_buf)
        .unwrap_or(cwd)
}

fn usage() -> &'static str {
    "usage: cargo xtask <command>\n\
     \n\
     commands:\n\
     \x20 test-all [--backends flex,tch,wgpu,cuda] [--no-install] [--no-lint]\n\
     \x20     lint, then run the test suite on every backend that runs here, compile-check cuda\n\
     \x20 lint\n\
     \x20     cargo fmt --check, cargo clippy -D warnings, crate-dependency invariants\n\
     \x20 fixtures --check | --write [--python PY]\n\
     \x20     rebuild the golden fixtures in the reference environment and compare (or rewrite SHA256SUMS)\n\
     \x20 bench [CONFIG] [--backends flex,tch] [--batch-size N] [--steps N]\n\
     \x20     training throughput (img/s, ms/step) of CONFIG (default: MAE ViT-B/16)\n\
     \x20 bench --against-torch [--workloads mae,simclr,mocov3] [--backends flex,tch] [--device cpu|cuda]\n\
     \x20       [--batch-size 8] [--steps 2] [--warmup 1] [--rounds 2] [--threads N] [--out FILE]\n\
     \x20     ours against PyTorch's same step (tools/bench_torch.py), alternating: ratio, ISA, peak memory, JSON\n\
     \x20 setup-torch\n\
     \x20     install torch into .venv-torch for the tch backend\n"
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test-all") => test_all(&args[1..]),
        Some("lint") => lint().and_then(|failures| if failures.is_empty() { Ok(()) } else { bail!("{}", failures.join("; ")) }),
        Some("fixtures") => fixtures(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("setup-torch") => torch_venv(true).map(|_| ()),
        _ => {
            eprint!("{}", usage());
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn flag_value(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn run(cmd: &mut Command) -> Result<bool> {
    eprintln!("$ {}", format!("{cmd:?}").replace('"', ""));
    Ok(cmd.status().with_context(|| format!("could not start {cmd:?}"))?.success())
}

/// The torch venv for libtorch (`SELFSUP_TORCH_VENV` or `.venv-torch`),
/// installed when missing.
fn torch_venv(install: bool) -> Result<PathBuf> {
    let venv = env::var_os("SELFSUP_TORCH_VENV").map(PathBuf::from).unwrap_or_else(|| root().join(".venv-torch"));
    let python = venv.join("bin/python");
    let has_torch = |py: &Path| {
        Command::new(py)
            .args(["-c", &format!("import torch,sys; sys.exit(0 if torch.__version__.startswith('{TORCH_VERSION}') else 1)")])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if python.exists() && has_torch(&python) {
        return Ok(venv);
    }
    // A GPU machine's own torch (2.11 with CUDA 13 builds with tch 0.22):
    // taken as it is, never replaced.
    if bypass_version_check() && python.exists() {
        return Ok(venv);
    }
    if !install {
        bail!("torch {TORCH_VERSION} is not installed in {}; run `cargo xtask setup-torch`", venv.display());
    }
    eprintln!("installing torch {TORCH_VERSION} into {} (about 3 GB from PyPI, a few minutes)", venv.display());
    if !python.exists() && !run(Command::new("python3").args(["-m", "venv"]).arg(&venv))? {
        bail!("could not create the venv {}", venv.display());
    }
    if !run(Command::new(&python).args(["-m", "pip", "install", "-q", &format!("torch=={TORCH_VERSION}")]))? {
        bail!("pip could not install torch {TORCH_VERSION}");
    }
    Ok(venv)
}

/// `LIBTORCH_BYPASS_VERSION_CHECK` is set: torch-sys builds against
/// whatever torch the venv has, and so do we.
fn bypass_version_check() -> bool {
    env::var_os("LIBTORCH_BYPASS_VERSION_CHECK").is_some_and(|v| !v.is_empty() && v != "0")
}

fn torch_lib(venv: &Path) -> Result<PathBuf> {
    let out = Command::new(venv.join("bin/python"))
        .args(["-c", "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))"])
        .output()?;
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Environment for building and running against the venv's libtorch.
fn with_torch(cmd: &mut Command, venv: &Path) -> Result<()> {
    let lib = torch_lib(venv)?;
    let path = format!("{}:{}", venv.join("bin").display(), env::var("PATH").unwrap_or_default());
    let ld = match env::var("LD_LIBRARY_PATH") {
        Ok(old) if !old.is_empty() => format!("{}:{old}", lib.display()),
        _ => lib.display().to_string(),
    };
    cmd.env("VIRTUAL_ENV", venv).env("PATH", path).env("LIBTORCH_USE_PYTORCH", "1").env("LD_LIBRARY_PATH", ld);
    Ok(())
}

fn lavapipe_present() -> bool {
    ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"].iter().any(|d| {
        std::fs::read_dir(d)
            .map(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("lvp_icd")))
            .unwrap_or(false)
    })
}

fn ensure_lavapipe(install: bool) -> Result<()> {
    if lavapipe_present() {
        return Ok(());
    }
    if !install {
        bail!("no Vulkan driver found; install Debian's mesa-vulkan-drivers");
    }
    eprintln!("installing mesa-vulkan-drivers (software Vulkan for wgpu)");
    let _ = run(Command::new("apt-get").arg("update").arg("-qq"));
    if !run(Command::new("apt-get").args(["install", "-y", "-qq", "mesa-vulkan-drivers"]).env("DEBIAN_FRONTEND", "noninteractive"))? {
        bail!("apt-get could not install mesa-vulkan-drivers (are you root?)");
    }
    Ok(())
}

struct Outcome {
    backend: &'static str,
    what: &'static str,
    ok: bool,
    detail: String,
    secs: f64,
    counts: (usize, usize),
}

/// Runs a cargo test command, echoing its output, and returns its result
/// line counts ("N passed; M failed") summed over test binaries.
fn cargo_test(cmd: &mut Command) -> Result<(bool, String, (usize, usize))> {
    eprintln!("$ {}", format!("{cmd:?}").replace('"', ""));
    let out = cmd.output().context("could not start cargo")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    let (mut passed, mut failed, mut ignored) = (0usize, 0usize, 0usize);
    for line in stdout.lines().filter(|l| l.starts_with("test result:")) {
        let num = |key: &str| {
            line.split(';').find(|p| p.contains(key)).and_then(|p| p.split_whitespace().find_map(|w| w.parse::<usize>().ok())).unwrap_or(0)
        };
        passed += num("passed");
        failed += num("failed");
        ignored += num("ignored");
    }
    Ok((out.status.success(), format!("{passed} passed, {failed} failed, {ignored} ignored"), (passed, failed)))
}

fn test_all(args: &[String]) -> Result<()> {
    let install = !args.iter().any(|a| a == "--no-install");
    let wanted = flag_value(args, "--backends").unwrap_or_else(|| "flex,tch,wgpu,cuda".into());
    let wanted: Vec<&str> = wanted.split(',').map(str::trim).collect();
    let root = root();
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut outcomes = Vec::new();
    let started = Instant::now();

    if !args.iter().any(|a| a == "--no-lint") {
        let t = Instant::now();
        let failures = lint()?;
        let ok = failures.is_empty();
        outcomes.push(Outcome {
            backend: "all",
            what: "lint (fmt, clippy, deps)",
            ok,
            detail: if ok { "clean".into() } else { failures.join("; ") },
            secs: t.elapsed().as_secs_f64(),
            counts: if ok { (1, 0) } else { (0, 1) },
        });
    }

    if wanted.contains(&"flex") {
        let t = Instant::now();
        let (ok, detail, counts) = cargo_test(Command::new(&cargo).current_dir(&root).args(["test", "--workspace"]))?;
        outcomes.push(Outcome { backend: "flex", what: "test (all crates)", ok, detail, secs: t.elapsed().as_secs_f64(), counts });
    }
    if wanted.contains(&"tch") {
        let t = Instant::now();
        let outcome = match torch_venv(install) {
            Ok(venv) => {
                let mut cmd = Command::new(&cargo);
                cmd.current_dir(&root).args(["test", "-p", "selfsup-tests", "--no-default-features", "--features", "tch"]);
                with_torch(&mut cmd, &venv)?;
                let (ok, detail, counts) = cargo_test(&mut cmd)?;
                Outcome { backend: "tch", what: "test (suite, libtorch CPU)", ok, detail, secs: t.elapsed().as_secs_f64(), counts }
            }
            Err(e) => Outcome { backend: "tch", what: "setup", ok: false, detail: format!("{e:#}"), secs: 0.0, counts: (0, 1) },
        };
        outcomes.push(outcome);
    }
    if wanted.contains(&"wgpu") {
        let t = Instant::now();
        let outcome = match ensure_lavapipe(install) {
            Ok(()) => {
                let (ok, detail, counts) = cargo_test(Command::new(&cargo).current_dir(&root).args([
                    "test",
                    "-p",
                    "selfsup-tests",
                    "--no-default-features",
                    "--features",
                    "wgpu",
                ]))?;
                Outcome { backend: "wgpu", what: "test (suite, Vulkan)", ok, detail, secs: t.elapsed().as_secs_f64(), counts }
            }
            Err(e) => Outcome { backend: "wgpu", what: "setup", ok: false, detail: format!("{e:#}"), secs: 0.0, counts: (0, 1) },
        };
        outcomes.push(outcome);
    }
    if wanted.contains(&"cuda") {
        let t = Instant::now();
        let ok = run(Command::new(&cargo).current_dir(&root).args([
            "check",
            "-p",
            "selfsup-cli",
            "-p",
            "selfsup-tests",
            "--tests",
            "--no-default-features",
            "--features",
            "cuda",
        ]))?;
        outcomes.push(Outcome {
            backend: "cuda",
            what: "compile check (no GPU here)",
            ok,
            detail: if ok { "compiles".into() } else { "does not compile".into() },
            secs: t.elapsed().as_secs_f64(),
            counts: if ok { (1, 0) } else { (0, 1) },
        });
    }

    println!("\nselfsup test-all summary ({:.0} s)", started.elapsed().as_secs_f64());
    println!("{:<6} {:<30} {:<6} {:>7}  detail", "backend", "what", "result", "time");
    for o in &outcomes {
        println!("{:<7} {:<30} {:<6} {:>6.0}s  {}", o.backend, o.what, if o.ok { "ok" } else { "FAIL" }, o.secs, o.detail);
    }
    let passed: usize = outcomes.iter().map(|o| o.counts.0).sum();
    let failed: usize = outcomes.iter().map(|o| o.counts.1).sum::<usize>() + outcomes.iter().filter(|o| !o.ok && o.counts.1 == 0).count();
    println!("\ntotal: {passed} passed, {failed} failed");
    if outcomes.iter().any(|o| !o.ok) {
        bail!("some backends failed");
    }
    Ok(())
}

/// `cargo ACTION --release -q -p selfsup-cli` with only `features`, in the
/// workspace root.
fn release_cli(action: &str, features: &str) -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root()).args([action, "--release", "-q", "-p", "selfsup-cli", "--no-default-features", "--features", features]);
    cmd
}

fn bench(args: &[String]) -> Result<()> {
    if args.iter().any(|a| a == "--against-torch") {
        return against_torch::bench_against_torch(args);
    }
    let config = args
        .iter()
        .find(|a| !a.starts_with("--") && !args.iter().any(|b| b.starts_with("--") && flag_value(args, b).as_deref() == Some(a.as_str())))
        .cloned()
        .unwrap_or_else(|| "configs/mae/mae_vit-base-p16_8xb512-coslr-400e_in1k.toml".into());
    let backends = flag_value(args, "--backends").unwrap_or_else(|| "flex".into());
    let batch = flag_value(args, "--batch-size").unwrap_or_else(|| "8".into());
    let steps = flag_value(args, "--steps").unwrap_or_else(|| "3".into());
    for backend in backends.split(',') {
        let mut cmd = release_cli("run", backend);
        cmd.args(["--", "bench"]).arg(&config).args(["--backend", backend, "--batch-size", &batch, "--steps", &steps]);
        if backend == "tch" {
            with_torch(&mut cmd, &torch_venv(true)?)?;
        }
        if backend == "wgpu" {
            ensure_lavapipe(true)?;
        }
        if !run(&mut cmd)? {
            bail!("bench on {backend} failed");
        }
    }
    Ok(())
}

/// Component crates and the selfsup crates each may depend on
/// (ARCHITECTURE.md's invariant: no sideways dependencies; heads own their
/// loss and build predictor MLPs from necks).
const COMPONENT_DEPS: &[(&str, &[&str])] = &[
    ("selfsup-core", &[]),
    ("selfsup-config", &[]),
    ("selfsup-layers", &["selfsup-core", "selfsup-config"]),
    ("selfsup-backbones", &["selfsup-core", "selfsup-config", "selfsup-layers"]),
    ("selfsup-necks", &["selfsup-core", "selfsup-config", "selfsup-layers"]),
    ("selfsup-losses", &["selfsup-core", "selfsup-config", "selfsup-layers"]),
    ("selfsup-memories", &["selfsup-core", "selfsup-config", "selfsup-layers"]),
    ("selfsup-target-generators", &["selfsup-core", "selfsup-config", "selfsup-layers"]),
    ("selfsup-heads", &["selfsup-core", "selfsup-config", "selfsup-layers", "selfsup-losses", "selfsup-necks"]),
    ("selfsup-data", &["selfsup-config"]),
    ("selfsup-weights", &["selfsup-core", "selfsup-config"]),
    ("selfsup-viz", &[]),
];

/// The `selfsup-*` crates a manifest lists in its `[dependencies]`.
fn selfsup_deps(manifest: &str) -> Vec<String> {
    let mut section = String::new();
    let mut deps = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_string();
            continue;
        }
        if section == "dependencies" {
            if let Some(name) = line.split(|c: char| c == '=' || c == '.' || c.is_whitespace()).next() {
                if name.starts_with("selfsup-") || name == "selfsup" {
                    deps.push(name.to_string());
                }
            }
        }
    }
    deps
}

/// Checks the dependency invariants; returns one line per violation.
fn check_crate_deps(root: &Path) -> Result<Vec<String>> {
    let mut failures = Vec::new();
    for (krate, allowed) in COMPONENT_DEPS {
        let path = root.join("crates").join(krate).join("Cargo.toml");
        let manifest = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        for dep in selfsup_deps(&manifest) {
            if !allowed.contains(&dep.as_str()) {
                failures.push(format!("{krate} depends on {dep}, which ARCHITECTURE.md's invariants forbid"));
            }
        }
    }
    Ok(failures)
}

/// `cargo fmt --check`, `cargo clippy -D warnings` and the dependency
/// invariants; returns what failed.
fn lint() -> Result<Vec<String>> {
    let root = root();
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut failures = check_crate_deps(&root)?;
    if !run(Command::new(&cargo).current_dir(&root).args(["fmt", "--all", "--check"]))? {
        failures.push("cargo fmt --check: run `cargo fmt --all`".into());
    }
    if !run(Command::new(&cargo).current_dir(&root).args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))? {
        failures.push("cargo clippy reports warnings".into());
    }
    for f in &failures {
        eprintln!("lint: {f}");
    }
    Ok(failures)
}

/// `fixtures --check|--write [--python PY]`: `tools/fixtures.py` in the
/// reference environment.
fn fixtures(args: &[String]) -> Result<()> {
    let root = root();
    let mode = match (args.iter().any(|a| a == "--check"), args.iter().any(|a| a == "--write")) {
        (true, false) => "--check",
        (false, true) => "--write",
        _ => bail!("usage: cargo xtask fixtures --check | --write [--python PY]"),
    };
    let python = flag_value(args, "--python").map(PathBuf::from).unwrap_or_else(|| root.join(".venv-reference/bin/python"));
    if !python.exists() {
        bail!("{} not found: install the reference environment with `bash tools/reference/setup.sh` (PyPI, about 7 GB)", python.display());
    }
    if !run(Command::new(&python).current_dir(&root).arg("tools/fixtures.py").arg(mode).arg("--python").arg(&python))? {
        bail!("the fixtures differ from the reference (see above)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_lines_are_read_from_the_dependencies_table_only() {
        let manifest = "[package]\nname = \"x\"\n[dependencies]\nselfsup-core = { workspace = true }\nselfsup-necks.workspace = true\nburn = \"1\"\n[dev-dependencies]\nselfsup-heads = { workspace = true }\n";
        assert_eq!(selfsup_deps(manifest), vec!["selfsup-core".to_string(), "selfsup-necks".to_string()]);
    }

    #[test]
    fn the_workspace_keeps_its_dependency_invariants() {
        let failures = check_crate_deps(&root()).unwrap();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
