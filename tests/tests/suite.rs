//! The selfsup test suite, one binary for every backend.
//!
//! Run on the default backend with `cargo test -p selfsup-tests`; on every
//! backend with `cargo xtask test-all`.
// Reference values are PyTorch's printed float32s, digits and all.
#![allow(clippy::excessive_precision)]

mod components;
mod configs;
mod data_parallel;
mod eval;
mod new_algorithm;
mod optim;
mod parity_beit;
mod parity_cae;
mod parity_clustering;
mod parity_contrastive;
mod parity_dino;
mod parity_finetune;
mod parity_itpn;
mod parity_mae;
mod parity_milan_eva;
mod parity_mim;
mod parity_spark;
mod parity_tokenizers;
mod preprocessors;
mod reliability;
mod train_cli;
mod weights;
