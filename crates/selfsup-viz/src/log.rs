//! Reading the JSON-lines training log.
//!
//! The runner appends one JSON object per logged iteration to
//! `WORK_DIR/scalars.json`, in the style of MMEngine's `vis_data/scalars.json`:
//!
//! ```text
//! {"iter":10,"epoch":1,"lr":0.0297,"loss":3.62,"grad_norm":2.15,"time":0.31,"data_time":0.004,"img_per_s":44.5,"loss_single":2.10,"loss_dense":1.52}
//! ```
//!
//! Rules, chosen so that the log of a run that was killed and resumed (maybe
//! several times) reads as the run that survived:
//! - lines without an integer `iter` (MMEngine's validation lines, which carry
//!   only `step`) and lines that are not JSON objects (a line cut short by a
//!   kill) are skipped and counted, never fatal;
//! - when `iter` does not increase, a resumed run has started: every earlier
//!   record at that iteration or later is dropped, so each iteration keeps its
//!   latest value and a branch that was abandoned leaves nothing behind;
//! - every other number is a scalar; `null` (how `serde_json` writes NaN and
//!   ±∞) and the strings `"NaN"`, `"inf"`, `"-inf"` are non-finite values;
//!   `epoch` and `step` are kept apart; other values (strings, lists) are
//!   ignored.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::VizError;

/// One logged iteration.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// The iteration (MMEngine's 1-based `iter`).
    pub iter: u64,
    /// The 1-based epoch, when logged.
    pub epoch: Option<u64>,
    /// Every other scalar, by key. Non-finite values are `NaN`.
    pub scalars: BTreeMap<String, f64>,
}

/// A parsed training log: records in increasing `iter`, one per iteration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingLog {
    /// The records, sorted by strictly increasing `iter`.
    pub records: Vec<LogRecord>,
    /// Lines that were skipped: not JSON objects, or without an `iter`.
    pub skipped_lines: usize,
    /// How many times the iteration went back (resumed or restarted runs).
    pub restarts: usize,
    keys: Vec<String>,
}

impl TrainingLog {
    /// Reads and parses a log file.
    pub fn read(path: &Path) -> Result<Self, VizError> {
        let text = fs::read_to_string(path).map_err(|source| VizError::Io { path: path.to_path_buf(), source })?;
        Ok(Self::parse(&text))
    }

    /// Parses the text of a log (see the module docs for the rules).
    pub fn parse(text: &str) -> Self {
        let mut log = TrainingLog::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let Some((record, order)) = parse_line(line) else {
                log.skipped_lines += 1;
                continue;
            };
            if log.records.last().is_some_and(|last| record.iter <= last.iter) {
                log.restarts += 1;
                let keep = log.records.partition_point(|r| r.iter < record.iter);
                log.records.truncate(keep);
            }
            for key in order {
                if !log.keys.contains(&key) {
                    log.keys.push(key);
                }
            }
            log.records.push(record);
        }
        log
    }

    /// Every scalar key, in the order first seen in the file.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// `(iter, value)` for every record that logged `key`; `NaN` marks a
    /// non-finite value. Records that did not log `key` are left out.
    pub fn series(&self, key: &str) -> Vec<(f64, f64)> {
        self.records.iter().filter_map(|r| r.scalars.get(key).map(|&v| (r.iter as f64, v))).collect()
    }
}

/// The record of a line, and its scalar keys in the line's order.
fn parse_line(line: &str) -> Option<(LogRecord, Vec<String>)> {
    let serde_json::Value::Object(map) = serde_json::from_str(line).ok()? else {
        return None;
    };
    let iter = map.get("iter")?.as_u64()?;
    let epoch = map.get("epoch").and_then(serde_json::Value::as_u64);
    let pairs: Vec<(String, f64)> = map
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "iter" | "epoch" | "step"))
        .filter_map(|(k, v)| scalar(v).map(|x| (k.clone(), x)))
        .collect();
    let order = pairs.iter().map(|(k, _)| k.clone()).collect();
    Some((LogRecord { iter, epoch, scalars: pairs.into_iter().collect() }, order))
}

fn scalar(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::Null => Some(f64::NAN),
        serde_json::Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "nan" | "inf" | "-inf" | "infinity" | "-infinity" => Some(f64::NAN),
            _ => None,
        },
        _ => None,
    }
}

/// The training log of a work directory: `WORK_DIR/scalars.json` (ours) or,
/// failing that, the newest `WORK_DIR/<timestamp>/vis_data/scalars.json`
/// (MMEngine's). `work_dir` may also be the log file itself.
pub fn find_log(work_dir: &Path) -> Result<PathBuf, VizError> {
    if work_dir.is_file() {
        return Ok(work_dir.to_path_buf());
    }
    let ours = work_dir.join("scalars.json");
    if ours.is_file() {
        return Ok(ours);
    }
    // MMEngine names the run folders by timestamp, so the greatest name is the newest.
    let newest = fs::read_dir(work_dir)
        .map_err(|source| VizError::Io { path: work_dir.to_path_buf(), source })?
        .filter_map(Result::ok)
        .map(|e| e.path().join("vis_data").join("scalars.json"))
        .filter(|p| p.is_file())
        .max();
    newest.ok_or_else(|| VizError::NoLog(work_dir.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_runner_format() {
        let log = TrainingLog::parse(concat!(
            r#"{"iter":10,"epoch":1,"lr":0.03,"loss":3.6,"grad_norm":2.1,"time":0.3,"data_time":0.004,"img_per_s":44.5,"loss_single":2.1,"loss_dense":1.5}"#,
            "\n",
            r#"{"iter":20,"epoch":1,"lr":0.02,"loss":3.0,"grad_norm":null,"time":0.3,"data_time":0.003,"img_per_s":48.7,"loss_single":2.0,"loss_dense":1.0}"#,
            "\n"
        ));
        assert_eq!(log.records.len(), 2);
        assert_eq!((log.skipped_lines, log.restarts), (0, 0));
        assert_eq!(log.keys(), ["lr", "loss", "grad_norm", "time", "data_time", "img_per_s", "loss_single", "loss_dense"]);
        assert_eq!(log.records[0].epoch, Some(1));
        assert_eq!(log.series("loss_dense"), vec![(10.0, 1.5), (20.0, 1.0)]);
        let g = log.series("grad_norm");
        assert_eq!(g[0], (10.0, 2.1));
        assert!(g[1].1.is_nan(), "null is a non-finite value, not a missing one");
    }

    #[test]
    fn resumed_runs_keep_the_latest_value_per_iteration() {
        // Run A logs 10..=40 and is killed after a checkpoint at 20; run B
        // resumes at 20 and is killed at 30; run C resumes at 20 and finishes.
        let mut text = String::new();
        for (it, loss) in [(10, 1.0), (20, 2.0), (30, 3.0), (40, 4.0), (30, 30.0), (30, 300.0), (50, 500.0)] {
            text.push_str(&format!("{{\"iter\":{it},\"loss\":{loss}}}\n"));
        }
        let log = TrainingLog::parse(&text);
        assert_eq!(log.series("loss"), vec![(10.0, 1.0), (20.0, 2.0), (30.0, 300.0), (50.0, 500.0)]);
        assert_eq!(log.restarts, 2);
        assert!(log.records.windows(2).all(|w| w[0].iter < w[1].iter));
    }

    #[test]
    fn bad_lines_are_skipped_and_counted() {
        let text = concat!(
            "{\"iter\":1,\"loss\":1.0}\n",
            "{\"iter\":2,\"lo\n", // cut short by a kill
            "\n",
            "{\"step\":1,\"accuracy/top1\":12.5}\n", // MMEngine validation line
            "[1,2]\n",
            "{\"iter\":3,\"loss\":\"NaN\",\"lr\":0.1,\"mode\":\"train\",\"memory\":[1]}\n",
        );
        let log = TrainingLog::parse(text);
        assert_eq!(log.skipped_lines, 3);
        assert_eq!(log.records.len(), 2);
        assert!(log.series("loss")[1].1.is_nan());
        assert_eq!(log.keys(), ["loss", "lr"], "strings and lists are not scalars");
        assert_eq!(log.series("lr"), vec![(3.0, 0.1)], "missing keys are left out, not NaN");
    }

    #[test]
    fn finds_our_log_and_mmengine_logs() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(find_log(dir.path()), Err(VizError::NoLog(_))));
        for stamp in ["20230101_000000", "20230102_000000"] {
            let vis = dir.path().join(stamp).join("vis_data");
            fs::create_dir_all(&vis).unwrap();
            fs::write(vis.join("scalars.json"), "").unwrap();
        }
        assert!(find_log(dir.path()).unwrap().ends_with("20230102_000000/vis_data/scalars.json"));
        fs::write(dir.path().join("scalars.json"), "").unwrap();
        assert_eq!(find_log(dir.path()).unwrap(), dir.path().join("scalars.json"));
        let file = dir.path().join("scalars.json");
        assert_eq!(find_log(&file).unwrap(), file);
    }
}
