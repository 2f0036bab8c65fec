//! Attention of one new token over the KV cache while sampling: a CPU kernel, forward only.

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{is_fast, masked_softmax, slice, PIECE};

/// softmax(scale · q kᵀ + mask) v for one query per row while sampling, forward only: q
/// (B, H, 1, d_h); k and v (B, H, L, d_h), which may be views of a larger cache; mask
/// (B, 1, 1, L). On the CPU this is one pass over the cache instead of B·H tiny matrix
/// products; elsewhere, and for a non-f32 tensor, it is the composite attention.
pub fn decode_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    scale: f64,
) -> Result<Tensor> {
    let (b, h, t, dh) = q.dims4()?;
    let l = k.dim(2)?;
    if !(is_fast(q) && t == 1 && k.stride()[3] == 1 && v.stride()[3] == 1) {
        let weights = masked_softmax(&q.matmul(&k.t()?)?, mask, scale)?;
        return weights.matmul(v);
    }
    if mask.dims4()? != (b, 1, 1, l) || v.dims4()? != (b, h, l, dh) {
        bail!(
            "decode attention: mask {:?}, values {:?}",
            mask.shape(),
            v.shape()
        )
    }
    let mask = mask.flatten_all()?.to_vec1::<f32>()?;
    q.contiguous()?.apply_op3_no_bwd(
        k,
        v,
        &DecodeAttention {
            mask,
            scale: scale as f32,
        },
    )
}

/// a · b, summed in eight lanes so that the compiler can use vector instructions.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (xs, ys) = (a.chunks_exact(8), b.chunks_exact(8));
    let rest: f32 = xs
        .remainder()
        .iter()
        .zip(ys.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in xs.zip(ys) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + rest
}

struct DecodeAttention {
    mask: Vec<f32>,
    scale: f32,
}

impl CustomOp3 for DecodeAttention {
    fn name(&self) -> &'static str {
        "fused-decode-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let q = slice(s1, l1)?;
        let (k, v) = (s2.as_slice::<f32>()?, s3.as_slice::<f32>()?);
        let (h, l, dh) = (l1.dims()[1], l2.dims()[2], l1.dims()[3]);
        // Where row j of head (b, h) starts in a strided (B, H, L, d_h) cache view.
        let at = |lay: &Layout, bh: usize, j: usize| {
            let s = lay.stride();
            lay.start_offset() + (bh / h) * s[0] + (bh % h) * s[1] + j * s[2]
        };
        let mut y = vec![0f32; q.len()];
        let heads_per_piece = (PIECE / (l * dh).max(1)).max(1);
        let run = |first: usize, out: &mut [f32]| {
            let mut w = vec![0f32; l];
            for (i, o) in out.chunks_mut(dh).enumerate() {
                let bh = first + i;
                let (qr, m) = (&q[bh * dh..(bh + 1) * dh], &self.mask[(bh / h) * l..]);
                let mut max = f32::NEG_INFINITY;
                for (j, wj) in w.iter_mut().enumerate() {
                    let kr = &k[at(l2, bh, j)..at(l2, bh, j) + dh];
                    *wj = self.scale * dot(qr, kr) + m[j];
                    max = max.max(*wj);
                }
                let mut total = 0f32;
                for wj in w.iter_mut() {
                    *wj = (*wj - max).exp();
                    total += *wj;
                }
                for (j, wj) in w.iter().enumerate() {
                    let vr = &v[at(l3, bh, j)..at(l3, bh, j) + dh];
                    let p = wj / total;
                    o.iter_mut().zip(vr).for_each(|(a, b)| *a += p * b);
                }
            }
        };
        let per = heads_per_piece * dh;
        if y.len() > per {
            y.par_chunks_mut(per)
                .enumerate()
                .for_each(|(p, out)| run(p * heads_per_piece, out));
        } else {
            run(0, &mut y);
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }
}
