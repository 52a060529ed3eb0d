//! Pieces shared by the file-based datasets: MMEngine's `BaseDataset` options and path
//! joining, folder scanning and annotation-file parsing.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::DataError;

/// The image extensions looked for when scanning a folder (compared case-insensitively).
///
/// mmcls's default list also has `.ppm`, `.bmp`, `.pgm`, `.tif`; this build only decodes JPEG
/// and PNG, and asking for another extension is a config error.
pub const IMG_EXTENSIONS: [&str; 3] = [".jpg", ".jpeg", ".png"];

/// MMEngine's `data_prefix`: a string, or `{img_path = "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DataPrefix {
    /// mmcls's string form.
    Path(String),
    /// MMEngine's dict form.
    Dict {
        /// Folder of the images, relative to `data_root` unless absolute.
        img_path: String,
    },
}

impl Default for DataPrefix {
    fn default() -> Self {
        DataPrefix::Path(String::new())
    }
}

impl DataPrefix {
    /// The image folder.
    pub fn img_path(&self) -> &str {
        match self {
            DataPrefix::Path(p) | DataPrefix::Dict { img_path: p } => p,
        }
    }
}

/// MMEngine's `metainfo` (only `classes` is used).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetaInfo {
    /// Class names, in label order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
}

/// MMEngine's `indices`: keep the first `n` samples, or the listed ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Indices {
    /// The first `n` samples (all when fewer).
    First(usize),
    /// These samples, in this order.
    List(Vec<usize>),
}

/// MMEngine's `_join_prefix`: `data_root` + `path` unless `path` is absolute or empty,
/// then `base_dir` + the result unless it is absolute.
pub(crate) fn resolve(base_dir: Option<&Path>, data_root: &str, path: &str) -> PathBuf {
    let p = Path::new(path);
    let joined = if p.is_absolute() || data_root.is_empty() { p.to_path_buf() } else { Path::new(data_root).join(p) };
    match base_dir {
        Some(b) if !joined.is_absolute() => b.join(joined),
        _ => joined,
    }
}

/// Lower-cased extensions with a leading dot; rejects extensions this build cannot decode.
pub(crate) fn normalize_extensions(dataset: &str, exts: &[String]) -> Result<Vec<String>, DataError> {
    exts.iter()
        .map(|e| {
            let e = e.to_ascii_lowercase();
            let e = if e.starts_with('.') { e } else { format!(".{e}") };
            if IMG_EXTENSIONS.contains(&e.as_str()) {
                Ok(e)
            } else {
                Err(DataError::config(dataset, format!("extension '{e}' cannot be decoded by this build (supported: {IMG_EXTENSIONS:?})")))
            }
        })
        .collect()
}

fn has_extension(path: &Path, exts: &[String]) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase());
    name.is_some_and(|n| exts.iter().any(|e| n.ends_with(e.as_str())))
}

fn is_hidden(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let io = |source| DataError::Io { path: dir.to_path_buf(), source };
    let mut entries = std::fs::read_dir(dir).map_err(io)?.map(|e| e.map(|e| e.path())).collect::<Result<Vec<_>, _>>().map_err(io)?;
    entries.sort();
    Ok(entries)
}

/// Appends every image file under `dir` (recursively, following symlinks, skipping hidden
/// entries and symlink loops) to `out`, in sorted order. A sub-folder that cannot be read is
/// skipped with a warning, as an unreadable file is; only `dir` itself must be readable.
/// Files that are not images with one of `exts` go to `ignored`.
fn walk(
    dir: &Path,
    exts: &[String],
    visited: &mut HashSet<PathBuf>,
    out: &mut Vec<PathBuf>,
    ignored: &mut Vec<PathBuf>,
) -> Result<(), DataError> {
    let canonical = dir.canonicalize().map_err(|source| DataError::Io { path: dir.to_path_buf(), source })?;
    if !visited.insert(canonical) {
        return Ok(());
    }
    for entry in read_dir_sorted(dir)? {
        if is_hidden(&entry) {
            continue;
        }
        if entry.is_dir() {
            if let Err(e) = walk(&entry, exts, visited, out, ignored) {
                eprintln!("warning: skipping {}: {e}", entry.display());
            }
        } else if has_extension(&entry, exts) {
            out.push(entry);
        } else {
            ignored.push(entry);
        }
    }
    Ok(())
}

/// The result of listing a dataset: relative names (`/`-separated) with labels, and the
/// exact relative paths of the names that are not valid UTF-8 (their names are lossy).
pub(crate) struct Listing {
    pub samples: Vec<(String, Option<usize>)>,
    pub classes: Vec<String>,
    pub exact: HashMap<String, PathBuf>,
}

/// The names of `files` under `root`, recording the exact path of every name that is not
/// valid UTF-8 (so that such a file is read, not reported missing).
fn names(root: &Path, files: &[PathBuf], exact: &mut HashMap<String, PathBuf>) -> Vec<String> {
    files
        .iter()
        .map(|f| {
            let name = relative_name(root, f);
            let rel = f.strip_prefix(root).unwrap_or(f);
            if rel.to_str().is_none() {
                exact.entry(name.clone()).or_insert_with(|| rel.to_path_buf());
            }
            name
        })
        .collect()
}

fn relative_name(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// Scans `root` like mmcls's `CustomDataset._find_samples`: with `with_label` and first-level
/// sub-folders, each sub-folder (sorted, hidden ones skipped) is a class and its images (at
/// any depth) are labelled with its index; images directly in `root` are then ignored, as in
/// mmcls. Otherwise every image under `root` is listed, unlabelled.
pub(crate) fn scan_folder(dataset: &'static str, root: &Path, exts: &[String], with_label: bool) -> Result<Listing, DataError> {
    if !root.is_dir() {
        return Err(DataError::Io {
            path: root.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        });
    }
    let class_dirs: Vec<PathBuf> =
        if with_label { read_dir_sorted(root)?.into_iter().filter(|p| p.is_dir() && !is_hidden(p)).collect() } else { Vec::new() };
    let mut samples = Vec::new();
    let mut classes = Vec::new();
    let mut exact = HashMap::new();
    let mut visited = HashSet::new();
    let mut ignored = Vec::new();
    if class_dirs.is_empty() {
        let mut files = Vec::new();
        walk(root, exts, &mut visited, &mut files, &mut ignored)?;
        samples.extend(names(root, &files, &mut exact).into_iter().map(|n| (n, None)));
    } else {
        for (label, dir) in class_dirs.iter().enumerate() {
            classes.push(relative_name(root, dir));
            let mut files = Vec::new();
            if let Err(e) = walk(dir, exts, &mut visited, &mut files, &mut ignored) {
                eprintln!("warning: skipping {}: {e}", dir.display());
            }
            samples.extend(names(root, &files, &mut exact).into_iter().map(|n| (n, Some(label))));
        }
        // mmcls ignores the files beside the class folders; say so.
        let top: Vec<PathBuf> = read_dir_sorted(root)?.into_iter().filter(|p| !p.is_dir() && !is_hidden(p)).collect();
        let top_images = top.iter().filter(|p| has_extension(p, exts)).count();
        if top_images > 0 {
            eprintln!(
                "warning: {}: {top_images} image(s) directly in the folder are ignored: with with_label=true (the default) \
                 images are read from its class sub-folders ({} found); set with_label=false to read every image, unlabelled",
                root.display(),
                class_dirs.len()
            );
        }
        ignored.extend(top.into_iter().filter(|p| !has_extension(p, exts)));
    }
    warn_ignored(root, &ignored);
    if samples.is_empty() {
        return Err(DataError::EmptyDataset {
            dataset,
            path: root.to_path_buf(),
            reason: format!(
                "no image file with extension {exts:?} found{}",
                if class_dirs.is_empty() { " (searched recursively)" } else { " in the class sub-folders" }
            ),
        });
    }
    Ok(Listing { samples, classes, exact })
}

/// Warns once per scan about files that are not read because of their extension, counted
/// by extension.
fn warn_ignored(root: &Path, ignored: &[PathBuf]) {
    if ignored.is_empty() {
        return;
    }
    let mut by_ext = std::collections::BTreeMap::<String, usize>::new();
    for p in ignored {
        let ext = p.extension().map_or_else(|| "(none)".to_string(), |e| format!(".{}", e.to_string_lossy().to_ascii_lowercase()));
        *by_ext.entry(ext).or_default() += 1;
    }
    let list: Vec<String> = by_ext.iter().map(|(e, n)| format!("{n} {e}")).collect();
    eprintln!("warning: {}: {} file(s) ignored, not image files this build reads: {}", root.display(), ignored.len(), list.join(", "));
}

/// Reads an annotation file: one sample per non-empty line, `path label` or just `path`
/// (mmcls splits on the last space; a last field that is not an integer is part of the
/// path; a negative label, as in `ImageList`, means "no label").
pub(crate) fn read_ann_file(dataset: &'static str, ann_file: &Path, with_label: bool) -> Result<Listing, DataError> {
    let text = std::fs::read_to_string(ann_file).map_err(|source| DataError::Io { path: ann_file.to_path_buf(), source })?;
    let mut samples = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parsed = if with_label {
            line.rsplit_once(char::is_whitespace).and_then(|(p, l)| l.parse::<i64>().ok().map(|l| (p.trim_end(), l)))
        } else {
            None
        };
        samples.push(match parsed {
            Some((path, label)) => (path.to_string(), usize::try_from(label).ok()),
            None => (line.to_string(), None),
        });
    }
    if samples.is_empty() {
        return Err(DataError::EmptyDataset {
            dataset,
            path: ann_file.to_path_buf(),
            reason: "the annotation file has no sample line".into(),
        });
    }
    Ok(Listing { samples, classes: Vec::new(), exact: HashMap::new() })
}

/// Applies MMEngine's `indices` option.
pub(crate) fn apply_indices(
    dataset: &'static str,
    samples: Vec<(String, Option<usize>)>,
    indices: &Option<Indices>,
) -> Result<Vec<(String, Option<usize>)>, DataError> {
    match indices {
        None => Ok(samples),
        Some(Indices::First(n)) => Ok(samples.into_iter().take(*n).collect()),
        Some(Indices::List(list)) => {
            list.iter()
                .map(|&i| {
                    samples.get(i).cloned().ok_or_else(|| {
                        DataError::config(dataset, format!("`indices` has {i} but the dataset has {} samples", samples.len()))
                    })
                })
                .collect()
        }
    }
}
