// Decoding one token per sequence, fused. At one token the steps of a layer are tiny (576 or
// 15 x 64 numbers), so in eager PyTorch their cost is per-op overhead: F.rms_norm runs as ~7 ops,
// RoPE + cache write + SDPA as ~20, and a SmolLM2 block as ~40 ops and ~15 module calls.
//
//   torch.ops.lmforge.rms_norm(x [..., C] float32, weight [C], eps) -> [..., C]
//   torch.ops.lmforge.decode_attention(qkv [B, 1, (H + 2 KV) * D], cos [B|1, D], sin [B|1, D],
//       k_cache [B', KV, S_max, D], v_cache, pos, n_heads, n_kv_heads, mask [B|1, >=pos+1] bool?)
//       -> [B, 1, H * D]
//   torch.ops.lmforge.decode_block(x [B, 1, C], attention_norm [C], ffn_norm [C], eps,
//       linears (4 tensors for each of wqkv, wo, w1, w3, w2), cos, sin, k_cache, v_cache, pos,
//       n_heads, n_kv_heads, mask?) -> [B, 1, C]: a whole Llama-family block (RMSNorm, GQA
//       attention, SwiGLU) with int4/int8 weights, in one call.
//
// decode_attention rotates q and k (RoPE, rotate-half convention; cos/sin empty = no RoPE),
// writes k and v into cache slot `pos` of rows 0..B-1, and attends each query head to slots
// 0..pos of its key/value head (grouped-query attention) where mask allows (a slot is always
// allowed to itself), with softmax scale 1/sqrt(D). Float32 throughout.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/library.h>

#include "blocks.h"
#include "simd.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

namespace {

using lmforge::hsum;

inline float dot(const float* a, const float* b, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  float total = hsum(acc);
  for (; i < n; ++i) total += a[i] * b[i];
  return total;
}

// y += p * x
inline void axpy(float* y, float p, const float* x, int64_t n) {
  const __m256 pv = _mm256_set1_ps(p);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(pv, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += p * x[i];
}

// head [D] rotated by (cos, sin) [D]: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin)
inline void rope(const float* x, const float* cos, const float* sin, int64_t D, float* out) {
  const int64_t half = D / 2;
  for (int64_t i = 0; i < half; ++i) {
    out[i] = x[i] * cos[i] - x[i + half] * sin[i];
    out[i + half] = x[i + half] * cos[i + half] + x[i] * sin[i + half];
  }
}

}  // namespace

namespace lmforge {

at::Tensor rms_norm(const at::Tensor& x_in, const at::Tensor& weight_in, double eps) {
  TORCH_CHECK(x_in.scalar_type() == at::kFloat && weight_in.scalar_type() == at::kFloat,
              "rms_norm: float32 only");
  const int64_t C = x_in.size(-1);
  TORCH_CHECK(weight_in.numel() == C, "rms_norm: weight has ", weight_in.numel(), " values, x ", C);
  const at::Tensor x = x_in.contiguous(), weight = weight_in.contiguous();
  at::Tensor y = at::empty_like(x);
  const float *xp = x.data_ptr<float>(), *wp = weight.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, x.numel() / C, 64, [&](int64_t r0, int64_t r1) {  // rows: prefill, eval
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = xp + r * C;
      const float inv = 1.f / std::sqrt(dot(xr, xr, C) / static_cast<float>(C) + static_cast<float>(eps));
      for (int64_t i = 0; i < C; ++i) yp[r * C + i] = xr[i] * inv * wp[i];
    }
  });
  return y;
}

at::Tensor decode_attention(const at::Tensor& qkv_in, const at::Tensor& cos_in,
                            const at::Tensor& sin_in, at::Tensor k_cache, at::Tensor v_cache,
                            int64_t pos, int64_t H, int64_t KV,
                            const std::optional<at::Tensor>& mask_in) {
  TORCH_CHECK(qkv_in.dim() == 3 && qkv_in.size(1) == 1 && qkv_in.scalar_type() == at::kFloat,
              "decode_attention: qkv must be float32 [B, 1, (H + 2 KV) * D]");
  TORCH_CHECK(k_cache.dim() == 4 && k_cache.is_contiguous() && v_cache.is_contiguous() &&
                  k_cache.scalar_type() == at::kFloat && v_cache.sizes() == k_cache.sizes() &&
                  v_cache.scalar_type() == at::kFloat,
              "decode_attention: caches must be contiguous float32 [B, KV, S, D]");
  const int64_t B = qkv_in.size(0), D = k_cache.size(3), S_max = k_cache.size(2);
  TORCH_CHECK(qkv_in.size(2) == (H + 2 * KV) * D && k_cache.size(1) == KV && H % KV == 0 &&
                  k_cache.size(0) >= B && D % 2 == 0,
              "decode_attention: shapes of qkv ", qkv_in.sizes(), " and cache ", k_cache.sizes(),
              " do not match ", H, " heads and ", KV, " key/value heads");
  TORCH_CHECK(pos >= 0 && pos < S_max, "decode_attention: slot ", pos, " outside the cache");
  const bool rotate = cos_in.numel() > 0;
  const at::Tensor qkv = qkv_in.contiguous();
  const at::Tensor cos = rotate ? cos_in.reshape({-1, D}).contiguous() : cos_in;
  const at::Tensor sin = rotate ? sin_in.reshape({-1, D}).contiguous() : sin_in;
  TORCH_CHECK(!rotate || (cos.size(0) == 1 || cos.size(0) == B) && sin.sizes() == cos.sizes(),
              "decode_attention: cos/sin must be [1 or B, D]");
  const int64_t S = pos + 1;
  at::Tensor mask;
  if (mask_in) {
    mask = mask_in->reshape({mask_in->size(0), -1}).contiguous();
    TORCH_CHECK(mask.scalar_type() == at::kBool && (mask.size(0) == 1 || mask.size(0) == B) &&
                    mask.size(1) >= S,
                "decode_attention: mask must be bool [1 or B, >= ", S, "]");
  }
  at::Tensor y = at::empty({B, 1, H * D}, qkv.options());
  const float* in = qkv.data_ptr<float>();
  float *kc = k_cache.data_ptr<float>(), *vc = v_cache.data_ptr<float>(), *out = y.data_ptr<float>();
  const int64_t row = (H + 2 * KV) * D, group = H / KV;
  const float scale = 1.f / std::sqrt(static_cast<float>(D));

  // 1. the new key and value of every row go into slot pos (keys rotated)
  for (int64_t b = 0; b < B; ++b) {
    const float* c = rotate ? cos.data_ptr<float>() + (cos.size(0) == 1 ? 0 : b) * D : nullptr;
    const float* s = rotate ? sin.data_ptr<float>() + (sin.size(0) == 1 ? 0 : b) * D : nullptr;
    for (int64_t g = 0; g < KV; ++g) {
      const float* k = in + b * row + (H + g) * D;
      const float* v = in + b * row + (H + KV + g) * D;
      float* k_slot = kc + ((b * KV + g) * S_max + pos) * D;
      if (rotate) rope(k, c, s, D, k_slot); else std::copy(k, k + D, k_slot);
      std::copy(v, v + D, vc + ((b * KV + g) * S_max + pos) * D);
    }
  }
  // 2. every query head attends to its key/value head's slots 0..pos
  at::parallel_for(0, B * H, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> q(D), scores(S);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / H, h = t % H, g = h / group;
      const float* q_in = in + b * row + h * D;
      if (rotate) {
        const int64_t cb = cos.size(0) == 1 ? 0 : b;
        rope(q_in, cos.data_ptr<float>() + cb * D, sin.data_ptr<float>() + cb * D, D, q.data());
      } else {
        std::copy(q_in, q_in + D, q.begin());
      }
      const bool* allowed =
          mask.defined() ? mask.data_ptr<bool>() + (mask.size(0) == 1 ? 0 : b) * mask.size(1)
                         : nullptr;
      const float* keys = kc + (b * KV + g) * S_max * D;
      const float* values = vc + (b * KV + g) * S_max * D;
      float top = -std::numeric_limits<float>::infinity();
      for (int64_t s = 0; s < S; ++s) {
        const bool ok = allowed == nullptr || allowed[s] || s == pos;
        scores[s] = ok ? dot(q.data(), keys + s * D, D) * scale
                       : -std::numeric_limits<float>::infinity();
        top = std::max(top, scores[s]);
      }
      float total = 0.f;
      for (int64_t s = 0; s < S; ++s) total += (scores[s] = std::exp(scores[s] - top));
      float* o = out + b * H * D + h * D;
      std::fill(o, o + D, 0.f);
      for (int64_t s = 0; s < S; ++s)
        if (scores[s] > 0.f) axpy(o, scores[s] / total, values + s * D, D);
    }
  });
  return y;
}

// One weight-only quantized linear layer of decode_block: int4 (qs, d, m, bias) or int8
// (qs, d, -, bias); absent tensors are empty.
static at::Tensor quantized_linear(const at::Tensor& x, at::TensorList w) {
  const std::optional<at::Tensor> bias = w[3].numel() ? std::optional<at::Tensor>(w[3]) : std::nullopt;
  if (w[0].scalar_type() == at::kByte) return int4_linear(x, w[0], w[1], w[2], bias);
  return int8_linear(x, w[0], w[1], bias);
}

// A whole Llama-family block for one new token per row, in one call:
//   h = x + wo(attention(wqkv(rms_norm(x))));  y = h + w2(silu(w1(rms_norm(h))) * w3(rms_norm(h)))
// `linears` holds 4 tensors for each of wqkv, wo, w1, w3, w2: see quantized_linear.
at::Tensor decode_block(const at::Tensor& x, const at::Tensor& attention_norm,
                        const at::Tensor& ffn_norm, double eps, at::TensorList linears,
                        const at::Tensor& cos, const at::Tensor& sin, at::Tensor k_cache,
                        at::Tensor v_cache, int64_t pos, int64_t H, int64_t KV,
                        const std::optional<at::Tensor>& mask) {
  TORCH_CHECK(linears.size() == 20, "decode_block: 4 tensors for each of 5 linear layers");
  auto layer = [&](int64_t i) { return linears.slice(4 * i, 4); };
  const at::Tensor qkv = quantized_linear(rms_norm(x, attention_norm, eps), layer(0));
  const at::Tensor attended = decode_attention(qkv, cos, sin, k_cache, v_cache, pos, H, KV, mask);
  const at::Tensor h = x + quantized_linear(attended, layer(1));
  const at::Tensor normed = rms_norm(h, ffn_norm, eps);
  at::Tensor gate = quantized_linear(normed, layer(2));
  at::silu_(gate).mul_(quantized_linear(normed, layer(3)));
  return h + quantized_linear(gate, layer(4));
}

}  // namespace lmforge

TORCH_LIBRARY_FRAGMENT(lmforge, m) {
  m.def("rms_norm(Tensor x, Tensor weight, float eps) -> Tensor");
  m.def(
      "decode_attention(Tensor qkv, Tensor cos, Tensor sin, Tensor(a!) k_cache, "
      "Tensor(b!) v_cache, int pos, int n_heads, int n_kv_heads, Tensor? mask=None) -> Tensor");
  m.def(
      "decode_block(Tensor x, Tensor attention_norm, Tensor ffn_norm, float eps, "
      "Tensor[] linears, Tensor cos, Tensor sin, Tensor(a!) k_cache, Tensor(b!) v_cache, "
      "int pos, int n_heads, int n_kv_heads, Tensor? mask=None) -> Tensor");
}

TORCH_LIBRARY_IMPL(lmforge, CPU, m) {
  m.impl("rms_norm", &lmforge::rms_norm);
  m.impl("decode_attention", &lmforge::decode_attention);
  m.impl("decode_block", &lmforge::decode_block);
}
