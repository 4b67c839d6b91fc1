// Decoding one token per sequence, fused. At one token the steps of a layer are tiny (576 or
// 15 x 64 numbers), so in eager PyTorch their cost is per-op overhead: F.rms_norm runs as ~7 ops,
// RoPE + cache write + SDPA as ~20, and a SmolLM2 block as ~40 ops and ~15 module calls.
//
//   torch.ops.lmforge.rms_norm(x [..., C] float32, weight [C], eps) -> [..., C]
//   torch.ops.lmforge.decode_attention(qkv [B, 1, (H + 2 KV) * D], cos [B|1, D], sin [B|1, D],
//       k_cache [B', KV, S_max, D], v_cache, pos, n_heads, n_kv_heads, mask [B|1, >=pos+1] bool?)
//       -> [B, 1, H * D]
//   torch.classes.lmforge.DecodeLayers(norms (2 per layer), eps, linears (4 tensors for each of
//       wqkv, wo, w1, w3, w2 per layer), k_caches, v_caches (1 per layer), n_heads, n_kv_heads)
//       .forward(x [B, 1, C], cos, sin, pos, mask?) -> [B, 1, C]: every Llama-family block
//       (RMSNorm, GQA attention, SwiGLU) of a model with int4/int8 weights, in one call.
//
// decode_attention rotates q and k (RoPE, rotate-half convention; cos/sin empty = no RoPE),
// writes k and v into cache slot `pos` of rows 0..B-1, and attends each query head to slots
// 0..pos of its key/value head (grouped-query attention) where mask allows (a slot is always
// allowed to itself), with softmax scale 1/sqrt(D). Float32 throughout.
//
// DecodeLayers works on plain float rows between a block's five parallel regions (q/k/v,
// attention, output projection, gate and up together, down), adding biases, residuals and
// SwiGLU inside them, so no step of a block is a separate PyTorch op, and a decode step leaves
// Python once for all its blocks.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/custom_class.h>
#include <torch/library.h>

#include "blocks.h"
#include "simd.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

namespace lmforge {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

inline float dot(const float* a, const float* b, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  float total = hsum(acc);
  for (; i < n; ++i) total += a[i] * b[i];
  return total;
}

// e^x for 8 floats (Cephes' expf: x = n ln2 + r, a degree-7 polynomial in r, 2^n through the
// exponent bits; ~1 ulp). Below -87, where e^x leaves the normal floats, the result is 0:
// softmax's masked slots (-inf) among them.
inline __m256 exp8(__m256 x) {
  const __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(-87.f), _CMP_GE_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.f)), _mm256_set1_ps(88.f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // ln 2 in two parts
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  for (const float c : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f,
                        5.0000001201e-1f})
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
  p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  const __m256i two_n = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(two_n)), keep);
}

// y = x / sqrt(mean(x^2) + eps) * w for one row of C
inline void rms_norm_row(const float* x, const float* w, int64_t C, float eps, float* y) {
  const float inv = 1.f / std::sqrt(dot(x, x, C) / static_cast<float>(C) + eps);
  const __m256 scale = _mm256_set1_ps(inv);
  int64_t i = 0;
  for (; i + 8 <= C; i += 8)
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), scale),
                                          _mm256_loadu_ps(w + i)));
  for (; i < C; ++i) y[i] = x[i] * inv * w[i];
}

// head [D] rotated by (cos, sin) [D]: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin)
inline void rope(const float* x, const float* cos, const float* sin, int64_t D, float* out) {
  const int64_t half = D / 2;
  for (int64_t i = 0; i < half; ++i) {
    out[i] = x[i] * cos[i] - x[i + half] * sin[i];
    out[i + half] = x[i + half] * cos[i + half] + x[i] * sin[i + half];
  }
}

// scores[s] = q . keys[s] for 8 slots, D a multiple of 8: eight independent accumulators (one
// per slot, so no FMA waits on another), summed across at the end by a tree of hadds
inline void dot8(const float* q, const float* keys, int64_t D, float* scores) {
  __m256 acc[8];
  for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_ps();
  for (int64_t i = 0; i < D; i += 8) {
    const __m256 qv = _mm256_loadu_ps(q + i);
    for (int j = 0; j < 8; ++j) acc[j] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(keys + j * D + i), acc[j]);
  }
  const __m256 h0 = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
  const __m256 h1 = _mm256_hadd_ps(_mm256_hadd_ps(acc[4], acc[5]), _mm256_hadd_ps(acc[6], acc[7]));
  _mm256_storeu_ps(scores, _mm256_add_ps(_mm256_permute2f128_ps(h0, h1, 0x20),
                                         _mm256_permute2f128_ps(h0, h1, 0x31)));
}

// out [D] = sum_s p[s] values[s], `Cols` columns (Cols / 8 registers) from column i
template <int Cols>
inline void weighted_sum(const float* p, const float* values, int64_t S, int64_t D, int64_t i,
                         float scale, float* out) {
  constexpr int R = Cols / 8;
  __m256 acc[R];
  for (int j = 0; j < R; ++j) acc[j] = _mm256_setzero_ps();
  for (int64_t t = 0; t < S; ++t) {
    const __m256 pt = _mm256_broadcast_ss(p + t);
    const float* v = values + t * D + i;
    for (int j = 0; j < R; ++j) acc[j] = _mm256_fmadd_ps(pt, _mm256_loadu_ps(v + 8 * j), acc[j]);
  }
  for (int j = 0; j < R; ++j)
    _mm256_storeu_ps(out + i + 8 * j, _mm256_mul_ps(acc[j], _mm256_set1_ps(scale)));
}

// One query head attends over S slots: out [D] = softmax(q . keys / sqrt(D)) @ values, where
// allowed (null: every slot; the last slot always); `scores` is scratch for S floats.
void attend_head(const float* q, const float* keys, const float* values, int64_t S, int64_t D,
                 const bool* allowed, float* scores, float* out) {
  int64_t s = 0;
  if (D % 8 == 0)
    for (; s + 8 <= S; s += 8) dot8(q, keys + s * D, D, scores + s);
  for (; s < S; ++s) scores[s] = dot(q, keys + s * D, D);
  const float scale = 1.f / std::sqrt(static_cast<float>(D));
  float top = -kInf;
  for (s = 0; s < S; ++s) {
    const bool ok = allowed == nullptr || allowed[s] || s == S - 1;
    scores[s] = ok ? scores[s] * scale : -kInf;
    top = std::max(top, scores[s]);
  }
  const __m256 top8 = _mm256_set1_ps(top);
  __m256 sum8 = _mm256_setzero_ps();
  for (s = 0; s + 8 <= S; s += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(scores + s), top8));
    _mm256_storeu_ps(scores + s, e);
    sum8 = _mm256_add_ps(sum8, e);
  }
  float total = hsum(sum8);
  for (; s < S; ++s) total += (scores[s] = std::exp(scores[s] - top));
  const float inv = 1.f / total;
  int64_t i = 0;
  for (; i + 64 <= D; i += 64) weighted_sum<64>(scores, values, S, D, i, inv, out);
  for (; i + 8 <= D; i += 8) weighted_sum<8>(scores, values, S, D, i, inv, out);
  for (; i < D; ++i) {
    float acc = 0.f;
    for (int64_t t = 0; t < S; ++t) acc += scores[t] * values[t * D + i];
    out[i] = acc * inv;
  }
}

// One step's attention arguments, checked once and shared by every layer: B rows, H query and
// KV key/value heads of D, the cache slot pos, RoPE's cos/sin [1|B, D] (undefined: no RoPE)
// and the mask [1|B, >= pos + 1] (undefined: every slot).
struct Attention {
  int64_t B, H, KV, D, pos;
  at::Tensor cos, sin, mask;

  Attention(int64_t B_, int64_t H_, int64_t KV_, int64_t D_, int64_t pos_,
            const at::Tensor& cos_in, const at::Tensor& sin_in,
            const std::optional<at::Tensor>& mask_in)
      : B(B_), H(H_), KV(KV_), D(D_), pos(pos_) {
    TORCH_CHECK(H > 0 && KV > 0 && H % KV == 0 && D % 2 == 0,
                "decode_attention: ", H, " heads cannot share ", KV, " key/value heads of ", D);
    if (cos_in.numel() > 0) {
      cos = cos_in.reshape({-1, D}).contiguous();
      sin = sin_in.reshape({-1, D}).contiguous();
      TORCH_CHECK((cos.size(0) == 1 || cos.size(0) == B) && sin.sizes() == cos.sizes() &&
                      cos.scalar_type() == at::kFloat && sin.scalar_type() == at::kFloat,
                  "decode_attention: cos/sin must be float32 [1 or B, D]");
    }
    if (mask_in) {
      mask = mask_in->reshape({mask_in->size(0), -1}).contiguous();
      TORCH_CHECK(mask.scalar_type() == at::kBool && (mask.size(0) == 1 || mask.size(0) == B) &&
                      mask.size(1) >= pos + 1,
                  "decode_attention: mask must be bool [1 or B, >= ", pos + 1, "]");
    }
  }

  // a layer's caches [>= B, KV, S_max, D] and its qkv width must fit this step
  void check(const at::Tensor& k_cache, const at::Tensor& v_cache, int64_t width) const {
    TORCH_CHECK(k_cache.dim() == 4 && k_cache.is_contiguous() && v_cache.is_contiguous() &&
                    k_cache.scalar_type() == at::kFloat && v_cache.sizes() == k_cache.sizes() &&
                    v_cache.scalar_type() == at::kFloat,
                "decode_attention: caches must be contiguous float32 [B, KV, S, D]");
    TORCH_CHECK(width == (H + 2 * KV) * D && k_cache.size(1) == KV && k_cache.size(3) == D &&
                    k_cache.size(0) >= B,
                "decode_attention: shapes of qkv [", B, ", 1, ", width, "] and cache ",
                k_cache.sizes(), " do not match ", H, " heads and ", KV, " key/value heads");
    TORCH_CHECK(pos >= 0 && pos < k_cache.size(2), "decode_attention: slot ", pos,
                " outside the cache");
  }

  const float* row(const at::Tensor& t, int64_t b) const {  // cos or sin of row b, or null
    return t.defined() ? t.data_ptr<float>() + (t.size(0) == 1 ? 0 : b) * D : nullptr;
  }

  // qkv [B, (H + 2 KV) D] -> out [B, H D], writing slot pos of the caches (checked)
  void run(const float* qkv, const at::Tensor& k_cache, const at::Tensor& v_cache,
           float* out) const {
    const int64_t width = (H + 2 * KV) * D, group = H / KV, S = pos + 1, S_max = k_cache.size(2);
    float *kc = k_cache.data_ptr<float>(), *vc = v_cache.data_ptr<float>();
    for (int64_t b = 0; b < B; ++b) {  // 1. new keys (rotated) and values into slot pos
      for (int64_t g = 0; g < KV; ++g) {
        const float* k = qkv + b * width + (H + g) * D;
        const float* v = qkv + b * width + (H + KV + g) * D;
        float* k_slot = kc + ((b * KV + g) * S_max + pos) * D;
        if (cos.defined()) rope(k, row(cos, b), row(sin, b), D, k_slot);
        else std::copy(k, k + D, k_slot);
        std::copy(v, v + D, vc + ((b * KV + g) * S_max + pos) * D);
      }
    }
    at::parallel_for(0, B * H, 1, [&](int64_t t0, int64_t t1) {  // 2. each query head
      std::vector<float> q(D), scores(S);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t b = t / H, h = t % H, g = h / group;
        const float* q_in = qkv + b * width + h * D;
        if (cos.defined()) rope(q_in, row(cos, b), row(sin, b), D, q.data());
        else std::copy(q_in, q_in + D, q.begin());
        const bool* allowed = mask.defined()
            ? mask.data_ptr<bool>() + (mask.size(0) == 1 ? 0 : b) * mask.size(1) : nullptr;
        const int64_t head = (b * KV + g) * S_max * D;
        attend_head(q.data(), kc + head, vc + head, S, D, allowed, scores.data(),
                    out + b * H * D + h * D);
      }
    });
  }
};

// One linear layer of DecodeLayers: a block matrix and its float32 bias (or none)
struct Linear {
  BlockMatrix w;
  const float* bias = nullptr;

  // from (qs, d, m, bias): int4 if qs is uint8, else int8 (m unused); absent tensors empty
  Linear(const char* name, at::TensorList t) {
    w = t[0].scalar_type() == at::kByte ? block_matrix(name, t[0], t[1], &t[2])
                                        : block_matrix(name, t[0], t[1], nullptr);
    if (t[3].numel()) {
      TORCH_CHECK(t[3].scalar_type() == at::kFloat && t[3].is_contiguous() && t[3].numel() == w.N,
                  name, ": bias must be float32 [", w.N, "]");
      bias = t[3].data_ptr<float>();
    }
  }
};

// y [M, N] = x [M, k_in] @ W.T + bias (+ residual [M, N]), rows of W split over threads
void project(const Linear& l, const float* x, int64_t M, int64_t k_in, float* y,
             const float* residual = nullptr) {
  const Activations a = quantize_activations(x, M, k_in, l.w);
  const int64_t N = l.w.N;
  at::parallel_for(0, N, 16, [&](int64_t n0, int64_t n1) {
    matvec(l.w, a, n0, n1, y, N);
    for (int64_t r = 0; r < M; ++r)
      for (int64_t n = n0; n < n1; ++n)
        y[r * N + n] += (l.bias ? l.bias[n] : 0.f) + (residual ? residual[r * N + n] : 0.f);
  });
}

// gate [M, F] = silu(x @ W1.T + b1) * (x @ W3.T + b3): SwiGLU's two projections in one region
void swiglu(const Linear& w1, const Linear& w3, const float* x, int64_t M, int64_t k_in,
            float* gate) {
  const Activations a1 = quantize_activations(x, M, k_in, w1.w);
  const bool same = w3.w.K == w1.w.K && w3.w.int4 == w1.w.int4;
  const Activations a3 = same ? Activations{} : quantize_activations(x, M, k_in, w3.w);
  const int64_t F = w1.w.N;
  std::vector<float> up(M * F);
  at::parallel_for(0, F, 16, [&](int64_t n0, int64_t n1) {
    matvec(w1.w, a1, n0, n1, gate, F);
    matvec(w3.w, same ? a1 : a3, n0, n1, up.data(), F);
    for (int64_t r = 0; r < M; ++r) {
      float *g = gate + r * F, *u = up.data() + r * F;
      for (int64_t n = n0; n < n1; ++n) {
        g[n] += w1.bias ? w1.bias[n] : 0.f;
        u[n] += w3.bias ? w3.bias[n] : 0.f;
      }
      int64_t n = n0;
      for (; n + 8 <= n1; n += 8) {  // silu(g) = g / (1 + e^-g)
        const __m256 gv = _mm256_loadu_ps(g + n);
        const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), gv));
        const __m256 silu = _mm256_div_ps(gv, _mm256_add_ps(_mm256_set1_ps(1.f), e));
        _mm256_storeu_ps(g + n, _mm256_mul_ps(silu, _mm256_loadu_ps(u + n)));
      }
      for (; n < n1; ++n) g[n] = g[n] / (1.f + std::exp(-g[n])) * u[n];
    }
  });
}

}  // namespace

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
    for (int64_t r = r0; r < r1; ++r) rms_norm_row(xp + r * C, wp, C, static_cast<float>(eps), yp + r * C);
  });
  return y;
}

at::Tensor decode_attention(const at::Tensor& qkv_in, const at::Tensor& cos,
                            const at::Tensor& sin, at::Tensor k_cache, at::Tensor v_cache,
                            int64_t pos, int64_t H, int64_t KV,
                            const std::optional<at::Tensor>& mask) {
  TORCH_CHECK(qkv_in.dim() == 3 && qkv_in.size(1) == 1 && qkv_in.scalar_type() == at::kFloat,
              "decode_attention: qkv must be float32 [B, 1, (H + 2 KV) * D]");
  TORCH_CHECK(k_cache.dim() == 4, "decode_attention: caches must be [B, KV, S, D]");
  const Attention attention(qkv_in.size(0), H, KV, k_cache.size(3), pos, cos, sin, mask);
  attention.check(k_cache, v_cache, qkv_in.size(2));
  const at::Tensor qkv = qkv_in.contiguous();
  at::Tensor y = at::empty({attention.B, 1, H * attention.D}, qkv.options());
  attention.run(qkv.data_ptr<float>(), k_cache, v_cache, y.data_ptr<float>());
  return y;
}

// Every block of a Llama-family model, held once (checked, weights and caches borrowed) and run
// for one new token per row. Per layer:
//   h = x + wo(attention(wqkv(rms_norm(x))));  x = h + w2(silu(w1(rms_norm(h))) * w3(rms_norm(h)))
// Holding the ~700 tensors of SmolLM2's blocks here, rather than passing them on every step,
// saves ~1 ms of argument conversion per token. Python: torch.classes.lmforge.DecodeLayers.
class DecodeLayers : public torch::CustomClassHolder {
 public:
  // norms: (attention, feed-forward) per layer; linears: (qs, d, m, bias) for each of wqkv, wo,
  // w1, w3, w2 per layer (see Linear); one k and v cache [B, KV, S_max, D] per layer.
  DecodeLayers(std::vector<at::Tensor> norms, double eps, std::vector<at::Tensor> linears,
               std::vector<at::Tensor> k_caches, std::vector<at::Tensor> v_caches, int64_t H,
               int64_t KV)
      : tensors_(std::move(linears)), eps_(static_cast<float>(eps)), H_(H), KV_(KV) {
    const size_t L = k_caches.size();
    TORCH_CHECK(L > 0 && v_caches.size() == L && norms.size() == 2 * L && tensors_.size() == 20 * L,
                "DecodeLayers: per layer, 2 norms, 20 linear tensors and a k and v cache");
    const at::Tensor& k0 = k_caches[0];
    TORCH_CHECK(k0.dim() == 4 && k0.size(1) == KV && H % KV == 0,
                "DecodeLayers: caches must be [B, ", KV, ", S, D] for ", H, " heads");
    C_ = norms[0].numel(), D_ = k0.size(3);
    for (size_t l = 0; l < L; ++l) {
      const at::Tensor &an = norms[2 * l], &fn = norms[2 * l + 1];
      TORCH_CHECK(an.numel() == C_ && fn.numel() == C_ && an.scalar_type() == at::kFloat &&
                      fn.scalar_type() == at::kFloat && an.is_contiguous() && fn.is_contiguous(),
                  "DecodeLayers: norm weights must be float32 [", C_, "]");
      TORCH_CHECK(k_caches[l].sizes() == k0.sizes() && v_caches[l].sizes() == k0.sizes() &&
                      k_caches[l].scalar_type() == at::kFloat && v_caches[l].scalar_type() == at::kFloat &&
                      k_caches[l].is_contiguous() && v_caches[l].is_contiguous(),
                  "DecodeLayers: every cache must be contiguous float32 ", k0.sizes());
      auto linear = [&](const char* name, int64_t i) {
        return Linear(name, at::TensorList(tensors_).slice(20 * l + 4 * i, 4));
      };
      Layer layer{an, fn, linear("DecodeLayers wqkv", 0), linear("DecodeLayers wo", 1),
                  linear("DecodeLayers w1", 2), linear("DecodeLayers w3", 3),
                  linear("DecodeLayers w2", 4), k_caches[l], v_caches[l]};
      const int64_t F = layer.w1.w.N;
      TORCH_CHECK(layer.wqkv.w.N == (H + 2 * KV) * D_ && layer.wqkv.w.K >= C_ &&
                      layer.wo.w.K >= H * D_ && layer.wo.w.N == C_ && layer.w1.w.K >= C_ &&
                      layer.w3.w.K >= C_ && layer.w3.w.N == F && layer.w2.w.K >= F &&
                      layer.w2.w.N == C_,
                  "DecodeLayers: the linear layers' shapes do not chain for width ", C_);
      layers_.push_back(std::move(layer));
    }
  }

  // x [B, 1, C] float32 -> [B, 1, C] after every block, writing cache slot pos of each layer;
  // cos/sin [1|B, D] (empty: no RoPE), mask [1|B, >= pos + 1] bool or none
  at::Tensor forward(const at::Tensor& x_in, const at::Tensor& cos, const at::Tensor& sin,
                     int64_t pos, const std::optional<at::Tensor>& mask) {
    TORCH_CHECK(x_in.dim() == 3 && x_in.size(1) == 1 && x_in.size(2) == C_ &&
                    x_in.scalar_type() == at::kFloat,
                "DecodeLayers: x must be float32 [B, 1, ", C_, "]");
    at::Tensor x = x_in.clone(at::MemoryFormat::Contiguous);  // updated layer after layer
    const int64_t B = x.size(0), C = C_, HD = H_ * D_;
    const Attention attention(B, H_, KV_, D_, pos, cos, sin, mask);
    attention.check(layers_[0].k_cache, layers_[0].v_cache, layers_[0].wqkv.w.N);  // all alike
    std::vector<float> normed(B * C), qkv, attended(B * HD), h(B * C), gate;
    float* xp = x.data_ptr<float>();
    for (const Layer& l : layers_) {
      qkv.resize(B * l.wqkv.w.N), gate.resize(B * l.w1.w.N);
      for (int64_t b = 0; b < B; ++b)
        rms_norm_row(xp + b * C, l.attention_norm.data_ptr<float>(), C, eps_, normed.data() + b * C);
      project(l.wqkv, normed.data(), B, C, qkv.data());
      attention.run(qkv.data(), l.k_cache, l.v_cache, attended.data());
      project(l.wo, attended.data(), B, HD, h.data(), xp);
      for (int64_t b = 0; b < B; ++b)
        rms_norm_row(h.data() + b * C, l.ffn_norm.data_ptr<float>(), C, eps_, normed.data() + b * C);
      swiglu(l.w1, l.w3, normed.data(), B, C, gate.data());
      project(l.w2, gate.data(), B, l.w1.w.N, xp, h.data());
    }
    return x;
  }

 private:
  struct Layer {
    at::Tensor attention_norm, ffn_norm;
    Linear wqkv, wo, w1, w3, w2;
    at::Tensor k_cache, v_cache;
  };
  std::vector<at::Tensor> tensors_;  // the linear layers' tensors, which Linear points into
  std::vector<Layer> layers_;
  float eps_;
  int64_t H_, KV_, C_ = 0, D_ = 0;
};

}  // namespace lmforge

TORCH_LIBRARY_FRAGMENT(lmforge, m) {
  m.def("rms_norm(Tensor x, Tensor weight, float eps) -> Tensor");
  m.def(
      "decode_attention(Tensor qkv, Tensor cos, Tensor sin, Tensor(a!) k_cache, "
      "Tensor(b!) v_cache, int pos, int n_heads, int n_kv_heads, Tensor? mask=None) -> Tensor");
  m.class_<lmforge::DecodeLayers>("DecodeLayers")
      .def(torch::init<std::vector<at::Tensor>, double, std::vector<at::Tensor>,
                       std::vector<at::Tensor>, std::vector<at::Tensor>, int64_t, int64_t>())
      .def("forward", &lmforge::DecodeLayers::forward);
}

TORCH_LIBRARY_IMPL(lmforge, CPU, m) {
  m.impl("rms_norm", &lmforge::rms_norm);
  m.impl("decode_attention", &lmforge::decode_attention);
}
