//! MMEngine's parameter schedulers (`param_scheduler` in a config), in the
//! chainable form MMEngine computes, per parameter group: the learning-rate
//! schedulers and mmpretrain's `CosineAnnealingWeightDecay` (SparK's weight
//! decay rising from 0.04 to 0.2).
use serde::{Deserialize, Serialize};

/// `LinearLR`: a linear factor ramp, usually the warm-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinearLrConfig {
    /// Factor at the first step.
    pub start_factor: f64,
    /// Factor at the last step of the window.
    pub end_factor: f64,
    /// First step (inclusive).
    pub begin: f64,
    /// Last step (exclusive).
    pub end: Option<f64>,
    /// Whether `begin`/`end` count epochs.
    pub by_epoch: bool,
    /// Convert an epoch-based window to iterations and step every iteration.
    pub convert_to_iter_based: bool,
    /// Accepted (printing).
    pub verbose: bool,
}

impl Default for LinearLrConfig {
    fn default() -> Self {
        Self {
            start_factor: 1.0 / 3.0,
            end_factor: 1.0,
            begin: 0.0,
            end: None,
            by_epoch: true,
            convert_to_iter_based: false,
            verbose: false,
        }
    }
}

/// `CosineAnnealingLR`: cosine annealing to `eta_min` (or `eta_min_ratio × base`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CosineAnnealingLrConfig {
    /// Period, in the window's unit; defaults to `end − begin`.
    #[serde(rename = "T_max")]
    pub t_max: Option<f64>,
    /// Floor.
    pub eta_min: Option<f64>,
    /// Floor as a ratio of the base value.
    pub eta_min_ratio: Option<f64>,
    /// First step (inclusive).
    pub begin: f64,
    /// Last step (exclusive).
    pub end: Option<f64>,
    /// Whether `begin`/`end` count epochs.
    pub by_epoch: bool,
    /// Convert an epoch-based window to iterations and step every iteration.
    pub convert_to_iter_based: bool,
    /// Accepted (printing).
    pub verbose: bool,
}

impl Default for CosineAnnealingLrConfig {
    fn default() -> Self {
        Self {
            t_max: None,
            eta_min: None,
            eta_min_ratio: None,
            begin: 0.0,
            end: None,
            by_epoch: true,
            convert_to_iter_based: false,
            verbose: false,
        }
    }
}

/// `MultiStepLR`: multiply by `gamma` at each milestone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultiStepLrConfig {
    /// Steps (in the window's unit) at which to decay.
    pub milestones: Vec<f64>,
    /// Decay factor.
    pub gamma: f64,
    /// First step (inclusive).
    pub begin: f64,
    /// Last step (exclusive).
    pub end: Option<f64>,
    /// Whether `begin`/`end` count epochs.
    pub by_epoch: bool,
    /// Convert an epoch-based window to iterations and step every iteration.
    pub convert_to_iter_based: bool,
    /// Accepted (printing).
    pub verbose: bool,
}

impl Default for MultiStepLrConfig {
    fn default() -> Self {
        Self { milestones: vec![], gamma: 0.1, begin: 0.0, end: None, by_epoch: true, convert_to_iter_based: false, verbose: false }
    }
}

selfsup_config::registry! {
    /// One entry of `param_scheduler`: MMEngine's names and defaults.
    #[derive(Debug, Clone, PartialEq)]
    pub enum SchedulerConfig {
        /// Linear ramp.
        "LinearLR" => LinearLr(LinearLrConfig),
        /// Cosine annealing.
        "CosineAnnealingLR" => CosineAnnealingLr(CosineAnnealingLrConfig),
        /// Step decay.
        "MultiStepLR" => MultiStepLr(MultiStepLrConfig),
        /// mmpretrain's cosine annealing of the weight decay (groups
        /// without weight decay keep none).
        "CosineAnnealingWeightDecay" => CosineAnnealingWeightDecay(CosineAnnealingLrConfig),
    }
}

/// What a scheduler moves: MMEngine's `param_name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduled {
    /// `lr`.
    Lr = 0,
    /// `weight_decay`.
    WeightDecay = 1,
}

/// The fields every MMEngine scheduler shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// First step (inclusive).
    pub begin: f64,
    /// Last step (exclusive); unbounded when absent.
    pub end: Option<f64>,
    /// Whether `begin`/`end` count epochs.
    pub by_epoch: bool,
    /// Convert an epoch-based window to iterations.
    pub convert_to_iter_based: bool,
}

impl SchedulerConfig {
    fn window(&self) -> Window {
        match self {
            SchedulerConfig::LinearLr(c) => {
                Window { begin: c.begin, end: c.end, by_epoch: c.by_epoch, convert_to_iter_based: c.convert_to_iter_based }
            }
            SchedulerConfig::CosineAnnealingLr(c) | SchedulerConfig::CosineAnnealingWeightDecay(c) => {
                Window { begin: c.begin, end: c.end, by_epoch: c.by_epoch, convert_to_iter_based: c.convert_to_iter_based }
            }
            SchedulerConfig::MultiStepLr(c) => {
                Window { begin: c.begin, end: c.end, by_epoch: c.by_epoch, convert_to_iter_based: c.convert_to_iter_based }
            }
        }
    }

    /// The optimiser value this scheduler moves.
    pub fn scheduled(&self) -> Scheduled {
        match self {
            SchedulerConfig::CosineAnnealingWeightDecay(_) => Scheduled::WeightDecay,
            _ => Scheduled::Lr,
        }
    }

    /// Checks the fields MMEngine asserts on.
    pub fn validate(&self) -> Result<(), String> {
        let w = self.window();
        if w.end.is_some_and(|e| e <= w.begin) {
            return Err(format!("end ({}) must be larger than begin ({})", w.end.unwrap_or_default(), w.begin));
        }
        if w.convert_to_iter_based && !w.by_epoch {
            return Err("convert_to_iter_based needs by_epoch = true".into());
        }
        match self {
            SchedulerConfig::LinearLr(c) => {
                if !(0.0..=1.0).contains(&c.start_factor) {
                    return Err(format!("start_factor must be in [0, 1], got {}", c.start_factor));
                }
                if !(0.0..=1.0).contains(&c.end_factor) {
                    return Err(format!("end_factor must be in [0, 1], got {}", c.end_factor));
                }
                if w.end.is_none() {
                    return Err("LinearLR needs an `end`".into());
                }
            }
            SchedulerConfig::CosineAnnealingLr(c) | SchedulerConfig::CosineAnnealingWeightDecay(c) => {
                if c.eta_min.is_some() && c.eta_min_ratio.is_some() {
                    return Err("give either eta_min or eta_min_ratio, not both".into());
                }
                if c.t_max.is_none() && w.end.is_none() {
                    return Err(format!("{} needs T_max or an `end`", self.type_name()));
                }
            }
            SchedulerConfig::MultiStepLr(_) => {}
        }
        Ok(())
    }
}

/// The unit a built scheduler steps in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepUnit {
    /// Once per iteration.
    Iter,
    /// Once per epoch.
    Epoch,
}

#[derive(Debug, Clone)]
enum Kind {
    Linear {
        start: f64,
        end: f64,
        total_iters: f64,
    },
    /// `keep_zero`: a group whose base value is 0 stays 0 (the weight-decay form).
    Cosine {
        t_max: f64,
        eta_min: Option<f64>,
        eta_min_ratio: Option<f64>,
        keep_zero: bool,
    },
    MultiStep {
        milestones: Vec<i64>,
        gamma: f64,
    },
}

/// One scheduler, built for a run: MMEngine's `_global_step`/`last_step`
/// bookkeeping in integer steps.
#[derive(Debug, Clone)]
struct Built {
    kind: Kind,
    scheduled: Scheduled,
    begin: i64,
    end: i64,
    unit: StepUnit,
    global_step: i64,
    last_step: i64,
}

/// The run's schedule of learning rates and weight decays over parameter
/// groups: every lr group starts at its own base lr (`lr × lr_mult`), every
/// weight-decay group at its own base (`weight_decay × decay_mult`), and
/// each scheduler updates every group of its value the way MMEngine's
/// chainable `_get_value` does.
#[derive(Debug, Clone)]
pub struct Schedule {
    schedulers: Vec<Built>,
    /// Base and current values, indexed by [`Scheduled`].
    base: [Vec<f64>; 2],
    values: [Vec<f64>; 2],
}

impl Schedule {
    /// Builds the schedulers of a config for lr groups with base lrs
    /// `base_lrs` and weight-decay groups with base values `base_wds`,
    /// given the iterations per epoch (for `convert_to_iter_based`), and
    /// applies their step 0, as MMEngine's constructors do.
    pub fn new(configs: &[SchedulerConfig], base_lrs: Vec<f64>, base_wds: Vec<f64>, epoch_length: usize) -> Result<Self, String> {
        let mut schedulers = Vec::new();
        let e = epoch_length as f64;
        for (i, c) in configs.iter().enumerate() {
            c.validate().map_err(|m| format!("param_scheduler.{i}: {m}"))?;
            let w = c.window();
            let convert = w.by_epoch && w.convert_to_iter_based;
            let scale = if convert { e } else { 1.0 };
            let unit = if w.by_epoch && !convert { StepUnit::Epoch } else { StepUnit::Iter };
            let begin = (w.begin * scale) as i64;
            let end = w.end.map(|v| (v * scale) as i64).unwrap_or(i64::MAX);
            let scheduled = c.scheduled();
            let kind = match c {
                SchedulerConfig::LinearLr(c) => {
                    Kind::Linear { start: c.start_factor, end: c.end_factor, total_iters: (end - begin - 1) as f64 }
                }
                SchedulerConfig::CosineAnnealingLr(c) | SchedulerConfig::CosineAnnealingWeightDecay(c) => Kind::Cosine {
                    t_max: c.t_max.map(|t| t * scale).unwrap_or((end - begin) as f64),
                    eta_min: if c.eta_min.is_none() && c.eta_min_ratio.is_none() { Some(0.0) } else { c.eta_min },
                    eta_min_ratio: c.eta_min_ratio,
                    keep_zero: scheduled == Scheduled::WeightDecay,
                },
                SchedulerConfig::MultiStepLr(c) => {
                    Kind::MultiStep { milestones: c.milestones.iter().map(|m| (m * scale) as i64).collect(), gamma: c.gamma }
                }
            };
            schedulers.push(Built { kind, scheduled, begin, end, unit, global_step: -1, last_step: -1 });
        }
        let mut this = Self { schedulers, values: [base_lrs.clone(), base_wds.clone()], base: [base_lrs, base_wds] };
        for i in 0..this.schedulers.len() {
            this.step_one(i);
        }
        Ok(this)
    }

    /// Current lr of every lr group.
    pub fn lrs(&self) -> &[f64] {
        &self.values[Scheduled::Lr as usize]
    }

    /// Current weight decay of every weight-decay group.
    pub fn weight_decays(&self) -> &[f64] {
        &self.values[Scheduled::WeightDecay as usize]
    }

    fn step_one(&mut self, i: usize) {
        let s = &mut self.schedulers[i];
        s.global_step += 1;
        if !(s.begin <= s.global_step && s.global_step < s.end) {
            return;
        }
        s.last_step += 1;
        let t = s.last_step as f64;
        let which = s.scheduled as usize;
        for (lr, base) in self.values[which].iter_mut().zip(&self.base[which]) {
            *lr = match &s.kind {
                Kind::Linear { start, end, total_iters } => {
                    if s.last_step == 0 {
                        *lr * start
                    } else {
                        *lr * (1.0 + (end - start) / (total_iters * start + (t - 1.0) * (end - start)))
                    }
                }
                Kind::Cosine { t_max, eta_min, eta_min_ratio, keep_zero } => {
                    let eta = match eta_min_ratio {
                        Some(r) => base * r,
                        None => eta_min.unwrap_or(0.0),
                    };
                    let pi = std::f64::consts::PI;
                    if s.last_step == 0 {
                        *lr
                    } else if *keep_zero && *base == 0.0 {
                        0.0
                    } else if ((t - 1.0 - t_max) % (2.0 * t_max)) == 0.0 {
                        *lr + (base - eta) * (1.0 - (pi / t_max).cos()) / 2.0
                    } else {
                        (1.0 + (pi * t / t_max).cos()) / (1.0 + (pi * (t - 1.0) / t_max).cos()) * (*lr - eta) + eta
                    }
                }
                Kind::MultiStep { milestones, gamma } => {
                    let hits = milestones.iter().filter(|m| **m == s.last_step).count();
                    *lr * gamma.powi(hits as i32)
                }
            };
        }
    }

    /// Steps every scheduler of `unit` once: call with `Iter` after each
    /// iteration and with `Epoch` after each epoch, as MMEngine's
    /// `ParamSchedulerHook` does.
    pub fn step(&mut self, unit: StepUnit) {
        for i in 0..self.schedulers.len() {
            if self.schedulers[i].unit == unit {
                self.step_one(i);
            }
        }
    }

    /// Replays the schedule to the state after `iters` iterations and
    /// `epochs` finished epochs (for resuming).
    pub fn fast_forward(&mut self, iters: usize, epochs: usize) {
        for _ in 0..iters {
            self.step(StepUnit::Iter);
        }
        for _ in 0..epochs {
            self.step(StepUnit::Epoch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linear(start: f64, begin: f64, end: f64) -> SchedulerConfig {
        SchedulerConfig::LinearLr(LinearLrConfig {
            start_factor: start,
            begin,
            end: Some(end),
            convert_to_iter_based: true,
            ..Default::default()
        })
    }

    #[test]
    fn warmup_then_cosine_matches_mmengine_closed_form() {
        let cfgs = vec![
            linear(1e-4, 0.0, 2.0),
            SchedulerConfig::CosineAnnealingLr(CosineAnnealingLrConfig {
                t_max: Some(8.0),
                begin: 2.0,
                end: Some(10.0),
                convert_to_iter_based: true,
                ..Default::default()
            }),
        ];
        let mut s = Schedule::new(&cfgs, vec![1.0], vec![], 5).unwrap();
        let mut lrs = vec![s.lrs()[0]];
        for _ in 0..49 {
            s.step(StepUnit::Iter);
            lrs.push(s.lrs()[0]);
        }
        // Linear ramp over 10 iterations reaching 1.0 at its last step (9).
        assert!((lrs[0] - 1e-4).abs() < 1e-12);
        assert!((lrs[9] - 1.0).abs() < 1e-9, "{}", lrs[9]);
        // Cosine over 40 iterations from 1.0.
        for (i, lr) in lrs.iter().enumerate().skip(10) {
            let t = (i - 10) as f64;
            let want = 0.5 * (1.0 + (std::f64::consts::PI * t / 40.0).cos());
            assert!((lr - want).abs() < 1e-9, "iter {i}: {lr} vs {want}");
        }
    }

    #[test]
    fn multistep_and_groups() {
        let cfgs = vec![SchedulerConfig::MultiStepLr(MultiStepLrConfig { milestones: vec![2.0, 4.0], ..Default::default() })];
        let mut s = Schedule::new(&cfgs, vec![1.0, 0.5], vec![], 3).unwrap();
        let mut seen = vec![];
        for _ in 0..5 {
            seen.push(s.lrs().to_vec());
            s.step(StepUnit::Iter); // ignored: epoch-based
            s.step(StepUnit::Epoch);
        }
        assert_eq!(seen[1], vec![1.0, 0.5]);
        assert!((seen[2][0] - 0.1).abs() < 1e-12 && (seen[2][1] - 0.05).abs() < 1e-12);
        assert!((seen[4][0] - 0.01).abs() < 1e-12);
    }

    #[test]
    fn invalid_window_is_rejected() {
        let c = linear(0.1, 3.0, 2.0);
        assert!(Schedule::new(&[c], vec![1.0], vec![], 1).unwrap_err().contains("param_scheduler.0"));
    }
}
