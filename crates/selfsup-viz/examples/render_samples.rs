//! Renders sample pictures from synthetic data, to look at by eye:
//! `cargo run -p selfsup-viz --example render_samples -- OUT_DIR [WORK_DIR]`.
//!
//! Writes a synthetic DenseCL-like `scalars.json` (warm-up then cosine lr,
//! two loss parts, noise, a NaN and a resumed segment), its charts, and an
//! MAE strip of a synthetic image with a fake reconstruction. With a
//! `WORK_DIR`, also plots that run's log into `OUT_DIR/work_dir/`.

use std::path::PathBuf;

use selfsup_viz::{patchify, plot_log, ImageF32, MaeVisualization, PlotOptions, StripOptions, VizError};

fn main() -> Result<(), VizError> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "viz_samples".into()));
    std::fs::create_dir_all(&out).map_err(|source| VizError::Io { path: out.clone(), source })?;

    // A 2000-iteration run logged every 10, killed at 1370 and resumed from 1000.
    let (max_iters, warmup) = (2000.0f64, 200.0);
    let mut seed = 12345u64;
    let mut noise = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut text = String::new();
    let iters = (10..=1370).step_by(10).chain((1010..=2000).step_by(10));
    for it in iters {
        let t = it as f64;
        let lr = if t < warmup {
            0.03 * t / warmup
        } else {
            0.03 * 0.5 * (1.0 + (std::f64::consts::PI * (t - warmup) / (max_iters - warmup)).cos())
        };
        let single = 2.1 * (-t / 700.0).exp() + 1.2 + 0.08 * noise();
        let dense = 1.6 * (-t / 400.0).exp() + 0.35 + 0.06 * noise();
        let loss = if it == 500 { "null".to_string() } else { format!("{}", single + dense) };
        text.push_str(&format!(
            "{{\"iter\":{it},\"epoch\":{},\"lr\":{lr},\"loss\":{loss},\"grad_norm\":{},\"time\":{},\"data_time\":{},\"img_per_s\":{},\"loss_single\":{single},\"loss_dense\":{dense}}}\n",
            it / 100 + 1,
            1.5 * (-t / 900.0).exp() + 0.4 + 0.1 * noise(),
            0.3 + 0.05 * noise(),
            0.01 + 0.004 * noise(),
            50.0 + 5.0 * noise()
        ));
    }
    let log = out.join("scalars.json");
    std::fs::write(&log, text).map_err(|source| VizError::Io { path: log.clone(), source })?;
    let opts = PlotOptions { smooth: 9, timing: true, ..Default::default() };
    for f in plot_log(&log, &out, &opts)? {
        println!("{}", f.display());
    }
    let log_opts = PlotOptions { log_loss: true, ..Default::default() };
    let log_dir = out.join("log_scale");
    for f in plot_log(&log, &log_dir, &log_opts)? {
        println!("{}", f.display());
    }

    // MAE strip: a 32×32 synthetic image, p = 4, 75% of patches masked,
    // a "reconstruction" that is the original blurred per patch (its mean).
    let (h, w, p) = (32usize, 32usize, 4usize);
    let mut data = vec![0.0f32; 3 * h * w];
    for y in 0..h {
        for x in 0..w {
            let (u, v) = (x as f32 / w as f32, y as f32 / h as f32);
            let ring = (((u - 0.5).powi(2) + (v - 0.5).powi(2)).sqrt() * 18.0).sin() * 0.5 + 0.5;
            for (c, val) in [u, ring, 1.0 - v].into_iter().enumerate() {
                data[(c * h + y) * w + x] = val;
            }
        }
    }
    // Normalise as the model would see it, with MMSelfSup's mean and std.
    let (mean, std) = ([123.675f32, 116.28, 103.53], [58.395f32, 57.12, 57.375]);
    let plane = h * w;
    let normed: Vec<f32> = data.iter().enumerate().map(|(i, v)| (v * 255.0 - mean[i / plane]) / std[i / plane]).collect();
    let original = ImageF32::new(3, h, w, normed)?;
    let patches = patchify(&original, p)?;
    let feat = p * p * 3;
    let pred: Vec<f32> = patches
        .chunks(feat)
        .flat_map(|c| {
            let m = c.iter().sum::<f32>() / feat as f32;
            c.iter().map(move |v| 0.5 * v + 0.5 * m)
        })
        .collect();
    let num = (h / p) * (w / p);
    // 75% masked, scattered like MAE's random masking.
    let mask: Vec<f32> = (0..num).map(|i| if ((i * 2654435761usize) >> 7).is_multiple_of(4) { 0.0 } else { 1.0 }).collect();
    let vis = MaeVisualization::new(original, &pred, &mask, p, false)?.denormalized(&mean, &std, 255.0)?;
    let strip = vis.strip(&StripOptions { scale: 6, ..Default::default() })?;
    let path = out.join("mae.png");
    selfsup_viz::save_png(&strip, &path)?;
    println!("{}", path.display());

    if let Some(work_dir) = std::env::args().nth(2) {
        for f in plot_log(std::path::Path::new(&work_dir), &out.join("work_dir"), &PlotOptions::default())? {
            println!("{}", f.display());
        }
    }
    Ok(())
}
