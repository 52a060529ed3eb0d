//! `SklearnDigits` (ours): the real handwritten digits that scikit-learn
//! ships inside its package (`sklearn/datasets/data/digits.csv.gz`, the
//! UCI "Optical Recognition of Handwritten Digits" test set): 1,797 grey
//! 8 × 8 images of the digits 0–9, each pixel a count from 0 to 16.
//!
//! The file is read as it ships (gzip or plain CSV, 65 numbers per line:
//! 64 pixels row by row, then the label); nothing is downloaded. Pixels
//! become 8-bit grey `round(v · 255 / 16)` in three equal channels, so
//! every RGB pipeline applies; the pipeline resizes them (`Resize`,
//! `RandomResizedCrop`).
//!
//! The split is fixed and documented rather than drawn: sample `i` is in
//! `test` when `i % 4 == 3` (449 images) and in `train` otherwise (1,348).
//! The file cycles through the digits, so both halves hold every class in
//! nearly equal numbers.
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Dataset, RawSample};
use crate::imaging::Image;
use crate::transforms::TransformConfig;
use crate::DataError;

/// Pixels per side.
pub const DIGITS_SIDE: usize = 8;
/// The largest pixel count in the file.
const DIGITS_MAX: f64 = 16.0;
/// Every `TEST_EVERY`-th sample (the last of each group) is a test sample.
const TEST_EVERY: usize = 4;

/// Which samples of the file a [`SklearnDigits`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DigitsSplit {
    /// Samples with `i % 4 != 3` (1,348 of the shipped file).
    Train,
    /// Samples with `i % 4 == 3` (449).
    Test,
    /// Every sample.
    #[default]
    All,
}

impl DigitsSplit {
    /// Whether file row `i` belongs to the split.
    pub fn holds(self, i: usize) -> bool {
        match self {
            DigitsSplit::Train => i % TEST_EVERY != TEST_EVERY - 1,
            DigitsSplit::Test => i % TEST_EVERY == TEST_EVERY - 1,
            DigitsSplit::All => true,
        }
    }

    /// The split's name (`train`, `test`, `all`).
    pub fn name(self) -> &'static str {
        match self {
            DigitsSplit::Train => "train",
            DigitsSplit::Test => "test",
            DigitsSplit::All => "all",
        }
    }
}

/// `dict(type='SklearnDigits', data_file, split='all', pipeline=[...])`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SklearnDigitsConfig {
    /// scikit-learn's `digits.csv.gz` (or the same CSV uncompressed), e.g.
    /// `python -c "import sklearn.datasets as d, os; print(os.path.join(os.path.dirname(d.__file__), 'data', 'digits.csv.gz'))"`.
    pub data_file: String,
    /// `train`, `test` or `all` (default); see the module documentation.
    #[serde(default)]
    pub split: DigitsSplit,
    /// The transform pipeline applied by the data loader. Default empty.
    #[serde(default)]
    pub pipeline: Vec<TransformConfig>,
    /// MMEngine option, accepted, no effect. Default `false`.
    #[serde(default)]
    pub test_mode: bool,
}

impl SklearnDigitsConfig {
    /// Reads the file (a relative `data_file` joined to `base_dir` when given).
    ///
    /// # Errors
    /// [`DataError::Io`] for an unreadable file, [`DataError::InvalidConfig`] for a line
    /// that is not 65 numbers in range.
    pub fn build(&self, base_dir: Option<&Path>) -> Result<SklearnDigits, DataError> {
        let mut path = PathBuf::from(&self.data_file);
        if let (Some(base), true) = (base_dir, path.is_relative()) {
            path = base.join(path);
        }
        let (images, labels) = read_digits(&path)?;
        let rows: Vec<usize> = (0..labels.len()).filter(|&i| self.split.holds(i)).collect();
        if rows.is_empty() {
            return Err(DataError::EmptyDataset {
                dataset: "SklearnDigits",
                path: path.clone(),
                reason: format!("no sample in split `{}`", self.split.name()),
            });
        }
        Ok(SklearnDigits { images, labels, rows })
    }
}

/// The digits of one split; see the module documentation.
#[derive(Debug, Clone)]
pub struct SklearnDigits {
    /// Every image of the file, `8 × 8` grey values 0–255.
    images: Vec<[u8; DIGITS_SIDE * DIGITS_SIDE]>,
    labels: Vec<usize>,
    /// File rows of the split, in file order.
    rows: Vec<usize>,
}

impl SklearnDigits {
    /// The file row of sample `index`.
    pub fn row_of(&self, index: usize) -> Option<usize> {
        self.rows.get(index).copied()
    }
}

/// Reads scikit-learn's digits file: `(images, labels)`, pixels already
/// scaled to 0–255.
///
/// # Errors
/// [`DataError::Io`] for an unreadable or corrupt gzip file,
/// [`DataError::InvalidConfig`] for a malformed line.
pub fn read_digits(path: &Path) -> Result<(Vec<[u8; DIGITS_SIDE * DIGITS_SIDE]>, Vec<usize>), DataError> {
    let io = |source| DataError::Io { path: path.to_path_buf(), source };
    let bytes = std::fs::read(path).map_err(io)?;
    let text = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut text).map_err(io)?;
        text
    } else {
        String::from_utf8(bytes).map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?
    };
    let bad = |line: usize, what: String| DataError::config("SklearnDigits", format!("{}: line {line}: {what}", path.display()));
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let values: Vec<f64> =
            line.split(',').map(|v| v.trim().parse::<f64>().map_err(|e| bad(n + 1, format!("`{v}`: {e}")))).collect::<Result<_, _>>()?;
        if values.len() != DIGITS_SIDE * DIGITS_SIDE + 1 {
            return Err(bad(n + 1, format!("{} values, expected 65 (64 pixels and the label)", values.len())));
        }
        let mut img = [0u8; DIGITS_SIDE * DIGITS_SIDE];
        for (p, &v) in img.iter_mut().zip(&values) {
            if !(0.0..=DIGITS_MAX).contains(&v) {
                return Err(bad(n + 1, format!("pixel {v} outside 0..=16")));
            }
            *p = (v * 255.0 / DIGITS_MAX).round() as u8;
        }
        let label = values[DIGITS_SIDE * DIGITS_SIDE];
        if !(0.0..=9.0).contains(&label) || label.fract() != 0.0 {
            return Err(bad(n + 1, format!("label {label} is not a digit")));
        }
        images.push(img);
        labels.push(label as usize);
    }
    Ok((images, labels))
}

impl Dataset for SklearnDigits {
    fn len(&self) -> usize {
        self.rows.len()
    }

    fn load(&self, index: usize) -> Result<RawSample, DataError> {
        let row = self.row_of(index).ok_or(DataError::IndexOutOfRange { index, len: self.rows.len() })?;
        let data: Vec<u8> = self.images[row].iter().flat_map(|&v| [v, v, v]).collect();
        let img = Image::from_raw(DIGITS_SIDE, DIGITS_SIDE, 3, data).expect("8 × 8 × 3 values");
        Ok(RawSample { img, label: Some(self.labels[row]), name: format!("digits_{row:04}.png"), index, clustering_label: None })
    }

    fn num_classes(&self) -> Option<usize> {
        Some(10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten rows: row `i` is digit `i % 10` with pixel `j` = `(i + j) % 17`.
    fn write_file(dir: &Path, gzip: bool) -> PathBuf {
        let mut text = String::new();
        for i in 0..10 {
            let row: Vec<String> = (0..64).map(|j| ((i + j) % 17).to_string()).chain([(i % 10).to_string()]).collect();
            text.push_str(&row.join(","));
            text.push('\n');
        }
        let path = dir.join(if gzip { "digits.csv.gz" } else { "digits.csv" });
        if gzip {
            use std::io::Write;
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(text.as_bytes()).unwrap();
            std::fs::write(&path, enc.finish().unwrap()).unwrap();
        } else {
            std::fs::write(&path, text).unwrap();
        }
        path
    }

    #[test]
    fn reads_both_forms_splits_and_scales() {
        let dir = tempfile::tempdir().unwrap();
        for gzip in [true, false] {
            let path = write_file(dir.path(), gzip);
            let cfg = |split| SklearnDigitsConfig { data_file: path.display().to_string(), split, pipeline: Vec::new(), test_mode: false };
            let all = cfg(DigitsSplit::All).build(None).unwrap();
            let (train, test) = (cfg(DigitsSplit::Train).build(None).unwrap(), cfg(DigitsSplit::Test).build(None).unwrap());
            assert_eq!((all.len(), train.len(), test.len()), (10, 8, 2));
            assert_eq!((test.row_of(0), test.row_of(1)), (Some(3), Some(7)));
            let s = test.load(1).unwrap();
            assert_eq!((s.label, s.name.as_str(), s.index), (Some(7), "digits_0007.png", 1));
            assert_eq!((s.img.width(), s.img.height(), s.img.channels()), (8, 8, 3));
            // Pixel j of row 7 is (7 + j) % 17: pixel 9 is 16 → 255, pixel 10 is 0, pixel 0 is 7 → 112.
            let grey = |j: usize| s.img.data()[3 * j];
            assert_eq!((grey(9), grey(10), grey(0)), (255, 0, 112));
            assert!(s.img.data().chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
            assert!(matches!(test.load(2), Err(DataError::IndexOutOfRange { .. })));
        }
    }

    #[test]
    fn class_folders_hold_the_same_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), true);
        let cfg =
            SklearnDigitsConfig { data_file: path.display().to_string(), split: DigitsSplit::Test, pipeline: Vec::new(), test_mode: false };
        let test = cfg.build(None).unwrap();
        let out = dir.path().join("folders");
        assert_eq!(crate::datasets::write_class_folders(&test, &out).unwrap(), 2);
        let back = crate::CustomDatasetConfig {
            data_prefix: crate::DataPrefix::Path(out.display().to_string()),
            with_label: true,
            ..Default::default()
        }
        .build(None)
        .unwrap();
        assert_eq!(back.classes(), ["3", "7"]);
        let (a, b) = (test.load(1).unwrap(), back.load(1).unwrap());
        assert_eq!((a.img, b.name.as_str()), (b.img, "7/digits_0007.png"));
    }

    #[test]
    fn malformed_files_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        for (text, want) in [
            ("1,2,3\n", "line 1: 3 values"),
            (&format!("{}17,0\n", "0,".repeat(63))[..], "pixel 17"),
            (&format!("{}x\n", "0,".repeat(64))[..], "`x`"),
        ] {
            let path = dir.path().join("bad.csv");
            std::fs::write(&path, text).unwrap();
            let err = read_digits(&path).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        let err = read_digits(&dir.path().join("missing.csv.gz")).unwrap_err();
        assert!(matches!(err, DataError::Io { .. }));
    }
}
