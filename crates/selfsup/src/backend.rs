//! The compiled backends, chosen by name at run time.
//!
//! Each backend is a Cargo feature; only compiled ones can be chosen.
//! [`with_backend!`](crate::with_backend) runs a generic body with the
//! autodiff backend type `B` and its device.

/// The backends compiled into this build, in order of preference.
pub fn available() -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg!(feature = "flex") {
        v.push("flex");
    }
    if cfg!(feature = "tch") {
        v.push("tch");
    }
    if cfg!(feature = "wgpu") {
        v.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        v.push("cuda");
    }
    v
}

/// The pure-Rust CPU backend.
#[cfg(feature = "flex")]
pub type Flex = burn_flex::Flex;
/// libtorch.
#[cfg(feature = "tch")]
pub type Tch = burn_tch::LibTorch<f32>;
/// wgpu.
#[cfg(feature = "wgpu")]
pub type Wgpu = burn_wgpu::Wgpu;
/// CUDA (CubeCL).
#[cfg(feature = "cuda")]
pub type Cuda = burn_cuda::Cuda;

/// Autodiff over a backend.
pub type Autodiff<B> = burn_autodiff::Autodiff<B>;

/// The flex device.
#[cfg(feature = "flex")]
pub fn flex_device(_spec: &str) -> Result<burn_flex::FlexDevice, String> {
    Ok(burn_flex::FlexDevice)
}

/// A libtorch device: `cpu` or `cuda[:N]`.
#[cfg(feature = "tch")]
pub fn tch_device(spec: &str) -> Result<burn_tch::LibTorchDevice, String> {
    match spec {
        "" | "cpu" => Ok(burn_tch::LibTorchDevice::Cpu),
        s if s.starts_with("cuda") => {
            let idx = s.strip_prefix("cuda").and_then(|r| r.strip_prefix(':')).unwrap_or("0");
            idx.parse().map(burn_tch::LibTorchDevice::Cuda).map_err(|_| format!("bad device `{s}`"))
        }
        s => Err(format!("unknown tch device `{s}`; use cpu or cuda:N")),
    }
}

/// A wgpu device: `discrete:N` or `integrated:N` for that adapter, else
/// the default adapter.
#[cfg(feature = "wgpu")]
pub fn wgpu_device(spec: &str) -> Result<burn_wgpu::WgpuDevice, String> {
    let index = |rest: &str| rest.parse::<usize>().map_err(|_| format!("bad device `{spec}`"));
    if let Some(rest) = spec.strip_prefix("discrete:") {
        return index(rest).map(burn_wgpu::WgpuDevice::DiscreteGpu);
    }
    if let Some(rest) = spec.strip_prefix("integrated:") {
        return index(rest).map(burn_wgpu::WgpuDevice::IntegratedGpu);
    }
    Ok(burn_wgpu::WgpuDevice::default())
}

/// A CUDA device: `cuda[:N]`.
#[cfg(feature = "cuda")]
pub fn cuda_device(spec: &str) -> Result<burn_cuda::CudaDevice, String> {
    let idx = spec.strip_prefix("cuda").and_then(|r| r.strip_prefix(':')).unwrap_or("0");
    idx.parse().map(|index| burn_cuda::CudaDevice { index }).map_err(|_| format!("bad device `{spec}`"))
}

/// Runs `$body` with `$B` bound to the autodiff backend called `$name`
/// (`"flex"`, `"tch"`, `"wgpu"`, `"cuda"`) and `$device` to its device
/// parsed from `$spec`. Evaluates to `Result<T, String>`.
///
/// With `|B, [devices]|`, `$spec` is a comma-separated list
/// (`cuda:0,cuda:1`) and `devices` a `Vec` of devices.
#[macro_export]
macro_rules! with_backend {
    ($name:expr, $spec:expr, |$B:ident, [$devices:ident]| $body:expr) => {
        $crate::with_backend!(@run $name, $spec, parse_list, |$B, $devices| $body)
    };
    ($name:expr, $spec:expr, |$B:ident, $device:ident| $body:expr) => {
        $crate::with_backend!(@run $name, $spec, parse_one, |$B, $device| $body)
    };
    (@run $name:expr, $spec:expr, $parse:ident, |$B:ident, $device:ident| $body:expr) => {{
        let name: &str = $name;
        let spec: &str = $spec;
        let mut result: Option<Result<_, String>> = None;
        #[cfg(feature = "flex")]
        if name == "flex" {
            type $B = $crate::backend::Autodiff<$crate::backend::Flex>;
            result = Some($crate::backend::$parse(spec, $crate::backend::flex_device).map(|$device| $body));
        }
        #[cfg(feature = "tch")]
        if name == "tch" {
            type $B = $crate::backend::Autodiff<$crate::backend::Tch>;
            result = Some($crate::backend::$parse(spec, $crate::backend::tch_device).map(|$device| $body));
        }
        #[cfg(feature = "wgpu")]
        if name == "wgpu" {
            type $B = $crate::backend::Autodiff<$crate::backend::Wgpu>;
            result = Some($crate::backend::$parse(spec, $crate::backend::wgpu_device).map(|$device| $body));
        }
        #[cfg(feature = "cuda")]
        if name == "cuda" {
            type $B = $crate::backend::Autodiff<$crate::backend::Cuda>;
            result = Some($crate::backend::$parse(spec, $crate::backend::cuda_device).map(|$device| $body));
        }
        result.unwrap_or_else(|| {
            Err(format!(
                "backend `{}` is not compiled in; this build has: {} (enable it with `--features {}`)",
                name,
                $crate::backend::available().join(", "),
                name
            ))
        })
    }};
}

/// One device from its spec ([`with_backend!`]'s single form).
pub fn parse_one<D>(spec: &str, parse: fn(&str) -> Result<D, String>) -> Result<D, String> {
    parse(spec)
}

/// The devices of a comma-separated spec, `cuda:0,cuda:1`.
pub fn parse_list<D>(spec: &str, parse: fn(&str) -> Result<D, String>) -> Result<Vec<D>, String> {
    spec.split(',').map(|s| parse(s.trim())).collect()
}
