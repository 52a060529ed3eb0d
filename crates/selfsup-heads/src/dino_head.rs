//! Port of `DINOHead` (mmpretrain 1.2.0, `projects/dino/models/head/dino_head.py`):
//! the cross-entropy between the teacher's centred, sharpened softmax over
//! the two global crops and the student's log-softmax over every other
//! crop, and the centre buffer.
//!
//! The centre's update (`update_center`, an EMA of the batch mean of the
//! teacher's raw output, summed over replicas) runs in mmpretrain inside
//! the forward pass, after the loss used the old centre; here the loss
//! returns the batch sum ([`DinoHeadOutput::center_sum`]) and the algorithm
//! applies [`DinoHead::update_center`] after the optimiser step, which
//! gives every forward the same centre.
use burn::{
    module::{Module, Param},
    tensor::{activation::log_softmax, backend::Backend, Tensor},
};
use selfsup_layers::{
    dist::{self, ReduceOperation},
    fused::softmax_last_dim,
    init::fixed,
};
use serde::{Deserialize, Serialize};

/// `dict(type='DINOHead', out_channels, num_crops, student_temp, center_momentum)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DinoHeadConfig {
    /// Width of the neck's output (the centre's length).
    pub out_channels: usize,
    /// Crops per image: 2 global plus the local ones.
    pub num_crops: usize,
    /// Temperature of the student's softmax.
    pub student_temp: f64,
    /// Momentum of the centre's EMA.
    pub center_momentum: f64,
}

impl DinoHeadConfig {
    /// Checks the config; `(key, message)` for the first bad field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.out_channels == 0 {
            return Err(("out_channels", "must be positive".into()));
        }
        if self.num_crops < 2 {
            return Err(("num_crops", format!("DINO needs the two global crops at least, got {}", self.num_crops)));
        }
        if self.student_temp <= 0.0 {
            return Err(("student_temp", "must be positive".into()));
        }
        if !(0.0..=1.0).contains(&self.center_momentum) {
            return Err(("center_momentum", "must be in [0, 1]".into()));
        }
        Ok(())
    }

    /// Builds the head with a zero centre. The teacher temperature starts at
    /// 0, as in mmpretrain, until `DINOTeacherTempWarmupHook` sets it.
    pub fn init<B: Backend>(&self, device: &B::Device) -> DinoHead<B> {
        DinoHead {
            center: fixed(Tensor::zeros([1, self.out_channels], device)),
            num_crops: self.num_crops,
            student_temp: self.student_temp,
            center_momentum: self.center_momentum,
            teacher_temp: 0.0,
        }
    }
}

/// DINO's loss head. Key `center` `[1, out_channels]` (a buffer).
#[derive(Module, Debug)]
pub struct DinoHead<B: Backend> {
    /// The running centre of the teacher's output.
    pub center: Param<Tensor<B, 2>>,
    #[module(skip)]
    num_crops: usize,
    #[module(skip)]
    student_temp: f64,
    #[module(skip)]
    center_momentum: f64,
    #[module(skip)]
    teacher_temp: f64,
}

/// What [`DinoHead::forward`] returns.
#[derive(Debug, Clone)]
pub struct DinoHeadOutput<B: Backend> {
    /// The loss, `[1]`.
    pub loss: Tensor<B, 1>,
    /// Mean entropy of the teacher's centred, sharpened distributions, `[1]`
    /// (log only: near 0 is a collapse onto one dimension, near
    /// `ln(out_channels)` a collapse onto the uniform distribution).
    pub teacher_entropy: Tensor<B, 1>,
    /// The sum over this replica's rows of the teacher's raw output,
    /// `[1, out_channels]`, and the number of rows, for the centre update.
    pub center_sum: (Tensor<B, 2>, usize),
}

impl<B: Backend> DinoHead<B> {
    /// The teacher temperature in use.
    pub fn teacher_temp(&self) -> f64 {
        self.teacher_temp
    }

    /// Sets the teacher temperature (`DINOTeacherTempWarmupHook`, each epoch).
    pub fn set_teacher_temp(&mut self, t: f64) {
        self.teacher_temp = t;
    }

    /// Crops per image.
    pub fn num_crops(&self) -> usize {
        self.num_crops
    }

    /// The loss over `student` (`[num_crops · n, out]`, crop-major: the two
    /// global crops first) against `teacher` (`[2 · n, out]`), with the
    /// current centre. The teacher side carries no gradient.
    pub fn forward(&self, student: Tensor<B, 2>, teacher: Tensor<B, 2>) -> DinoHeadOutput<B> {
        let teacher = teacher.detach();
        let [rows, _] = teacher.dims();
        let n = rows / 2;
        let center_sum = (teacher.clone().sum_dim(0), rows);
        let logits = (teacher - self.center.val()).div_scalar(self.teacher_temp);
        let t_log = log_softmax(logits.clone(), 1);
        let t = softmax_last_dim(logits);
        let teacher_entropy = (t.clone() * t_log).sum_dim(1).mean().neg();
        let s = log_softmax(student.div_scalar(self.student_temp), 1);
        let crop = |x: &Tensor<B, 2>, i: usize| x.clone().slice([i * n..(i + 1) * n]);
        // Σ over the crops j ≠ i of −t_i · log p_j, averaged over the batch:
        // every student crop at once, minus the crop the teacher saw.
        let all: Tensor<B, 2> = (0..self.num_crops).map(|j| crop(&s, j)).reduce(|a, b| a + b).expect("num_crops >= 2");
        let mut total = None;
        for i in 0..2 {
            let others = if i < self.num_crops { all.clone() - crop(&s, i) } else { all.clone() };
            let term = (crop(&t, i) * others).sum_dim(1).mean().neg();
            total = Some(match total {
                None => term,
                Some(acc) => acc + term,
            });
        }
        let terms = 2 * self.num_crops - 2;
        let loss = total.expect("two teacher crops").div_scalar(terms as f64);
        DinoHeadOutput { loss, teacher_entropy, center_sum }
    }

    /// `center ← m · center + (1 − m) · mean`, the mean over every
    /// replica's teacher rows (`all_reduce` of the sums).
    pub fn update_center(mut self, (sum, rows): (Tensor<B, 2>, usize)) -> Self {
        let sum = dist::all_reduce(sum.detach(), ReduceOperation::Sum);
        let mean = sum.div_scalar((rows * dist::world_size()) as f64);
        let m = self.center_momentum;
        let center = self.center.val().detach().mul_scalar(m) + mean.mul_scalar(1.0 - m);
        self.center = Param::initialized(self.center.id, center.set_require_grad(false));
        self
    }
}
