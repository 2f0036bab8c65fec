//! CPU kernels, each with a hand-written backward pass, for the GPT's elementwise and
//! row-wise operations: GELU, layer normalisation and the masked softmax of attention.
//!
//! Written as plain tensor ops, each of these is a chain of small passes over memory (GELU's
//! gradient alone takes about ten), and on a two-core laptop those passes, not the matrix
//! products, dominated a GRPO step. Here each is one pass forward and one backward. The
//! composite versions stay the definition: every function below falls back to them on other
//! devices and dtypes, and the tests check the kernels against them, values and gradients.

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, D,
};
use rayon::prelude::*;

mod decode;
pub use decode::decode_attention;

/// √(2/π), the constant of GELU's tanh approximation.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The cubic coefficient of GELU's tanh approximation.
const GELU_CUBIC: f32 = 0.044_715;
/// Work split into pieces of this many elements (rows are never split).
const PIECE: usize = 1 << 14;

static ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Switches the fused kernels on (the default) or off for the whole process. Off, every
/// function here computes its composite definition: for checking a whole model against the
/// plain tensor ops, and for measuring what the kernels buy.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether the fused kernels are on (see [`set_enabled`]).
pub fn enabled() -> bool {
    ENABLED.load(std::sync::atomic::Ordering::Relaxed)
}

fn is_fast(x: &Tensor) -> bool {
    enabled() && x.device().is_cpu() && x.dtype() == DType::F32
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let all = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&all[a..b]),
        None => bail!("fused kernel: input is not contiguous"),
    }
}

/// Fills `out` row by row (`width` elements each) with `f(row index, row)`, on several
/// threads when there is enough work to pay for waking them.
fn rows_mut(out: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    let per = (PIECE / width.max(1)).max(1) * width.max(1);
    if out.len() > per {
        out.par_chunks_mut(per).enumerate().for_each(|(p, piece)| {
            for (i, row) in piece.chunks_mut(width).enumerate() {
                f(p * (per / width) + i, row);
            }
        });
    } else {
        for (i, row) in out.chunks_mut(width).enumerate() {
            f(i, row);
        }
    }
}

// ---------------------------------------------------------------------------------------
// GELU

/// GELU, tanh approximation: ½x(1 + tanh(u)) with u = √(2/π)(x + 0.044715x³), the same
/// function as [`Tensor::gelu`]. Uses ½(1 + tanh u) = σ(2u).
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if is_fast(x) {
        x.contiguous()?.apply_op1(Gelu)
    } else {
        x.gelu()
    }
}

/// σ(2u) and d(2u)/dx at x.
#[inline]
fn gelu_gate(x: f32) -> (f32, f32) {
    let x2 = x * x;
    let two_u = 2.0 * SQRT_2_OVER_PI * x * (1.0 + GELU_CUBIC * x2);
    let s = 1.0 / (1.0 + (-two_u).exp());
    (s, 2.0 * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * x2))
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "fused-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let mut y = vec![0f32; x.len()];
        rows_mut(&mut y, PIECE, |i, out| {
            for (o, &v) in out.iter_mut().zip(&x[i * PIECE..]) {
                *o = v * gelu_gate(v).0;
            }
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            arg.contiguous()?
                .apply_op2_no_bwd(&grad.contiguous()?, &GeluGrad)?,
        ))
    }
}

/// g · GELU'(x) = g · (σ + x σ(1 − σ) d(2u)/dx).
struct GeluGrad;

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "fused-gelu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, g) = (slice(s1, l1)?, slice(s2, l2)?);
        let mut dx = vec![0f32; x.len()];
        rows_mut(&mut dx, PIECE, |i, out| {
            let at = i * PIECE;
            for ((o, &v), &gv) in out.iter_mut().zip(&x[at..]).zip(&g[at..]) {
                let (s, d) = gelu_gate(v);
                *o = gv * (s + v * s * (1.0 - s) * d);
            }
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

// ---------------------------------------------------------------------------------------
// Layer normalisation

/// Layer normalisation over the last dimension: (x − mean)/√(var + ε) · weight + bias.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<Tensor> {
    if is_fast(x) {
        x.contiguous()?.apply_op3(weight, bias, LayerNorm { eps })
    } else {
        layer_norm_composite(x, weight, bias, eps)
    }
}

/// The same normalisation from plain tensor ops (the definition).
pub fn layer_norm_composite(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f32,
) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    xc.broadcast_div(&(var + eps as f64)?.sqrt()?)?
        .broadcast_mul(weight)?
        .broadcast_add(bias)
}

/// Mean and 1/√(var + ε) of a row.
#[inline]
fn row_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

#[derive(Clone, Copy)]
struct LayerNorm {
    eps: f32,
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
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
        let (x, w, b) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let d = l1.dims().last().copied().unwrap_or(1);
        if w.len() != d || b.len() != d {
            bail!("layer norm: weight and bias need {d} elements")
        }
        let mut y = vec![0f32; x.len()];
        rows_mut(&mut y, d, |i, out| {
            let row = &x[i * d..(i + 1) * d];
            let (mean, rstd) = row_stats(row, self.eps);
            for (((o, &v), &wv), &bv) in out.iter_mut().zip(row).zip(w).zip(b) {
                *o = (v - mean) * rstd * wv + bv;
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = x.dim(D::Minus1)?;
        let rows = x.elem_count() / d;
        let packed = x.contiguous()?.apply_op3_no_bwd(
            &weight.contiguous()?,
            &grad.contiguous()?,
            &LayerNormGrad(*self),
        )?;
        let dx = packed.narrow(0, 0, rows)?.reshape(x.shape())?;
        let dw = packed.get(rows)?;
        let db = packed.get(rows + 1)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// The gradients of layer normalisation, packed as rows: dx (one row per input row), then
/// d weight, then d bias. With x̂ = (x − mean)·r and h = g·w,
/// dx = r (h − mean(h) − x̂ · mean(h x̂)), d weight = Σ g x̂, d bias = Σ g.
struct LayerNormGrad(LayerNorm);

impl CustomOp3 for LayerNormGrad {
    fn name(&self) -> &'static str {
        "fused-layer-norm-grad"
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
        let (x, w, g) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let d = w.len();
        let rows = x.len() / d;
        let mut out = vec![0f32; (rows + 2) * d];
        let (dx, sums) = out.split_at_mut(rows * d);
        rows_mut(dx, d, |i, o| {
            let (xr, gr) = (&x[i * d..(i + 1) * d], &g[i * d..(i + 1) * d]);
            let (mean, r) = row_stats(xr, self.0.eps);
            let (mut mh, mut mhx) = (0f32, 0f32);
            for ((&xv, &gv), &wv) in xr.iter().zip(gr).zip(w) {
                let h = gv * wv;
                mh += h;
                mhx += h * (xv - mean) * r;
            }
            let (mh, mhx) = (mh / d as f32, mhx / d as f32);
            for (((o, &xv), &gv), &wv) in o.iter_mut().zip(xr).zip(gr).zip(w) {
                *o = r * (gv * wv - mh - (xv - mean) * r * mhx);
            }
        });
        let (dw, db) = sums.split_at_mut(d);
        for i in 0..rows {
            let (xr, gr) = (&x[i * d..(i + 1) * d], &g[i * d..(i + 1) * d]);
            let (mean, r) = row_stats(xr, self.0.eps);
            for j in 0..d {
                dw[j] += gr[j] * (xr[j] - mean) * r;
                db[j] += gr[j];
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((rows + 2, d))))
    }
}

// ---------------------------------------------------------------------------------------
// Masked softmax

/// softmax(scale · scores + mask) over the last dimension, for attention: scores (B, H, T, K),
/// mask (B, 1, T, K) added to every head. The mask gets no gradient.
pub fn masked_softmax(scores: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    if is_fast(scores) && mask.dtype() == DType::F32 {
        let (b, _, t, k) = scores.dims4()?;
        if mask.dims4()? != (b, 1, t, k) {
            bail!(
                "masked softmax: mask {:?} for scores {:?}",
                mask.shape(),
                scores.shape()
            )
        }
        scores.contiguous()?.apply_op2(
            &mask.contiguous()?,
            MaskedSoftmax {
                scale: scale as f32,
            },
        )
    } else {
        candle_nn::ops::softmax(&(scores * scale)?.broadcast_add(mask)?, D::Minus1)
    }
}

#[derive(Clone, Copy)]
struct MaskedSoftmax {
    scale: f32,
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "fused-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (s, m) = (slice(s1, l1)?, slice(s2, l2)?);
        let dims = l1.dims();
        let (h, t, k) = (dims[1], dims[2], dims[3]);
        let mut y = vec![0f32; s.len()];
        rows_mut(&mut y, k, |row, out| {
            // Row `row` is (b, head, i); its mask row is (b, i).
            let (b, i) = (row / (h * t), row % t);
            let (sr, mr) = (&s[row * k..(row + 1) * k], &m[(b * t + i) * k..]);
            let mut max = f32::NEG_INFINITY;
            for ((o, &sv), &mv) in out.iter_mut().zip(sr).zip(mr) {
                *o = self.scale * sv + mv;
                max = max.max(*o);
            }
            let mut total = 0f32;
            for o in out.iter_mut() {
                *o = (*o - max).exp();
                total += *o;
            }
            for o in out.iter_mut() {
                *o /= total;
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _scores: &Tensor,
        _mask: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let ds = res
            .contiguous()?
            .apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxGrad { scale: self.scale })?;
        Ok((Some(ds), None))
    }
}

/// scale · y (g − Σ g y), row by row: the gradient of softmax(scale · x) given its output y.
struct SoftmaxGrad {
    scale: f32,
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "fused-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, g) = (slice(s1, l1)?, slice(s2, l2)?);
        let k = l1.dims().last().copied().unwrap_or(1);
        let mut dx = vec![0f32; y.len()];
        rows_mut(&mut dx, k, |row, out| {
            let (yr, gr) = (&y[row * k..(row + 1) * k], &g[row * k..(row + 1) * k]);
            let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
            for ((o, &yv), &gv) in out.iter_mut().zip(yr).zip(gr) {
                *o = self.scale * yv * (gv - dot);
            }
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

// ---------------------------------------------------------------------------------------
// Bias

/// x + bias, the bias (D) added to every row of x (…, D): a linear layer's bias. Its
/// gradient is the column sum of the incoming gradient, taken row by row.
pub fn add_bias(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if is_fast(x) {
        x.contiguous()?.apply_op2(bias, AddBias)
    } else {
        x.broadcast_add(bias)
    }
}

/// A linear layer, x Wᵀ + b, with [`add_bias`] for the bias.
pub fn linear(x: &Tensor, layer: &candle_nn::Linear) -> Result<Tensor> {
    let y = layer.weight().t().and_then(|w| match *x.dims() {
        [b, t, k] if x.is_contiguous() => x.reshape((b * t, k))?.matmul(&w)?.reshape((b, t, ())),
        _ => x.broadcast_matmul(&w),
    })?;
    match layer.bias() {
        Some(b) => add_bias(&y, b),
        None => Ok(y),
    }
}

struct AddBias;

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "fused-add-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, b) = (slice(s1, l1)?, slice(s2, l2)?);
        let d = b.len();
        if l1.dims().last() != Some(&d) {
            bail!("add bias: {d} biases for rows of {:?}", l1.dims())
        }
        let mut y = vec![0f32; x.len()];
        rows_mut(&mut y, d, |i, out| {
            for ((o, &xv), &bv) in out.iter_mut().zip(&x[i * d..]).zip(b) {
                *o = xv + bv;
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = bias.elem_count();
        let g = grad.contiguous()?;
        let db = g.apply_op1_no_bwd(&ColumnSum(d))?.reshape(bias.shape())?;
        Ok((Some(g), Some(db)))
    }
}

/// The sum over rows of a (…, D) tensor: (D).
struct ColumnSum(usize);

impl CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "fused-column-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (g, d) = (slice(s, l)?, self.0);
        let chunk = (PIECE / d).max(1) * d;
        let add = |mut acc: Vec<f32>, rows: &[f32]| {
            for row in rows.chunks(d) {
                acc.iter_mut().zip(row).for_each(|(a, v)| *a += v);
            }
            acc
        };
        // Fixed pieces summed in order, whatever thread ran which: the same seed must give
        // the same numbers, bit for bit.
        let partial: Vec<Vec<f32>> = g
            .par_chunks(chunk)
            .map(|rows| add(vec![0f32; d], rows))
            .collect();
        let sum = partial.iter().fold(vec![0f32; d], |acc, p| add(acc, p));
        Ok((CpuStorage::F32(sum), Shape::from(d)))
    }
}
