//! Frozen modules: the tokenizers and teachers are never trained.
use burn::{
    module::{Module, ModuleMapper, Param},
    tensor::{backend::Backend, Tensor},
};

struct Freeze;

impl<B: Backend> ModuleMapper<B> for Freeze {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        param.set_require_grad(false)
    }
}

/// Every float parameter of `module` without gradient (`require_grad =
/// false`), so the optimiser leaves them out. Lazily initialised
/// parameters stay lazy: listing the keys of a full-size tokenizer draws
/// nothing. Loading a checkpoint keeps the setting.
pub fn freeze<B: Backend, M: Module<B>>(module: M) -> M {
    module.map(&mut Freeze)
}
