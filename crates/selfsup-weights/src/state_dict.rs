//! State dicts: reading, strict loading, exporting.
use std::{
    collections::{BTreeMap, HashMap},
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use burn::{
    module::ParamId,
    tensor::{backend::Backend, DType, TensorData},
};
use burn_store::{pytorch::PytorchReader, BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, TensorSnapshot};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};

use crate::KeyMap;

/// A host tensor of a state dict (burn's `TensorData`: shape, dtype, bytes).
pub type Tensor = TensorData;

/// Errors of checkpoint interop. Each names the file or key it is about.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a checkpoint selfsup can read.
    #[error("{path}: not a readable checkpoint: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The checkpoint does not fit the model (strict loading).
    #[error("the checkpoint does not fit the model:\n{0}")]
    Mismatch(LoadReport),
    /// A tensor could not be applied.
    #[error("{key}: {message}")]
    Apply {
        /// The key, in PyTorch naming.
        key: String,
        /// What went wrong.
        message: String,
    },
}

/// A checkpoint's tensors by PyTorch key, in key order.
#[derive(Debug, Clone, Default)]
pub struct StateDict {
    /// Tensors by key.
    pub tensors: BTreeMap<String, Tensor>,
    /// Metadata stored beside the tensors (safetensors `__metadata__`).
    pub metadata: BTreeMap<String, String>,
}

impl StateDict {
    /// Keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// The tensor under `key`.
    pub fn get(&self, key: &str) -> Option<&Tensor> {
        self.tensors.get(key)
    }

    /// The tensors under `prefix`, with the prefix stripped
    /// (`backbone.` for a backbone-only load).
    pub fn sub(&self, prefix: &str) -> StateDict {
        StateDict {
            tensors: self.tensors.iter().filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone()))).collect(),
            metadata: self.metadata.clone(),
        }
    }

    /// The same tensors with `prefix` put in front of every key.
    pub fn prefixed(&self, prefix: &str) -> StateDict {
        StateDict {
            tensors: self.tensors.iter().map(|(k, v)| (format!("{prefix}{k}"), v.clone())).collect(),
            metadata: self.metadata.clone(),
        }
    }
}

/// Reads a checkpoint: an MMSelfSup/PyTorch `.pth` (its `state_dict` entry
/// when present, else the top-level dict) or a `.safetensors` file.
pub fn read_checkpoint(path: impl AsRef<Path>) -> Result<StateDict, WeightsError> {
    let path = path.as_ref();
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    if is_safetensors {
        return read_safetensors(path);
    }
    diagnose_pth(path)?;
    let reader = match PytorchReader::with_top_level_key(path, "state_dict") {
        Ok(r) => r,
        Err(_) => PytorchReader::new(path).map_err(|e| WeightsError::Format { path: path.to_path_buf(), message: e.to_string() })?,
    };
    let mut tensors = BTreeMap::new();
    for (key, snapshot) in reader.into_tensors() {
        let data = snapshot.to_data().map_err(|e| WeightsError::Format { path: path.to_path_buf(), message: format!("{key}: {e}") })?;
        tensors.insert(key, data);
    }
    if tensors.is_empty() {
        return Err(WeightsError::Format { path: path.to_path_buf(), message: "no tensors found".into() });
    }
    Ok(StateDict { tensors, metadata: BTreeMap::new() })
}

/// Catches, before the pickle reader does, what it would misreport: a missing file (as an
/// I/O error), an empty file, and a zip archive without its end record. `torch.save` writes a
/// zip whose directory is at the end, so a file cut short loses it, and the reader then
/// falls back to the legacy format and fails on the zip's first byte (`Invalid pickle
/// opcode 0x50`).
fn diagnose_pth(path: &Path) -> Result<(), WeightsError> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |source| WeightsError::Io { path: path.to_path_buf(), source };
    let format = |message: &str| WeightsError::Format { path: path.to_path_buf(), message: message.to_string() };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    if len == 0 {
        return Err(format("the file is empty"));
    }
    let mut magic = [0u8; 4];
    if len < 4 || f.read_exact(&mut magic).is_err() || magic != *b"PK\x03\x04" {
        return Ok(()); // not a zip: the legacy pickle format, left to the reader
    }
    // The end-of-central-directory record: 22 bytes plus a comment of at most 64 KiB.
    let tail_len = len.min(22 + 65_535);
    f.seek(SeekFrom::Start(len - tail_len)).map_err(io)?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    f.take(tail_len).read_to_end(&mut tail).map_err(io)?;
    // A complete record: its signature, 22 bytes, then exactly its comment up to the end.
    let complete = (0..tail.len().saturating_sub(21))
        .any(|p| tail[p..p + 4] == *b"PK\x05\x06" && p + 22 + usize::from(u16::from_le_bytes([tail[p + 20], tail[p + 21]])) == tail.len());
    if !complete {
        return Err(format(&format!(
            "the file is truncated or corrupt: a PyTorch zip archive ({len} bytes) without its end-of-archive record \
             (the file was cut short, e.g. by an interrupted download or copy)"
        )));
    }
    Ok(())
}

fn dtype_from_safetensors(d: Dtype) -> Option<DType> {
    Some(match d {
        Dtype::F64 => DType::F64,
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::I64 => DType::I64,
        Dtype::I32 => DType::I32,
        Dtype::I16 => DType::I16,
        Dtype::I8 => DType::I8,
        Dtype::U8 => DType::U8,
        Dtype::BOOL => DType::Bool(burn::tensor::BoolStore::Native),
        _ => return None,
    })
}

fn dtype_to_safetensors(d: DType) -> Option<Dtype> {
    Some(match d {
        DType::F64 => Dtype::F64,
        DType::F32 => Dtype::F32,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::I64 => Dtype::I64,
        DType::I32 => Dtype::I32,
        DType::I16 => Dtype::I16,
        DType::I8 => Dtype::I8,
        DType::U8 => Dtype::U8,
        DType::Bool(_) => Dtype::BOOL,
        _ => return None,
    })
}

fn read_safetensors(path: &Path) -> Result<StateDict, WeightsError> {
    let bytes = fs::read(path).map_err(|source| WeightsError::Io { path: path.to_path_buf(), source })?;
    let format = |message: String| WeightsError::Format { path: path.to_path_buf(), message };
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| format(e.to_string()))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| format(e.to_string()))?;
    let mut tensors = BTreeMap::new();
    for (name, view) in st.tensors() {
        let dtype = dtype_from_safetensors(view.dtype()).ok_or_else(|| format(format!("{name}: unsupported dtype {:?}", view.dtype())))?;
        tensors.insert(name, TensorData::from_bytes_vec(view.data().to_vec(), view.shape().to_vec(), dtype));
    }
    let metadata = meta.metadata().clone().map(|m| m.into_iter().collect()).unwrap_or_default();
    Ok(StateDict { tensors, metadata })
}

/// Writes tensors (and string metadata) to a safetensors file atomically:
/// to a temporary file in the same folder, then renamed over `path`.
pub fn write_safetensors(
    path: impl AsRef<Path>,
    tensors: &BTreeMap<String, Tensor>,
    metadata: &BTreeMap<String, String>,
) -> Result<(), WeightsError> {
    let path = path.as_ref();
    let mut views = Vec::with_capacity(tensors.len());
    for (name, data) in tensors {
        let dtype = dtype_to_safetensors(data.dtype).ok_or_else(|| WeightsError::Format {
            path: path.to_path_buf(),
            message: format!("{name}: dtype {:?} cannot be stored in safetensors", data.dtype),
        })?;
        let view = TensorView::new(dtype, data.shape.to_vec(), data.as_bytes())
            .map_err(|e| WeightsError::Format { path: path.to_path_buf(), message: format!("{name}: {e}") })?;
        views.push((name.clone(), view));
    }
    let meta: HashMap<String, String> = metadata.clone().into_iter().collect();
    let bytes =
        safetensors::serialize(views, Some(meta)).map_err(|e| WeightsError::Format { path: path.to_path_buf(), message: e.to_string() })?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` through a temporary file (`.NAME.tmp-PID`
/// beside it) and a rename, so a crash or a full disk never leaves a
/// half-written file under `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WeightsError> {
    let io = |source| WeightsError::Io { path: path.to_path_buf(), source };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io)?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Removes the temporary files that [`write_atomic`] left in `dir` when
/// its process was killed mid-write (`.NAME.tmp-PID` of a PID that is not
/// this process's); returns what it removed.
pub fn remove_orphaned_temporaries(dir: &Path) -> Vec<PathBuf> {
    let own = format!(".tmp-{}", std::process::id());
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let orphan = name.starts_with('.')
            && name.rsplit_once(".tmp-").is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
            && !name.ends_with(&own);
        if orphan && entry.file_type().is_ok_and(|t| t.is_file()) && fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

/// Options of [`load_into`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Refuse any missing key, unexpected key or shape mismatch (default).
    pub strict: bool,
    /// Load only the keys under this prefix, stripped (`"backbone."`).
    pub prefix: Option<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { strict: true, prefix: None }
    }
}

/// What a load did, in PyTorch key names and layouts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Keys loaded.
    pub loaded: Vec<String>,
    /// Keys the model has and the checkpoint lacks.
    pub missing: Vec<String>,
    /// Keys the checkpoint has and the model lacks.
    pub unexpected: Vec<String>,
    /// `(key, model shape, checkpoint shape)`.
    pub shape_mismatches: Vec<(String, Vec<usize>, Vec<usize>)>,
}

impl LoadReport {
    /// No missing or unexpected key and no shape mismatch.
    pub fn is_exact(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.shape_mismatches.is_empty()
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "loaded {} tensors", self.loaded.len())?;
        if !self.missing.is_empty() {
            writeln!(f, "missing keys ({}): {}", self.missing.len(), self.missing.join(", "))?;
        }
        if !self.unexpected.is_empty() {
            writeln!(f, "unexpected keys ({}): {}", self.unexpected.len(), self.unexpected.join(", "))?;
        }
        for (k, model, ckpt) in &self.shape_mismatches {
            writeln!(f, "shape mismatch for {k}: model {model:?}, checkpoint {ckpt:?}")?;
        }
        Ok(())
    }
}

fn pytorch_name(snapshot: &TensorSnapshot, keymap: &KeyMap) -> String {
    let mut path = snapshot.path_stack.clone().unwrap_or_default();
    let is_norm =
        snapshot.module_type().is_some_and(|t| matches!(t.as_str(), "Struct:LayerNorm" | "Struct:BatchNorm" | "Struct:GroupNorm"));
    if is_norm {
        if let Some(last) = path.last_mut() {
            match last.as_str() {
                "gamma" => *last = "weight".into(),
                "beta" => *last = "bias".into(),
                _ => {}
            }
        }
    }
    keymap.to_pytorch(&path.join("."))
}

/// A module's state dict with PyTorch key names and layouts, as
/// `model.state_dict()` would give for the same MMSelfSup model.
pub fn export_state_dict<B: Backend, M: ModuleSnapshot<B>>(module: &M, keymap: &KeyMap) -> Result<BTreeMap<String, Tensor>, WeightsError> {
    let mut out = BTreeMap::new();
    for snapshot in module.collect(None, Some(Box::new(BurnToPyTorchAdapter)), true) {
        if snapshot.container_stack.as_ref().is_some_and(|s| s.iter().any(|t| t == NON_PERSISTENT)) {
            continue;
        }
        let key = pytorch_name(&snapshot, keymap);
        let data = snapshot.to_data().map_err(|e| WeightsError::Apply { key: key.clone(), message: e.to_string() })?;
        out.insert(key.clone(), to_torch_buffer(&key, data));
    }
    let aliases: Vec<(String, Tensor)> =
        out.iter().flat_map(|(k, v)| keymap.aliases_of(k, |g| out.contains_key(g)).into_iter().map(move |a| (a, v.clone()))).collect();
    out.extend(aliases);
    Ok(out)
}

/// The model's keys and shapes in PyTorch naming and layout, without
/// materialising lazily initialised parameters (cheap even for ViT-H).
pub fn model_keys<B: Backend, M: burn::module::Module<B>>(module: &M, keymap: &KeyMap) -> BTreeMap<String, Vec<usize>> {
    let mut v = KeyVisitor { path: vec![], types: vec![], keymap, out: BTreeMap::new() };
    module.visit(&mut v);
    let mut out = v.out;
    let aliases: Vec<(String, Vec<usize>)> =
        out.iter().flat_map(|(k, s)| keymap.aliases_of(k, |g| out.contains_key(g)).into_iter().map(move |a| (a, s.clone()))).collect();
    out.extend(aliases);
    for (key, shape) in out.iter_mut() {
        if (torch_buffer(key).is_some_and(|(_, scalar)| scalar) || torch_float_scalar(key)) && shape.as_slice() == [1] {
            shape.clear();
        }
    }
    out
}

/// The module type of state kept outside the state dict (`selfsup_layers::buffer::NonPersistent`,
/// PyTorch's plain tensor attributes and non-persistent buffers): no key, not exported, not loaded.
const NON_PERSISTENT: &str = "Struct:NonPersistent";

/// PyTorch's integer buffers, kept as floats in selfsup modules (burn has no
/// 0-d tensors and some backends no int64): `(key suffix, 0-d in PyTorch)`.
const TORCH_INT_BUFFERS: &[(&str, bool)] = &[
    ("num_batches_tracked", true),
    ("steps", true),
    ("queue_ptr", false),
    ("queue2_ptr", false),
    ("multinomial.alias", false),
    ("relative_position_index", false),
];

/// PyTorch's 0-d float parameters (CLIP's `logit_scale`), `[1]` in selfsup
/// modules (burn has no 0-d tensors) and 0-d in files.
const TORCH_FLOAT_SCALARS: &[&str] = &["logit_scale"];

fn torch_float_scalar(key: &str) -> bool {
    TORCH_FLOAT_SCALARS.iter().any(|suffix| key == *suffix || key.ends_with(&format!(".{suffix}")))
}

fn torch_buffer(key: &str) -> Option<(&'static str, bool)> {
    TORCH_INT_BUFFERS.iter().find(|(suffix, _)| key == *suffix || key.ends_with(&format!(".{suffix}"))).map(|(s, scalar)| (*s, *scalar))
}

/// Our float counter as PyTorch stores it: int64, 0-d where PyTorch's is.
fn to_torch_buffer(key: &str, data: Tensor) -> Tensor {
    if torch_float_scalar(key) && data.shape.num_elements() == 1 {
        let dtype = data.dtype;
        return Tensor::new(data.convert::<f32>().to_vec::<f32>().expect("data converted to f32 reads as f32"), Vec::<usize>::new())
            .convert_dtype(dtype);
    }
    match torch_buffer(key) {
        Some((_, scalar)) => {
            let dims = data.shape.to_vec();
            let values: Vec<i64> = data
                .convert::<f32>()
                .to_vec::<f32>()
                .expect("data converted to f32 reads as f32")
                .iter()
                .map(|v| v.round() as i64)
                .collect();
            let shape: Vec<usize> = if scalar && values.len() == 1 { vec![] } else { dims };
            Tensor::new(values, shape)
        }
        None => data,
    }
}

struct KeyVisitor<'a> {
    path: Vec<String>,
    types: Vec<String>,
    keymap: &'a KeyMap,
    out: BTreeMap<String, Vec<usize>>,
}

impl KeyVisitor<'_> {
    fn record(&mut self, mut shape: Vec<usize>) {
        if self.types.iter().any(|t| t == NON_PERSISTENT) {
            return;
        }
        let module = self.types.iter().rev().find(|t| t.starts_with("Struct:")).cloned().unwrap_or_default();
        let mut path = self.path.clone();
        let last = path.last().cloned().unwrap_or_default();
        if matches!(module.as_str(), "Struct:LayerNorm" | "Struct:BatchNorm" | "Struct:GroupNorm") {
            if let Some(l) = path.last_mut() {
                match l.as_str() {
                    "gamma" => *l = "weight".into(),
                    "beta" => *l = "bias".into(),
                    _ => {}
                }
            }
        }
        if module == "Struct:Linear" && last == "weight" && shape.len() == 2 {
            shape.swap(0, 1);
        }
        self.out.insert(self.keymap.to_pytorch(&path.join(".")), shape);
    }
}

impl<B: Backend> burn::module::ModuleVisitor<B> for KeyVisitor<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.types.push(container_type.to_string());
        if !container_type.starts_with("Enum:") {
            self.path.push(name.to_string());
        }
    }
    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.types.pop();
        if !container_type.starts_with("Enum:") {
            self.path.pop();
        }
    }
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<burn::tensor::Tensor<B, D>>) {
        self.record(param.lazy_shape().to_vec());
    }
    fn visit_int<const D: usize>(&mut self, param: &burn::module::Param<burn::tensor::Tensor<B, D, burn::tensor::Int>>) {
        self.record(param.lazy_shape().to_vec());
    }
    fn visit_bool<const D: usize>(&mut self, param: &burn::module::Param<burn::tensor::Tensor<B, D, burn::tensor::Bool>>) {
        self.record(param.lazy_shape().to_vec());
    }
}

/// Loads `state` into `module`.
///
/// Keys and shapes are compared in PyTorch naming and layout first; with
/// `strict` any difference is an error carrying the full [`LoadReport`].
/// Without it, the matching tensors load and the report lists the rest.
pub fn load_into<B: Backend, M: ModuleSnapshot<B>>(
    mut module: M,
    state: &StateDict,
    keymap: &KeyMap,
    options: &LoadOptions,
) -> Result<(M, LoadReport), WeightsError> {
    let state = match &options.prefix {
        Some(p) => state.sub(p),
        None => state.clone(),
    };
    let expected = model_keys(&module, keymap);
    let mut report = LoadReport::default();
    let mut snapshots = Vec::new();
    for (key, shape) in &expected {
        if keymap.is_alias(key) {
            match state.tensors.get(key) {
                None => report.missing.push(key.clone()),
                Some(data) if data.shape.to_vec() != *shape => {
                    report.shape_mismatches.push((key.clone(), shape.clone(), data.shape.to_vec()))
                }
                Some(_) => report.loaded.push(key.clone()),
            }
            continue;
        }
        match state.tensors.get(key) {
            None => report.missing.push(key.clone()),
            Some(data) if data.shape.to_vec() != *shape => report.shape_mismatches.push((key.clone(), shape.clone(), data.shape.to_vec())),
            Some(data) => {
                let ours = keymap.to_ours(key);
                let path: Vec<String> = ours.split('.').map(str::to_string).collect();
                let data = if data.dtype == DType::F64 || data.dtype == DType::F16 || data.dtype == DType::BF16 {
                    data.clone().convert_dtype(DType::F32)
                } else if torch_buffer(key).is_some() {
                    // int64 counters become our float counters, 0-d as [1].
                    let shape = if data.shape.is_empty() { vec![1] } else { data.shape.to_vec() };
                    Tensor::new(data.clone().convert::<f32>().to_vec::<f32>().expect("data converted to f32 reads as f32"), shape)
                } else {
                    data.clone()
                };
                // 0-d float parameters become our [1] (after any widening above).
                let data = if torch_float_scalar(key) && data.shape.is_empty() {
                    Tensor::new(data.convert::<f32>().to_vec::<f32>().expect("data converted to f32 reads as f32"), vec![1])
                } else {
                    data
                };
                snapshots.push(TensorSnapshot::from_data(data, path, Vec::new(), ParamId::new()));
                report.loaded.push(key.clone());
            }
        }
    }
    report.unexpected = state.tensors.keys().filter(|k| !expected.contains_key(*k)).cloned().collect();
    if options.strict && !report.is_exact() {
        return Err(WeightsError::Mismatch(report));
    }
    let expected_applied = snapshots.len();
    let result = module.apply(snapshots, None, Some(Box::new(PyTorchToBurnAdapter)), true);
    if let Some(e) = result.errors.first() {
        return Err(WeightsError::Apply { key: format!("{e}"), message: "could not be applied".into() });
    }
    // burn-store lists tensors found through an alternative name (norm
    // `weight` for `gamma`) as unused, so count what was applied instead.
    if result.applied.len() != expected_applied {
        return Err(WeightsError::Apply {
            key: format!("{} of {expected_applied} tensors", expected_applied - result.applied.len().min(expected_applied)),
            message: format!("matched no model tensor (key map out of date?); unmatched: {}", result.unused.join(", ")),
        });
    }
    Ok((module, report))
}
