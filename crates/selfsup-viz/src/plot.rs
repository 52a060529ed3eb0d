//! `selfsup plot`: one PNG chart per metric group of a training log.

use std::path::{Path, PathBuf};

use crate::chart::{Chart, Scale, Series, PALETTE};
use crate::log::TrainingLog;
use crate::{save_png, VizError};

/// Options for [`plot_log`].
#[derive(Debug, Clone, PartialEq)]
pub struct PlotOptions {
    /// Chart width in pixels.
    pub width: u32,
    /// Chart height in pixels.
    pub height: u32,
    /// Draw the loss chart with a logarithmic y axis. Falls back to linear
    /// (and says so in the title) when a loss is `<= 0`, e.g. SimSiam's
    /// negative cosine similarity.
    pub log_loss: bool,
    /// Centred moving-average window in logged points; `0` or `1` is off.
    /// When on, the raw curve is drawn faded behind the smoothed one. The
    /// `lr` and `momentum` charts are schedules, not noisy measurements, and
    /// are never smoothed.
    pub smooth: usize,
    /// Also plot `time` and `data_time` (`time.png`) and `img_per_s`
    /// (`throughput.png`).
    pub timing: bool,
}

impl Default for PlotOptions {
    fn default() -> Self {
        Self { width: 900, height: 500, log_loss: false, smooth: 0, timing: false }
    }
}

/// A chart to draw: a file stem and the log keys that share its axes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricGroup {
    /// File stem (`loss` → `loss.png`) and chart title.
    pub name: String,
    /// The keys drawn, in legend order.
    pub keys: Vec<String>,
}

/// The charts for a log, in this order and only when their keys are present:
/// - `loss`: `loss` (the total) and every other key containing `loss`
///   (the parts MMSelfSup sums);
/// - `lr`: `lr`, `*_lr`, `lr_*` (one per parameter group);
/// - `momentum`: keys containing `momentum`;
/// - `grad_norm`;
/// - `entropy` (DINO's `teacher_entropy`) and `center_norm`, the collapse
///   signals DINO logs;
/// - `rankme`, `embedding_std` and `knn` (`knn_top1_k*`), the
///   `RepresentationMonitorHook`'s measurements;
/// - `accuracy` (`accuracy/top*`), fine-tuning's evaluation;
/// - with [`PlotOptions::timing`]: `time` (`time`, `data_time`) and
///   `throughput` (`img_per_s`).
///
/// Other keys (MMEngine's `memory`, ...) are not drawn.
pub fn metric_groups(log: &TrainingLog, opts: &PlotOptions) -> Vec<MetricGroup> {
    let keys = log.keys();
    let pick = |pred: &dyn Fn(&str) -> bool| -> Vec<String> {
        // The exact name of the group (e.g. the total `loss`) leads its legend.
        keys.iter().filter(|k| pred(k)).cloned().collect()
    };
    let mut loss = pick(&|k| k.contains("loss"));
    loss.sort_by_key(|k| k != "loss");
    let mut groups = vec![
        ("loss", loss),
        ("lr", pick(&|k| k == "lr" || k.ends_with("_lr") || k.starts_with("lr_"))),
        ("momentum", pick(&|k| k.contains("momentum"))),
        ("grad_norm", pick(&|k| k == "grad_norm")),
        ("entropy", pick(&|k| k.contains("entropy"))),
        ("center_norm", pick(&|k| k == "center_norm")),
        ("rankme", pick(&|k| k == "rankme")),
        ("embedding_std", pick(&|k| k == "embedding_std")),
        ("knn", pick(&|k| k.starts_with("knn_"))),
        ("accuracy", pick(&|k| k.starts_with("accuracy"))),
    ];
    if opts.timing {
        groups.push(("time", pick(&|k| k == "time" || k == "data_time")));
        groups.push(("throughput", pick(&|k| k == "img_per_s")));
    }
    groups.into_iter().filter(|(_, keys)| !keys.is_empty()).map(|(name, keys)| MetricGroup { name: name.to_string(), keys }).collect()
}

/// Centred moving average over `window` points (`window / 2` on each side,
/// fewer at the ends), of the finite values only. A non-finite input stays
/// `NaN`, so gaps stay gaps. `window <= 1` returns the input.
pub fn moving_average(values: &[f64], window: usize) -> Vec<f64> {
    if window <= 1 {
        return values.to_vec();
    }
    let half = window / 2;
    // Prefix sums of the finite values and of their count.
    let mut sum = vec![0.0; values.len() + 1];
    let mut n = vec![0usize; values.len() + 1];
    for (i, v) in values.iter().enumerate() {
        let finite = v.is_finite();
        sum[i + 1] = sum[i] + if finite { *v } else { 0.0 };
        n[i + 1] = n[i] + usize::from(finite);
    }
    (0..values.len())
        .map(|i| {
            if !values[i].is_finite() {
                return f64::NAN;
            }
            let (a, b) = (i.saturating_sub(half), (i + half + 1).min(values.len()));
            (sum[b] - sum[a]) / (n[b] - n[a]) as f64
        })
        .collect()
}

/// The chart of one group (see [`plot_training_log`] for what is drawn).
pub fn group_chart(log: &TrainingLog, group: &MetricGroup, opts: &PlotOptions) -> Chart {
    let smoothing = opts.smooth > 1 && !matches!(group.name.as_str(), "lr" | "momentum");
    let mut series = Vec::new();
    let mut title = group.name.clone();
    for (i, key) in group.keys.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let raw = log.series(key);
        if smoothing {
            let ys: Vec<f64> = raw.iter().map(|p| p.1).collect();
            let smooth = moving_average(&ys, opts.smooth);
            let faded = fade(color);
            series.push(Series { width: 1.0, in_legend: false, ..Series::new(key.as_str(), raw.clone(), faded) });
            series.push(Series::new(key.as_str(), raw.iter().zip(smooth).map(|(p, y)| (p.0, y)).collect(), color));
        } else {
            series.push(Series::new(key.as_str(), raw, color));
        }
    }
    if smoothing {
        title.push_str(&format!(" (moving average of {})", opts.smooth));
    }
    let mut y_scale = Scale::Linear;
    if group.name == "loss" && opts.log_loss {
        let non_positive = series.iter().flat_map(|s| &s.points).any(|p| p.1.is_finite() && p.1 <= 0.0);
        if non_positive {
            title.push_str(" (linear: values <= 0)");
        } else {
            y_scale = Scale::Log;
            title.push_str(" (log scale)");
        }
    }
    Chart {
        title,
        x_label: "iteration".into(),
        y_label: match group.name.as_str() {
            "time" => "seconds".into(),
            "throughput" => "images/s".into(),
            "knn" => "top-1 %".into(),
            "accuracy" => "%".into(),
            name => name.into(),
        },
        series,
        y_scale,
        integer_x: true,
        width: opts.width,
        height: opts.height,
    }
}

fn fade(c: image::Rgb<u8>) -> image::Rgb<u8> {
    image::Rgb(c.0.map(|v| (u16::from(v) * 35 / 100 + 255 * 65 / 100) as u8))
}

/// Draws every chart of [`metric_groups`] into `out_dir` (created if
/// missing) as `<group>.png`, and returns the paths written.
pub fn plot_training_log(log: &TrainingLog, out_dir: &Path, opts: &PlotOptions) -> Result<Vec<PathBuf>, VizError> {
    if log.records.is_empty() {
        return Err(VizError::EmptyLog);
    }
    std::fs::create_dir_all(out_dir).map_err(|source| VizError::Io { path: out_dir.to_path_buf(), source })?;
    metric_groups(log, opts)
        .iter()
        .map(|group| {
            let path = out_dir.join(format!("{}.png", group.name));
            save_png(&group_chart(log, group, opts).render(), &path)?;
            Ok(path)
        })
        .collect()
}

/// `selfsup plot`: reads the training log at `log_path` (a file, or a work
/// directory: see [`find_log`](crate::log::find_log)) and writes one PNG per
/// metric group into `out_dir`, e.g. `loss.png` and `lr.png`.
pub fn plot_log(log_path: &Path, out_dir: &Path, opts: &PlotOptions) -> Result<Vec<PathBuf>, VizError> {
    let path = crate::log::find_log(log_path)?;
    let log = TrainingLog::read(&path)?;
    plot_training_log(&log, out_dir, opts).map_err(|e| match e {
        VizError::EmptyLog => VizError::NoRecords(path),
        e => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn densecl_like_log(n: usize) -> String {
        (1..=n)
            .map(|i| {
                let t = i as f64 / n as f64;
                format!(
                    "{{\"iter\":{},\"epoch\":{},\"lr\":{},\"loss\":{},\"loss_single\":{},\"loss_dense\":{},\"grad_norm\":null,\"time\":0.3,\"data_time\":0.01,\"img_per_s\":50.0,\"memory\":100}}\n",
                    i * 10,
                    i / 10 + 1,
                    0.03 * (1.0 - t),
                    3.0 - 2.0 * t,
                    2.0 - t,
                    1.0 - t * 0.99
                )
            })
            .collect()
    }

    #[test]
    fn groups_follow_the_keys_present() {
        let log = TrainingLog::parse(&densecl_like_log(5));
        let names = |opts: &PlotOptions| metric_groups(&log, opts).into_iter().map(|g| g.name).collect::<Vec<_>>();
        assert_eq!(names(&PlotOptions::default()), ["loss", "lr", "grad_norm"]);
        assert_eq!(names(&PlotOptions { timing: true, ..Default::default() }), ["loss", "lr", "grad_norm", "time", "throughput"]);
        let groups = metric_groups(&log, &PlotOptions::default());
        assert_eq!(groups[0].keys, ["loss", "loss_single", "loss_dense"], "the total leads");
        let log = TrainingLog::parse("{\"iter\":1,\"loss_a\":1,\"loss\":2,\"base_momentum\":0.99,\"lr_backbone\":0.1,\"lr\":1}\n");
        let groups = metric_groups(&log, &PlotOptions::default());
        assert_eq!(groups[0].keys, ["loss", "loss_a"]);
        assert_eq!(groups[1].keys, ["lr_backbone", "lr"]);
        assert_eq!(groups[2].keys, ["base_momentum"]);
    }

    #[test]
    fn moving_average_smooths_and_keeps_gaps() {
        assert_eq!(moving_average(&[2.0; 6], 3), vec![2.0; 6]);
        assert_eq!(moving_average(&[0.0, 3.0, 6.0], 1), vec![0.0, 3.0, 6.0]);
        assert_eq!(moving_average(&[0.0, 3.0, 6.0, 9.0], 3), vec![1.5, 3.0, 6.0, 7.5]);
        let s = moving_average(&[1.0, f64::NAN, 3.0, 5.0], 3);
        assert!(s[1].is_nan());
        assert_eq!([s[0], s[2], s[3]], [1.0, 4.0, 4.0]);
    }

    #[test]
    fn log_scale_falls_back_for_non_positive_losses() {
        let log = TrainingLog::parse("{\"iter\":1,\"loss\":-0.5}\n{\"iter\":2,\"loss\":-0.9}\n");
        let opts = PlotOptions { log_loss: true, ..Default::default() };
        let chart = group_chart(&log, &metric_groups(&log, &opts)[0], &opts);
        assert_eq!(chart.y_scale, Scale::Linear);
        assert!(chart.title.contains("linear"));
        let log = TrainingLog::parse(&densecl_like_log(5));
        let chart = group_chart(&log, &metric_groups(&log, &opts)[0], &opts);
        assert_eq!(chart.y_scale, Scale::Log);
    }

    #[test]
    fn smoothing_adds_faded_raw_curves_outside_the_legend() {
        let log = TrainingLog::parse(&densecl_like_log(20));
        let opts = PlotOptions { smooth: 5, ..Default::default() };
        let chart = group_chart(&log, &metric_groups(&log, &opts)[0], &opts);
        assert_eq!(chart.series.len(), 6);
        assert_eq!(chart.series.iter().filter(|s| s.in_legend).count(), 3);
        assert!(chart.title.contains("moving average of 5"));
        let lr = group_chart(&log, &metric_groups(&log, &opts)[1], &opts);
        assert_eq!((lr.title.as_str(), lr.series.len()), ("lr", 1), "schedules are not smoothed");
    }

    #[test]
    fn plot_log_writes_readable_pngs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("scalars.json"), densecl_like_log(40)).unwrap();
        let out = dir.path().join("plots");
        let opts = PlotOptions { log_loss: true, smooth: 3, timing: true, ..Default::default() };
        let files = plot_log(dir.path(), &out, &opts).unwrap();
        let names: Vec<_> = files.iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_string()).collect();
        assert_eq!(names, ["loss.png", "lr.png", "grad_norm.png", "time.png", "throughput.png"]);
        for f in &files {
            let img = image::open(f).unwrap().to_rgb8();
            assert_eq!(img.dimensions(), (opts.width, opts.height));
            assert!(img.pixels().any(|p| *p == PALETTE[0]), "{} has a curve", f.display());
        }
        // A log with no training lines is an error naming the file.
        std::fs::write(dir.path().join("scalars.json"), "{\"step\":1}\n").unwrap();
        assert!(matches!(plot_log(dir.path(), &out, &opts), Err(VizError::NoRecords(p)) if p.ends_with("scalars.json")));
    }
}
