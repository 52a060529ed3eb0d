//! MMEngine's `AmpOptimWrapper` (`mmengine/optim/optimizer/amp_optim_wrapper.py`):
//! the precision of the forward pass and torch's `GradScaler`, read from
//! the `optim_wrapper` dict.
use burn::tensor::FloatDType;

use super::OptimWrapperConfig;

impl OptimWrapperConfig {
    /// `AmpOptimWrapper`'s precision and loss scaler (`None` for
    /// `OptimWrapper`): `dtype` `"float16"` (the default, as on CUDA) or
    /// `"bfloat16"`, and `loss_scale` `"dynamic"` (the default: torch's
    /// `GradScaler()`), a number (a fixed scale) or a dict of `GradScaler`
    /// arguments.
    ///
    /// # Errors
    /// `(key, message)` for an unknown dtype or loss scale, or either
    /// given to a plain `OptimWrapper`.
    pub fn amp(&self) -> Result<Option<Amp>, (String, String)> {
        if self.kind != "AmpOptimWrapper" {
            if self.dtype.is_some() || self.loss_scale.is_some() {
                return Err(("optim_wrapper.type".into(), "`dtype` and `loss_scale` need type = \"AmpOptimWrapper\"".into()));
            }
            return Ok(None);
        }
        let dtype = match self.dtype.as_deref() {
            None | Some("float16" | "fp16" | "half") => FloatDType::F16,
            Some("bfloat16" | "bf16") => FloatDType::BF16,
            Some(other) => return Err(("optim_wrapper.dtype".into(), format!("unknown dtype `{other}`; known: float16, bfloat16"))),
        };
        let bad = |m: String| ("optim_wrapper.loss_scale".to_string(), m);
        let scaler = match &self.loss_scale {
            None => LossScaler::dynamic(),
            Some(serde_json::Value::String(s)) if s == "dynamic" => LossScaler::dynamic(),
            Some(serde_json::Value::Number(n)) => {
                let v = n.as_f64().filter(|v| *v > 0.0).ok_or_else(|| bad(format!("{n} is not a positive scale")))?;
                LossScaler::fixed(v)
            }
            Some(serde_json::Value::Object(m)) => {
                let mut sc = LossScaler::dynamic();
                for (k, v) in m {
                    let x = v.as_f64().ok_or_else(|| bad(format!("`{k}` must be a number")))?;
                    match k.as_str() {
                        "init_scale" => sc.scale = x,
                        "growth_factor" => sc.growth_factor = x,
                        "backoff_factor" => sc.backoff_factor = x,
                        "growth_interval" => sc.growth_interval = x as usize,
                        "enabled" => {}
                        other => return Err(bad(format!("unknown GradScaler argument `{other}`"))),
                    }
                }
                if !(sc.scale > 0.0
                    && sc.growth_factor >= 1.0
                    && sc.backoff_factor > 0.0
                    && sc.backoff_factor <= 1.0
                    && sc.growth_interval > 0)
                {
                    return Err(bad("needs init_scale > 0, growth_factor ≥ 1, 0 < backoff_factor ≤ 1, growth_interval ≥ 1".into()));
                }
                sc
            }
            Some(other) => return Err(bad(format!("`{other}`: expected \"dynamic\", a number or a dict"))),
        };
        Ok(Some(Amp { dtype, scaler }))
    }
}

/// MMEngine's `AmpOptimWrapper`: the dtype the forward pass's products run
/// in (`selfsup_layers::amp::autocast`) and the loss scaler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Amp {
    /// `float16` or `bfloat16`.
    pub dtype: FloatDType,
    /// Scales the loss before the backward pass.
    pub scaler: LossScaler,
}

/// torch's `GradScaler`: the loss is multiplied by `scale` before the
/// backward pass and the gradients divided by it before the step; a step
/// whose gradients overflowed is skipped and the scale multiplied by
/// `backoff_factor`, and after `growth_interval` good steps in a row it is
/// multiplied by `growth_factor`. A fixed scale (`loss_scale = 512.0`)
/// has both factors 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossScaler {
    /// Current scale.
    pub scale: f64,
    /// Growth after `growth_interval` finite steps (2).
    pub growth_factor: f64,
    /// Shrink after an overflow (0.5).
    pub backoff_factor: f64,
    /// Finite steps between growths (2000).
    pub growth_interval: usize,
    /// Finite steps since the last growth or overflow.
    pub growth_tracker: usize,
}

impl LossScaler {
    /// `GradScaler()`: scale 2¹⁶, ×2 every 2000 good steps, ×0.5 on overflow.
    pub fn dynamic() -> Self {
        Self { scale: 65536.0, growth_factor: 2.0, backoff_factor: 0.5, growth_interval: 2000, growth_tracker: 0 }
    }

    /// A constant scale (MMEngine's numeric `loss_scale`).
    pub fn fixed(scale: f64) -> Self {
        Self { scale, growth_factor: 1.0, backoff_factor: 1.0, growth_interval: 1, growth_tracker: 0 }
    }

    /// `GradScaler.update` after a step that found (`found_inf`) or did not
    /// find non-finite gradients.
    pub fn update(&mut self, found_inf: bool) {
        if found_inf {
            self.scale *= self.backoff_factor;
            self.growth_tracker = 0;
        } else {
            self.growth_tracker += 1;
            if self.growth_tracker == self.growth_interval {
                self.scale *= self.growth_factor;
                self.growth_tracker = 0;
            }
        }
    }
}
