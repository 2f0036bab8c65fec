//! A small decoder-only transformer (GPT): token and position embeddings, pre-norm blocks of
//! causal self-attention and an MLP, a final norm and a linear head onto the vocabulary.
//!
//! Every operation has a backward pass: on a GPU each is an ordinary candle tensor op; on the
//! CPU, GELU, layer norm, the masked softmax and the bias add run as fused kernels with
//! hand-written backward passes ([`crate::lm::fused`]), tested against those same ops. So the
//! same code trains on the CPU and on `Device::Cuda`. Batches use one layout everywhere (sampling,
//! log-probabilities, fine-tuning): prompts padded on the *left* to a common length, responses
//! after them; the attention mask hides the padding.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder, VarMap};
use gridworld::rand::rngs::StdRng;
use gridworld::rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Doing, Error, Result};
use crate::lm::fused;
use crate::validate;

/// The shape of a model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GptConfig {
    /// Number of distinct tokens.
    pub vocab: usize,
    /// Longest sequence (prompt + response) the model can read.
    pub context: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Number of transformer blocks.
    pub layers: usize,
    /// Attention heads per block; must divide `d_model`.
    pub heads: usize,
    /// Hidden width of each block's MLP.
    pub mlp: usize,
}

impl Default for GptConfig {
    /// The CPU default: 4 blocks of width 128 with 4 heads, about 0.8 M parameters.
    fn default() -> Self {
        GptConfig {
            vocab: crate::lm::tokenizer::Tokenizer.vocab_size(),
            context: 64,
            d_model: 128,
            layers: 4,
            heads: 4,
            mlp: 512,
        }
    }
}

/// The error of a context that cannot hold what the task needs.
pub fn context_too_short(context: usize, needed: usize) -> Error {
    Error::invalid(
        "model.context",
        format!(
            "{context} tokens cannot hold this task's worked examples, which need up to \
             {needed} (prompt and response); raise model.context or lower task.difficulty"
        ),
    )
}

/// The largest model a config may ask for (16 GB of f32 weights).
pub const MAX_PARAMETERS: usize = 4_000_000_000;

impl GptConfig {
    /// Checks the sizes; errors name the field (`model.heads`, …).
    pub fn validate(&self) -> Result<()> {
        for (key, v) in [
            ("model.vocab", self.vocab),
            ("model.context", self.context),
            ("model.d_model", self.d_model),
            ("model.layers", self.layers),
            ("model.heads", self.heads),
            ("model.mlp", self.mlp),
        ] {
            validate::count(key, v, 1, 1 << 20)?;
        }
        let (v, c, d, m) = (
            self.vocab as f64,
            self.context as f64,
            self.d_model as f64,
            self.mlp as f64,
        );
        let block = 4.0 * d + 3.0 * d * d + 3.0 * d + d * d + d + d * m + m + m * d + d;
        let parameters = 2.0 * v * d + c * d + self.layers as f64 * block + 2.0 * d;
        if parameters > MAX_PARAMETERS as f64 {
            return Err(Error::invalid(
                "model",
                format!(
                    "{parameters:.2e} parameters is more than the {MAX_PARAMETERS:.0e} this \
                     crate trains; lower model.d_model, model.mlp or model.layers"
                ),
            ));
        }
        if self.d_model % self.heads != 0 {
            return Err(Error::invalid(
                "model.heads",
                format!(
                    "{} does not divide model.d_model = {}",
                    self.heads, self.d_model
                ),
            ));
        }
        Ok(())
    }

    /// Number of trainable parameters.
    pub fn parameters(&self) -> usize {
        let (v, c, d, m) = (self.vocab, self.context, self.d_model, self.mlp);
        let block = 2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * m + m) + (m * d + d);
        v * d + c * d + self.layers * block + 2 * d + d * v
    }
}

/// Layer normalisation with a gradient (`candle_nn::LayerNorm`'s fused kernel has no backward
/// pass): [`fused::layer_norm`], one kernel on the CPU, plain tensor ops elsewhere.
#[derive(Clone, Debug)]
struct Norm {
    weight: Tensor,
    bias: Tensor,
}

impl Norm {
    fn new(d: usize, vb: VarBuilder) -> candle_core::Result<Norm> {
        Ok(Norm {
            weight: vb.get_with_hints(d, "weight", candle_nn::Init::Const(1.0))?,
            bias: vb.get_with_hints(d, "bias", candle_nn::Init::Const(0.0))?,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        fused::layer_norm(x, &self.weight, &self.bias, 1e-5)
    }
}

/// One block's cached keys and values: buffers (B, H, capacity, d_h) allocated at the first
/// token, of which the first `len` positions are filled.
#[derive(Debug)]
struct KvBuffers {
    k: Tensor,
    v: Tensor,
    len: usize,
}

type KvSlot = Option<KvBuffers>;
type CResult<T> = candle_core::Result<T>;

impl KvBuffers {
    /// Writes the new keys and values (B, H, T, d_h) after the cached ones and returns all of
    /// them as views (B, H, len, d_h), without copying the old ones.
    fn append(
        slot: &mut KvSlot,
        k: &Tensor,
        v: &Tensor,
        capacity: usize,
    ) -> CResult<(Tensor, Tensor)> {
        let (b, h, t, dh) = k.dims4()?;
        if slot.is_none() {
            let zeros = || Tensor::zeros((b, h, capacity, dh), k.dtype(), k.device());
            *slot = Some(KvBuffers {
                k: zeros()?,
                v: zeros()?,
                len: 0,
            });
        }
        let Some(buf) = slot.as_mut() else {
            unreachable!("allocated above")
        };
        if buf.len + t > capacity {
            candle_core::bail!(
                "KV cache full: {} positions cached, {t} more, capacity {capacity}",
                buf.len
            );
        }
        buf.k.slice_set(k, 2, buf.len)?;
        buf.v.slice_set(v, 2, buf.len)?;
        buf.len += t;
        Ok((buf.k.narrow(2, 0, buf.len)?, buf.v.narrow(2, 0, buf.len)?))
    }
}

/// Keys and values of every block for the tokens read so far: reading one more token costs
/// one row of attention instead of a pass over the whole sequence.
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<KvSlot>,
    capacity: usize,
}

impl KvCache {
    /// An empty cache for a model with `layers` blocks, room for `capacity` positions.
    pub fn new(layers: usize, capacity: usize) -> KvCache {
        KvCache {
            layers: (0..layers).map(|_| None).collect(),
            capacity,
        }
    }

    /// Number of positions cached.
    pub fn len(&self) -> usize {
        match self.layers.first() {
            Some(Some(buf)) => buf.len,
            _ => 0,
        }
    }

    /// True before the first token.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps only the batch rows listed in `rows` (`u32`, in the order given): the rows of a
    /// sampling batch that are still generating, so that finished ones cost nothing.
    pub fn retain_rows(&mut self, rows: &Tensor) -> candle_core::Result<()> {
        for buf in self.layers.iter_mut().flatten() {
            buf.k = buf.k.index_select(rows, 0)?;
            buf.v = buf.v.index_select(rows, 0)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
struct Attention {
    qkv: Linear,
    proj: Linear,
    heads: usize,
}

// ANCHOR: attention
impl Attention {
    /// Causal self-attention of `x` (B, T, C). `mask` (B, 1, T, T_k) is added to the
    /// scores: 0 where a query may look, a large negative number where it may not. With
    /// a cache, the keys and values of earlier positions come from it and the new ones
    /// are appended.
    fn forward(
        &self,
        x: &Tensor,
        mask: &Tensor,
        cache: Option<(&mut KvSlot, usize)>,
    ) -> candle_core::Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        let dh = c / self.heads;
        let qkv = fused::linear(x, &self.qkv)?;
        let split = |i: usize| -> candle_core::Result<Tensor> {
            qkv.narrow(2, i * c, c)?
                .reshape((b, t, self.heads, dh))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let scale = 1.0 / (dh as f64).sqrt();
        let y = match cache {
            // Sampling: append to the cache, then one query per row over all of it.
            Some((slot, capacity)) => {
                let (k, v) = KvBuffers::append(slot, &k, &v, capacity)?;
                fused::decode_attention(&q, &k, &v, mask, scale)?
            }
            // scores_ij = q_i · k_j / √d_h, masked, softmax over j, then Σ_j weight_ij
            // v_j.
            None => {
                let weights = fused::masked_softmax(&q.matmul(&k.t()?)?, mask, scale)?;
                weights.matmul(&v)?
            }
        };
        fused::linear(&y.transpose(1, 2)?.reshape((b, t, c))?, &self.proj)
    }
}
// ANCHOR_END: attention

#[derive(Clone, Debug)]
struct Block {
    ln1: Norm,
    attn: Attention,
    ln2: Norm,
    fc1: Linear,
    fc2: Linear,
}

// ANCHOR: block
impl Block {
    /// A pre-norm block: x + attention(norm(x)), then x + MLP(norm(x)).
    fn forward(
        &self,
        x: &Tensor,
        mask: &Tensor,
        cache: Option<(&mut KvSlot, usize)>,
    ) -> CResult<Tensor> {
        let x = (x + self.attn.forward(&self.ln1.forward(x)?, mask, cache)?)?;
        let h = fused::gelu(&fused::linear(&self.ln2.forward(&x)?, &self.fc1)?)?;
        x + fused::linear(&h, &self.fc2)?
    }
}
// ANCHOR_END: block

/// The transformer. Its parameters live in a [`VarMap`], so they can be saved, loaded and
/// handed to an optimizer.
pub struct Gpt {
    config: GptConfig,
    tok_emb: Embedding,
    pos_emb: Embedding,
    blocks: Vec<Block>,
    ln_f: Norm,
    head: Linear,
    varmap: VarMap,
    device: Device,
}

impl Gpt {
    /// A new model on `device` with weights drawn from `seed` (GPT-2's scheme: normal with
    /// standard deviation 0.02, the output projections of each block scaled down by
    /// 1/√(2·layers), biases 0, norms 1).
    pub fn new(config: &GptConfig, seed: u64, device: &Device) -> Result<Gpt> {
        config.validate()?;
        if device.is_cpu() {
            crate::lm::keep_freed_memory();
        }
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let c = config;
        let build = || -> candle_core::Result<Gpt> {
            let blocks = (0..c.layers)
                .map(|i| {
                    let vb = vb.pp(format!("blocks.{i}"));
                    Ok(Block {
                        ln1: Norm::new(c.d_model, vb.pp("ln1"))?,
                        attn: Attention {
                            qkv: candle_nn::linear(c.d_model, 3 * c.d_model, vb.pp("attn.qkv"))?,
                            proj: candle_nn::linear(c.d_model, c.d_model, vb.pp("attn.proj"))?,
                            heads: c.heads,
                        },
                        ln2: Norm::new(c.d_model, vb.pp("ln2"))?,
                        fc1: candle_nn::linear(c.d_model, c.mlp, vb.pp("mlp.fc1"))?,
                        fc2: candle_nn::linear(c.mlp, c.d_model, vb.pp("mlp.fc2"))?,
                    })
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            Ok(Gpt {
                config: c.clone(),
                tok_emb: candle_nn::embedding(c.vocab, c.d_model, vb.pp("tok_emb"))?,
                pos_emb: candle_nn::embedding(c.context, c.d_model, vb.pp("pos_emb"))?,
                blocks,
                ln_f: Norm::new(c.d_model, vb.pp("ln_f"))?,
                head: candle_nn::linear_no_bias(c.d_model, c.vocab, vb.pp("head"))?,
                varmap: varmap.clone(),
                device: device.clone(),
            })
        };
        let gpt = build().doing("new in lmel")?;
        gpt.init(seed)?;
        Ok(gpt)
    }

    /// Draws every weight from a generator seeded with `seed`, in name order, so that the
    /// same seed gives the same model on every machine.
    fn init(&self, seed: u64) -> Result<()> {
        let mut rng = StdRng::seed_from_u64(seed);
        let resid = 0.02 / (2.0 * self.config.layers as f64).sqrt();
        for (name, var) in self.named_vars() {
            let n = var.elem_count();
            let values: Vec<f32> = if name.starts_with("blocks.") && name.contains(".ln")
                || name.starts_with("ln_f")
            {
                let one = if name.ends_with("weight") { 1.0 } else { 0.0 };
                vec![one; n]
            } else if name.ends_with("bias") {
                vec![0.0; n]
            } else {
                let std = if name.ends_with("proj.weight") || name.ends_with("fc2.weight") {
                    resid
                } else {
                    0.02
                };
                (0..n).map(|_| (std * normal(&mut rng)) as f32).collect()
            };
            let t = Tensor::from_vec(values, var.shape(), &self.device).doing("init in lmel")?;
            var.set(&t).doing("init in lmel")?;
        }
        Ok(())
    }

    /// The parameters with their names, sorted by name.
    pub fn named_vars(&self) -> Vec<(String, candle_core::Var)> {
        let data = self.varmap.data().lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The parameters, for an optimizer (sorted by name).
    pub fn vars(&self) -> Vec<candle_core::Var> {
        self.named_vars().into_iter().map(|(_, v)| v).collect()
    }

    /// The parameter store (for saving and loading).
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// The model's shape.
    pub fn config(&self) -> &GptConfig {
        &self.config
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Number of trainable parameters.
    pub fn parameters(&self) -> usize {
        self.vars().iter().map(|v| v.elem_count()).sum()
    }

    /// An independent copy with the same weights (e.g. a frozen reference of a policy about
    /// to be trained).
    pub fn copy(&self) -> Result<Gpt> {
        self.copy_to(&self.device)
    }

    /// An independent copy with the same weights on `device`.
    pub fn copy_to(&self, device: &Device) -> Result<Gpt> {
        let other = Gpt::new(&self.config, 0, device)?;
        for ((_, to), (_, from)) in other.named_vars().iter().zip(self.named_vars()) {
            // `set` copies the values: the copy shares no storage with `self`.
            to.set(
                &from
                    .as_tensor()
                    .to_device(device)
                    .doing("copy_to in lmel")?,
            )
            .doing("copy_to in lmel")?;
        }
        Ok(other)
    }

    /// A fresh cache for generation, with room for the whole context.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.config.layers, self.config.context)
    }

    // ANCHOR: forward
    /// Logits (B, T, V) for tokens (B, T) at positions (B, T) (both `u32`), with the
    /// additive attention mask (B, 1, T, T_k), where T_k counts the cached positions
    /// plus the T new ones. Without a cache T_k = T.
    pub fn forward(
        &self,
        tokens: &Tensor,
        positions: &Tensor,
        mask: &Tensor,
        mut cache: Option<&mut KvCache>,
    ) -> candle_core::Result<Tensor> {
        let mut x = (self.tok_emb.forward(tokens)? + self.pos_emb.forward(positions)?)?;
        for (i, block) in self.blocks.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| (&mut c.layers[i], c.capacity));
            x = block.forward(&x, mask, slot)?;
        }
        self.head.forward(&self.ln_f.forward(&x)?)
    }
    // ANCHOR_END: forward
}

/// A standard normal number (Box–Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}
