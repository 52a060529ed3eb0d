//! The `selfsup` command as a user runs it: the README's examples as written, and a
//! fault-injection run (kill -9 during checkpoint writes, a corrupt image corpus with
//! decompression bombs and non-UTF-8 names through every tool, a full disk) that reports
//! what it tried and checks that nothing was lost.
//!
//! It runs the binary Cargo builds beside this test, with the default backend (flex).
use std::{
    collections::BTreeMap,
    fs,
    io::Write,
    os::unix::{ffi::OsStrExt, process::ExitStatusExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const DEMO: &str = "configs/simclr/simclr_resnet18-tiny_demo_synthetic.toml";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

fn selfsup(cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_selfsup"));
    c.current_dir(cwd).env_remove("SELFSUP_MAX_IMAGE_PIXELS");
    c
}

/// What a finished command did: exit status, output, and its own peak memory.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
    max_rss_mib: f64,
}

/// Runs `cmd` to the end; stdout and stderr go to files so that `wait4` can report the
/// child's own peak resident memory.
fn run(cmd: &mut Command, scratch: &Path) -> Run {
    let (out, err) = (scratch.join("stdout.txt"), scratch.join("stderr.txt"));
    cmd.stdout(Stdio::from(fs::File::create(&out).unwrap())).stderr(Stdio::from(fs::File::create(&err).unwrap()));
    // `wait4` reaps it (and reports its rusage), which `Child::wait` cannot.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().expect("spawn selfsup");
    let mut status = 0;
    // SAFETY: `rusage` is plain data; `wait4` writes it and `status` for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    let status = std::process::ExitStatus::from_raw(status);
    Run {
        success: status.success(),
        stdout: fs::read_to_string(&out).unwrap_or_default(),
        stderr: fs::read_to_string(&err).unwrap_or_default(),
        max_rss_mib: usage.ru_maxrss as f64 / 1024.0,
    }
}

fn ok(cmd: &mut Command, scratch: &Path) -> Run {
    let r = run(cmd, scratch);
    assert!(r.success, "{cmd:?} failed:\n{}\n{}", r.stdout, r.stderr);
    r
}

/// A seeded noise PNG of `size`×`size` pixels.
fn noise_png(path: &Path, size: u32, seed: u32) {
    let img = image::RgbImage::from_fn(size, size, |x, y| {
        let v = (x * 31 + y * 17 + seed * 101).wrapping_mul(2_654_435_761) >> 24;
        image::Rgb([v as u8, (v as u8).wrapping_mul(3), (seed * 40) as u8])
    });
    img.save_with_format(path, image::ImageFormat::Png).unwrap();
}

/// A 1-bit PNG declaring `side`×`side` pixels, all black: a few dozen kilobytes that would
/// decode to `side²` bytes, three times that as RGB (a decompression bomb).
fn bomb_png(path: &Path, side: u32) {
    let f = std::io::BufWriter::new(fs::File::create(path).unwrap());
    let mut enc = png::Encoder::new(f, side, side);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::One);
    enc.set_compression(png::Compression::High);
    let mut w = enc.write_header().unwrap();
    let mut s = w.stream_writer().unwrap();
    let row = vec![0u8; side.div_ceil(8) as usize];
    for _ in 0..side {
        s.write_all(&row).unwrap();
    }
    s.finish().unwrap();
}

/// Iteration → loss of a work dir's `scalars.json` (a resumed run's latest value wins).
fn losses(work_dir: &Path) -> BTreeMap<u64, f64> {
    let text = fs::read_to_string(work_dir.join("scalars.json")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v.get("iter")?.as_u64()?, v.get("loss")?.as_f64()?)))
        .collect()
}

fn checkpoints(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "safetensors")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn temporaries(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().contains(".tmp-")).count()).unwrap_or(0)
}

/// A tempdir with `configs` linked in, so the README's relative paths work as written.
fn user_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(workspace().join("configs"), dir.path().join("configs")).unwrap();
    dir
}

/// The README's training commands, run exactly as printed there (from a folder holding
/// `configs/` and `imgs/`).
#[test]
fn readme_examples_run_as_written() {
    let readme = fs::read_to_string(workspace().join("README.md")).unwrap();
    let examples = [
        "selfsup train configs/simclr/simclr_resnet18-tiny_demo_synthetic.toml --data imgs/ --cfg-options train_cfg.max_epochs=2",
        "selfsup train configs/simclr/simclr_resnet18-tiny_demo_synthetic.toml --cfg-options train_cfg.max_iters=20 train_dataloader.batch_size=8",
    ];
    let dir = user_dir();
    fs::create_dir_all(dir.path().join("imgs/more")).unwrap();
    for i in 0..20 {
        let sub = if i < 14 { "imgs" } else { "imgs/more" };
        noise_png(&dir.path().join(format!("{sub}/{i}.png")), 40, i);
    }
    for example in examples {
        assert!(readme.contains(example), "the README no longer shows `{example}`");
        let args: Vec<&str> = example.split_whitespace().skip(1).collect();
        let r = ok(selfsup(dir.path()).args(&args).arg("--no-progress"), dir.path());
        assert!(r.stderr.contains("work dir: work_dirs/simclr_resnet18-tiny_demo_synthetic"), "{}", r.stderr);
        if example.contains("--data") {
            // Every image under imgs/, sub-folders included, unlabelled; 20 in batches of 16.
            assert!(r.stderr.contains("data: CustomDataset with 20 images (unlabelled); 2 batches of 16 per epoch"), "{}", r.stderr);
            assert!(r.stdout.contains("done: 4 iterations"), "{}", r.stdout);
        } else {
            assert!(r.stdout.contains("done: 20 iterations"), "{}", r.stdout);
        }
    }

    // The default `with_label=true` of a CustomDataset reads class sub-folders only; the
    // images beside them are ignored, and that is said.
    let r = ok(
        selfsup(dir.path()).args(["train", DEMO, "--data", "imgs/", "--no-progress", "--cfg-options"]).args([
            "train_dataloader.dataset.with_label=true",
            "train_cfg.max_iters=1",
            "train_dataloader.batch_size=4",
        ]),
        dir.path(),
    );
    assert!(r.stderr.contains("14 image(s) directly in the folder are ignored"), "{}", r.stderr);
    assert!(r.stderr.contains("with 6 images (1 classes)"), "{}", r.stderr);
}

/// Error texts name each cause once, name `--cfg-options` for a bad option, and refuse
/// oversized or non-finite configs early.
#[test]
fn errors_say_each_cause_once() {
    let dir = user_dir();
    let r = run(selfsup(dir.path()).args(["train", "missing.toml"]), dir.path());
    assert!(!r.success);
    assert_eq!(r.stderr.matches("os error 2").count(), 1, "{}", r.stderr);
    let r = run(selfsup(dir.path()).args(["knn", DEMO, "--train", "configs/_base_/default_runtime.toml", "--val", "x"]), dir.path());
    assert!(!r.success && r.stderr.matches("not a directory").count() == 1, "{}", r.stderr);
    let r = run(selfsup(dir.path()).args(["config", DEMO, "--cfg-options", "model.backbone.arch=["]), dir.path());
    assert!(!r.success && r.stderr.contains("--cfg-options model.backbone.arch=[") && r.stderr.contains("unbalanced"), "{}", r.stderr);
    fs::write(dir.path().join("nan.toml"), format!("_base_ = \"{DEMO}\"\n[optim_wrapper.optimizer]\nlr = nan\n")).unwrap();
    let r = run(selfsup(dir.path()).args(["config", "nan.toml"]), dir.path());
    assert!(!r.success && r.stderr.contains("optim_wrapper.optimizer.lr") && r.stderr.contains("finite"), "{}", r.stderr);
    let r = run(selfsup(dir.path()).args(["config", DEMO, "--max-image-pixels", "lots"]), dir.path());
    assert!(!r.success && r.stderr.contains("--max-image-pixels"), "{}", r.stderr);
}

/// `visualize-reconstruction` picks its view from the config's model type, without a
/// checkpoint on the freshly initialised model; `visualize-mae`, its old name, is the same
/// command; a model without a reconstruction is refused by name.
#[test]
fn visualize_reconstruction_and_its_old_name() {
    let dir = user_dir();
    noise_png(&dir.path().join("img.png"), 140, 3);
    let cases = [
        ("configs/mae/mae_vit-tiny-p4_demo_synthetic.toml", "MAE: original | masked | reconstruction | reconstruction + visible"),
        ("configs/maskfeat/maskfeat_vit-tiny_demo_synthetic.toml", "MaskFeat: original | masked | HOG target | HOG prediction"),
    ];
    for (config, said) in cases {
        let draw = |name: &str, out: &str| {
            let r = ok(selfsup(dir.path()).args([name, config, "--image", "img.png", "--out", out, "--seed", "3"]), dir.path());
            assert!(r.stdout.contains(&format!("wrote {out} ({said}")), "{}", r.stdout);
            fs::read(dir.path().join(out)).unwrap()
        };
        assert_eq!(draw("visualize-reconstruction", "new.png"), draw("visualize-mae", "old.png"), "{config}");
    }
    let r = run(selfsup(dir.path()).args(["visualize-mae", DEMO, "--image", "img.png", "--out", "x.png"]), dir.path());
    assert!(!r.success && r.stderr.contains("this config's model is SimCLR"), "{}", r.stderr);
    assert!(!dir.path().join("x.png").exists());
}

/// Repeated kill -9 while checkpoints are written, then `--resume auto`; a corrupt corpus
/// with bombs and non-UTF-8 names through train, extract, knn and linear-probe; a full
/// disk. Reports what it tried; fails if anything was lost.
#[test]
fn fault_injection_loses_nothing() {
    let dir = user_dir();
    let scratch = dir.path();
    let mut report = vec![];
    let common = [
        "train_dataloader.dataset.num_samples=64",
        "train_dataloader.batch_size=8",
        "train_cfg.max_epochs=3",
        "default_hooks.logger.interval=1",
        "default_hooks.checkpoint.by_epoch=false",
        "default_hooks.checkpoint.interval=1",
        "default_hooks.checkpoint.max_keep_ckpts=2",
    ];
    let train = |work_dir: &Path| {
        let mut c = selfsup(scratch);
        c.args(["train", DEMO, "--no-progress", "--resume", "auto", "--work-dir"]).arg(work_dir).arg("--cfg-options").args(common);
        c
    };

    // The uninterrupted run.
    let reference = scratch.join("reference");
    ok(&mut train(&reference), scratch);
    let want = losses(&reference);
    assert_eq!(want.len(), 24, "3 epochs of 8 iterations");
    let ckpt_size = fs::metadata(checkpoints(&reference).last().unwrap()).unwrap().len();

    // kill -9, aimed at checkpoint writes (a `*.tmp-PID` file present), then resume.
    let killed = scratch.join("killed");
    let (mut during_write, mut elsewhere, mut restarts) = (0, 0, 0);
    let started = Instant::now();
    loop {
        restarts += 1;
        let mut child = train(&killed).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let spawned = Instant::now();
        // After the write-aimed kills, a few at fixed delays; then let it finish.
        let kills = during_write + elsewhere;
        let deadline = match kills {
            0..8 => Duration::from_secs(20),
            8..11 => Duration::from_millis(300 + 250 * (kills as u64 - 8)),
            _ => Duration::MAX,
        };
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if kills < 8 && temporaries(&killed) > 0 {
                child.kill().unwrap();
                child.wait().unwrap();
                during_write += 1;
                break None;
            }
            if spawned.elapsed() > deadline {
                child.kill().unwrap();
                child.wait().unwrap();
                elsewhere += 1;
                break None;
            }
            std::thread::sleep(Duration::from_micros(100));
        };
        if let Some(status) = status {
            assert!(status.success(), "the resumed run failed after {restarts} starts");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "the kill loop does not end");
    }
    let got = losses(&killed);
    assert_eq!(got, want, "resumed losses differ from the uninterrupted run's");
    assert_eq!(temporaries(&killed), 0, "temporary files of killed writes are removed");
    assert!(checkpoints(&killed).len() <= 2, "max_keep_ckpts=2 holds across resumes: {:?}", checkpoints(&killed));
    let (a, b) = (scratch.join("a.safetensors"), scratch.join("b.safetensors"));
    ok(selfsup(scratch).arg("convert").arg(checkpoints(&reference).last().unwrap()).arg(&a), scratch);
    ok(selfsup(scratch).arg("convert").arg(checkpoints(&killed).last().unwrap()).arg(&b), scratch);
    assert!(fs::read(&a).unwrap() == fs::read(&b).unwrap(), "the final weights differ");
    report.push(format!(
        "kill -9: {during_write} kills during a checkpoint write, {elsewhere} at other points, {restarts} starts; \
         all 24 losses and the final weights equal the uninterrupted run's"
    ));

    // A corrupt corpus: good images in two classes, one with a non-UTF-8 name, and
    // zero-byte, truncated, garbage and bomb files.
    let corpus = scratch.join("corpus");
    for class in ["a", "b"] {
        fs::create_dir_all(corpus.join(class)).unwrap();
        for i in 0..6 {
            noise_png(&corpus.join(format!("{class}/{i}.png")), 36, i + if class == "a" { 0 } else { 10 });
        }
    }
    let odd = corpus.join("b").join(std::ffi::OsStr::from_bytes(b"caf\xe9.png"));
    fs::rename(corpus.join("b/5.png"), &odd).unwrap();
    fs::write(corpus.join("a/zero.jpg"), b"").unwrap();
    let png = fs::read(corpus.join("a/0.png")).unwrap();
    fs::write(corpus.join("b/truncated.png"), &png[..png.len() / 2]).unwrap();
    fs::write(corpus.join("b/garbage.png"), (0..500u32).map(|i| (i * 7919 % 251) as u8).collect::<Vec<_>>()).unwrap();
    bomb_png(&corpus.join("a/bomb.png"), 20_000);
    let bomb_kib = fs::metadata(corpus.join("a/bomb.png")).unwrap().len() / 1024;
    let bad = 4;

    let work = scratch.join("corpus_run");
    let r = ok(
        selfsup(scratch).args(["train", DEMO, "--no-progress", "--data"]).arg(&corpus).arg("--work-dir").arg(&work).args([
            "--cfg-options",
            "train_cfg.max_epochs=1",
            "train_dataloader.batch_size=4",
        ]),
        scratch,
    );
    assert!(r.stdout.contains(&format!("{bad} unreadable images skipped")), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("declares 20000x20000 pixels"), "{}", r.stderr);
    assert!(r.max_rss_mib < 1024.0, "training next to a bomb took {:.0} MiB", r.max_rss_mib);
    let train_rss = r.max_rss_mib;
    let ckpt = checkpoints(&work).pop().unwrap();

    let feats = scratch.join("feats.safetensors");
    let r = ok(
        selfsup(scratch).args(["extract", DEMO, "--checkpoint"]).arg(&ckpt).arg("--images").arg(&corpus).arg("--out").arg(&feats),
        scratch,
    );
    assert!(
        r.stdout.contains("wrote features of 12 images") && r.stdout.contains(&format!("{bad} unreadable images skipped")),
        "{}",
        r.stdout
    );
    let eval = |cmd: &str| {
        let mut c = selfsup(scratch);
        c.args([cmd, DEMO, "--checkpoint"]).arg(&ckpt).arg("--train").arg(&corpus).arg("--val").arg(&corpus);
        c
    };
    let r = ok(eval("knn").args(["--k", "5"]), scratch);
    assert!(r.stdout.contains("(12 training, 12 evaluated images)"), "{}\n{}", r.stdout, r.stderr);
    let r = ok(eval("linear-probe").args(["--epochs", "2"]), scratch);
    assert!(r.stdout.contains("12 train / 12 val"), "{}\n{}", r.stdout, r.stderr);
    report.push(format!(
        "corpus of 12 good images (one named with byte 0xE9), a zero-byte, a truncated, a garbage file and a \
         {bomb_kib} KiB PNG declaring 20000x20000: train, extract, knn and linear-probe each used the 12 and skipped \
         the {bad}; training peaked at {train_rss:.0} MiB"
    ));

    // A full disk: a tmpfs with room for one checkpoint and a half (root only).
    let mount = scratch.join("small_disk");
    fs::create_dir_all(&mount).unwrap();
    let size = ckpt_size + ckpt_size / 2 + 256 * 1024;
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(&mount)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if mounted {
        let full = mount.join("work");
        let r = run(&mut train(&full), scratch);
        let kept = checkpoints(&full);
        let copy = scratch.join("after_full_disk");
        fs::create_dir_all(&copy).unwrap();
        for entry in fs::read_dir(&full).unwrap().flatten() {
            fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
        }
        let leftover = temporaries(&full);
        let _ = Command::new("umount").arg(&mount).status();
        assert!(!r.success && r.stderr.contains("No space left"), "{}", r.stderr);
        assert_eq!(leftover, 0, "a failed write leaves no temporary file");
        assert_eq!(kept.len(), 1, "the checkpoint written before the disk filled is kept: {kept:?}");
        // Resumed elsewhere, it finishes with the uninterrupted run's losses.
        ok(&mut train(&copy), scratch);
        assert_eq!(losses(&copy), want, "resuming after the full disk");
        report.push(format!(
            "full disk ({size}-byte tmpfs): the run stopped with ENOSPC, kept {:?}, resumed to the same losses",
            kept[0].file_name().unwrap()
        ));
    } else {
        report.push("full disk: not tried, mounting a tmpfs needs root".to_string());
    }
    println!("fault injection:\n  {}", report.join("\n  "));
}

/// `export-digits` writes scikit-learn's digits file (here a 40-row stand-in
/// in its layout) as class folders, and `finetune` trains the digits
/// classifier on them and reports top-1/top-5 on the test folders; `extract`
/// writes the same images' features as CSV.
#[test]
fn export_digits_finetune_and_extract_csv() {
    let dir = user_dir();
    fs::create_dir_all(dir.path().join("data")).unwrap();
    let mut text = String::new();
    for i in 0..40usize {
        let px: Vec<String> = (0..64).map(|j| if j % 8 == i % 8 { "16".into() } else { ((i + j) % 5).to_string() }).collect();
        text.push_str(&format!("{},{}\n", px.join(","), i % 10));
    }
    fs::write(dir.path().join("data/digits.csv"), text).unwrap();
    let r = ok(selfsup(dir.path()).args(["export-digits", "--data-file", "data/digits.csv", "--out", "data/digits"]), dir.path());
    assert!(
        r.stdout.contains("wrote 30 images to data/digits/train") && r.stdout.contains("wrote 10 images to data/digits/test"),
        "{}",
        r.stdout
    );
    assert!(dir.path().join("data/digits/test/7/digits_0007.png").exists());

    let config = "configs/benchmarks/classification/digits/resnet18-tiny_ft_digits.toml";
    let r = ok(
        selfsup(dir.path())
            .args(["finetune", config, "--train", "data/digits/train", "--val", "data/digits/test", "--no-progress", "--cfg-options"])
            .args(["train_cfg.max_epochs=1", "train_cfg.val_interval=1", "train_dataloader.batch_size=10"]),
        dir.path(),
    );
    assert!(r.stdout.contains("fine-tuned 3 iterations: top-1 ") && r.stdout.contains("(10 images)"), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("Epoch(val) [1]"), "{}", r.stderr);
    let eval = fs::read_to_string(dir.path().join("work_dirs/resnet18-tiny_ft_digits/eval.json")).unwrap();
    assert!(eval.contains("\"num_samples\": 10"), "{eval}");

    let ckpt = "work_dirs/resnet18-tiny_ft_digits/epoch_1.safetensors";
    ok(
        selfsup(dir.path()).args(["extract", config, "--checkpoint", ckpt, "--images", "data/digits/test", "--out", "feats.csv"]),
        dir.path(),
    );
    let csv = fs::read_to_string(dir.path().join("feats.csv")).unwrap();
    assert_eq!(csv.lines().count(), 11, "{csv}");
    assert!(csv.starts_with("name,feat_0,") && csv.lines().nth(1).unwrap().starts_with("1/digits_0011.png,"), "{csv}");
}
