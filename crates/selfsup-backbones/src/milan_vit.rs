//! Port of `mmselfsup.models.backbones.MILANViT` (mmselfsup 1.0.0): MAE's
//! ViT ([`MaeVit`], same config, keys and initialisation) whose masking
//! keeps the patches CLIP attends to. The kept patches are drawn by
//! `torch.multinomial(importance, L, replacement=False)`: a random order of
//! the patches, sampled without replacement with probabilities proportional
//! to the importance (CLIP's last-layer attention of the cls token to each
//! patch); the first `L·(1 − mask_ratio)` are kept.
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use selfsup_core::{Draws, ModelError};

use crate::mae_vit::{MaeVit, MaeVitConfig};

/// `dict(type='MILANViT', ...)`: MAEViT's arguments and defaults.
pub type MilanVitConfig = MaeVitConfig;

/// MILAN's encoder: an [`MaeVit`] with [`MaeVit::forward_attention_masked`].
pub type MilanVit<B> = MaeVit<B>;

/// The attention-masked encoder's output (`MILANViT.forward`).
#[derive(Debug, Clone)]
pub struct MilanEncoderOutput<B: Backend> {
    /// `[batch, 1 + kept, embed_dims]`, cls token first.
    pub latent: Tensor<B, 3>,
    /// `[batch, L]`: the rank in the sampled order of each patch.
    pub ids_restore: Tensor<B, 2, Int>,
    /// `[batch, kept]`: the kept patches, in sampled order.
    pub ids_keep: Tensor<B, 2, Int>,
    /// `[batch, L − kept]`: the removed patches, in sampled order.
    pub ids_dump: Tensor<B, 2, Int>,
}

/// Host-side index arithmetic of `MILANViT.attention_masking` from the
/// sampled order `ids_shuffle` (`[n, l]`, row-major): returns
/// `(ids_keep [n, len_keep], ids_dump [n, l − len_keep], ids_restore [n, l])`
/// with `len_keep = ⌊l·(1 − mask_ratio)⌋`.
pub fn attention_masking_indices(ids_shuffle: &[i64], n: usize, l: usize, mask_ratio: f64) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
    let len_keep = (l as f64 * (1.0 - mask_ratio)) as usize;
    let mut keep = Vec::with_capacity(n * len_keep);
    let mut dump = Vec::with_capacity(n * (l - len_keep));
    let mut restore = vec![0i64; n * l];
    for row in 0..n {
        let shuffle = &ids_shuffle[row * l..(row + 1) * l];
        for (rank, &patch) in shuffle.iter().enumerate() {
            restore[row * l + patch as usize] = rank as i64;
        }
        keep.extend_from_slice(&shuffle[..len_keep]);
        dump.extend_from_slice(&shuffle[len_keep..]);
    }
    (keep, dump, restore)
}

impl<B: Backend> MaeVit<B> {
    /// MILAN's masked forward (`MILANViT.forward`): patches sampled in
    /// proportion to `importance` are kept. The sampled order is the draw
    /// `"mask_multinomial"` ([`Draws::weighted_permutation`]; replayed, the
    /// reference's `torch.multinomial` output).
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, img_size, img_size]`
    /// - `importance`: `[batch, L]`, non-negative (not normalised)
    pub fn forward_attention_masked(
        &self,
        x: Tensor<B, 4>,
        importance: Tensor<B, 2>,
        draws: &mut Draws,
    ) -> Result<MilanEncoderOutput<B>, ModelError> {
        self.check_input(&x)?;
        let device = x.device();
        let [n, _, _, _] = x.dims();
        let l = self.num_patches();
        let d = self.embed_dims();
        if importance.dims() != [n, l] {
            return Err(ModelError::Shape {
                algorithm: "MILANViT",
                expected: format!("importance [{n}, {l}]"),
                got: importance.dims().to_vec(),
            });
        }
        let pos = self.pos_embed.val();
        let x = self.patch_embed.forward(x) + pos.clone().slice([0..1, 1..l + 1]);

        let weights = importance.detach().into_data().convert::<f32>().to_vec::<f32>().expect("importance as f32");
        let shuffle = draws.weighted_permutation("mask_multinomial", &weights, n);
        let (keep, dump, restore) = attention_masking_indices(&shuffle, n, l, self.mask_ratio());
        let len_keep = keep.len() / n.max(1);
        let ids_keep = Tensor::<B, 2, Int>::from_data(TensorData::new(keep, [n, len_keep]), &device);
        let x = x.gather(1, ids_keep.clone().unsqueeze_dim::<3>(2).expand([n, len_keep, d]));

        let cls = (self.cls_token.val() + pos.slice([0..1, 0..1])).expand([n, 1, d]);
        Ok(MilanEncoderOutput {
            latent: self.encode(Tensor::cat(vec![cls, x], 1)),
            ids_restore: Tensor::from_data(TensorData::new(restore, [n, l]), &device),
            ids_keep,
            ids_dump: Tensor::from_data(TensorData::new(dump, [n, l - len_keep]), &device),
        })
    }
}
