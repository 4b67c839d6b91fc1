// y = x @ W.T for int4 and int8 weights quantized in blocks of 32 (GGUF's Q4_1 and Q8_0), AVX2.
//
// Decoding one token multiplies a single row by every weight, so it is bound by how fast the
// weights are read and unpacked. PyTorch's int4 CPU kernel unpacks to bf16 and multiplies in
// float; this one stays in integers: the activations are rounded to int16 per block of 32
// (x ~ dx * qx, relative error ~1e-5, far below bf16's 4e-3) and multiplied by the weights in
// integer SIMD (int4: byte planes of qx with `maddubs`, 32 products per instruction; int8:
// weights widened to int16 with `madd`); each block is scaled once:
//
//   int4:  w = d * q + m,  q in 0..15:     sum_j w_j x_j ~ d dx sum_j q_j qx_j + m (dx sum_j qx_j)
//   int8:  w = d * q,      q in -127..127: sum_j w_j x_j ~ d dx sum_j q_j qx_j
//
// (llama.cpp rounds activations to int8, one byte plane: ~10% faster here, but on SmolLM2 that
// flips enough greedy tokens to change answers, while int16 keeps fp32's.)
//
// Layouts, per output row n (K a multiple of 64 for int4, of 32 for int8; d and m fp16):
//   int4: qs uint8 [N, K/2], GGUF's nibble order: in block b (bytes 16b..16b+15), byte j holds
//         weight 32b+j in its low nibble and 32b+j+16 in its high one; d, m [N, K/32].
//   int8: qs int8 [N, K]; d [N, K/32].
//
// Ops (registered with PyTorch's dispatcher; threads from PyTorch's OpenMP pool), for x [..., K']
// of any float dtype with K' <= K (the weights' K is zero-padded), y [..., N] in x's dtype:
//   torch.ops.lmforge.int4_linear(x, qs, d, m, bias=None) -> y
//   torch.ops.lmforge.int8_linear(x, qs, d, bias=None) -> y

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/library.h>

#include "blocks.h"
#include "simd.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

namespace {

using lmforge::hsum;

constexpr int64_t QK = 32;  // weights per block

// Activations quantized per block of 32: x ~ d * q (q int16), and s = d * sum(q) for int4's
// offset term. int8 weights read q as it is; int4 weights read it split in two byte planes,
// q = 256 hi + lo (hi signed, lo unsigned), which AVX2's u8 x s8 `maddubs` can multiply by
// nibbles at twice the rate of int16 `madd`. The planes keep each pair of blocks (a, b) in the
// order the int4 loop unpacks nibbles: a0..15 b0..15 a16..31 b16..31.
struct QuantizedRows {
  int64_t nb;                  // blocks per row
  std::vector<int16_t> q;      // [M, K] (int8 weights)
  std::vector<uint8_t> lo;     // [M, K] (int4 weights, pair order)
  std::vector<int8_t> hi;      // [M, K] (int4 weights, pair order)
  std::vector<float> d, s;     // [M, nb]
};

// x [M, k_in] (k_in <= K; the missing columns are zeros) -> int16 blocks of 32
QuantizedRows quantize_rows(const float* x, int64_t M, int64_t k_in, int64_t K, bool planes) {
  const int64_t nb = K / QK;
  QuantizedRows out{nb, {}, {}, {}, std::vector<float>(M * nb), std::vector<float>(M * nb)};
  if (planes) {
    out.lo.resize(M * K);
    out.hi.resize(M * K);
  } else {
    out.q.resize(M * K);
  }
  float block[QK];
  for (int64_t r = 0; r < M; ++r) {
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t col = b * QK, n = std::clamp<int64_t>(k_in - col, 0, QK);
      std::fill(std::copy(x + r * k_in + col, x + r * k_in + col + n, block), block + QK, 0.f);
      float amax = 0.f;
      for (int64_t j = 0; j < QK; ++j) amax = std::max(amax, std::fabs(block[j]));
      const float d = amax / 32767.f, inv = d > 0.f ? 1.f / d : 0.f;
      int sum = 0;
      for (int64_t j = 0; j < QK; ++j) {
        const int q = std::clamp(static_cast<int>(std::nearbyint(block[j] * inv)), -32767, 32767);
        sum += q;
        if (planes) {
          const int64_t at = r * K + (b / 2) * 64 + (j / 16) * 32 + (b % 2) * 16 + j % 16;
          out.lo[at] = static_cast<uint8_t>(q & 0xFF);
          out.hi[at] = static_cast<int8_t>(q >> 8);  // arithmetic shift: q = 256 hi + lo
        } else {
          out.q[r * K + col + j] = static_cast<int16_t>(q);
        }
      }
      out.d[r * nb + b] = d;
      out.s[r * nb + b] = d * static_cast<float>(sum);
    }
  }
  return out;
}

// 8 fp16 values -> 8 floats
inline __m256 load_half8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// sum over blocks of m[b] * s[b] (int4's offset term), 8 blocks at a time
inline float offset_sum(const uint16_t* m, const float* s, int64_t nb) {
  __m256 acc = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 8 <= nb; b += 8) acc = _mm256_fmadd_ps(load_half8(m + b), _mm256_loadu_ps(s + b), acc);
  float total = hsum(acc);
  for (; b < nb; ++b) total += _cvtsh_ss(m[b]) * s[b];
  return total;
}

// 16 int16 weights . 16 int16 activations -> 8 int32 lanes, pairs summed (cannot overflow)
inline __m256i madd16(__m256i w, const int16_t* x) {
  return _mm256_madd_epi16(w, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)));
}

inline __m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// One int4 weight row against MR activation rows: y[r * ldy] = w . x[first + r].
// Each step reads two blocks (a, b): 32 bytes of nibbles. The low nibbles hold weights 0..15 of
// a (bytes 0..15) and of b (bytes 16..31), the high nibbles weights 16..31 of each; they meet
// the activation byte planes stored in that order. Per plane, two maddubs sums fit in int16
// (2 * 2 * 15 * 255), are widened to int32 and joined as 256 hi + lo. Lanes 0..3 of the result
// belong to block a, 4..7 to block b: scaled by [da dxa x4, db dxb x4].
template <int MR>
void int4_row(const uint8_t* qs, const uint16_t* d, const uint16_t* m, const QuantizedRows& x,
              int64_t first, float* y, int64_t ldy) {
  const int64_t nb = x.nb, K = nb * QK;
  const __m256i low4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  const __m256i spread = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  __m256 acc[MR];
  for (int r = 0; r < MR; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; b += 2) {
    const __m256i packed = load256(qs + b * 16);
    const __m256i lo = _mm256_and_si256(packed, low4);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
    uint32_t d_pair;
    std::memcpy(&d_pair, d + b, sizeof d_pair);
    const __m128 dw = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(d_pair)));  // da, db
    for (int r = 0; r < MR; ++r) {
      const int64_t at = (first + r) * K + b * QK;
      const uint8_t* xl = x.lo.data() + at;
      const int8_t* xh = x.hi.data() + at;
      const __m256i high = _mm256_add_epi16(_mm256_maddubs_epi16(lo, load256(xh)),
                                            _mm256_maddubs_epi16(hi, load256(xh + 32)));
      const __m256i low = _mm256_add_epi16(_mm256_maddubs_epi16(load256(xl), lo),
                                           _mm256_maddubs_epi16(load256(xl + 32), hi));
      const __m256i sum = _mm256_add_epi32(_mm256_slli_epi32(_mm256_madd_epi16(high, ones), 8),
                                           _mm256_madd_epi16(low, ones));
      const __m128 dx = _mm_castpd_ps(_mm_load_sd(
          reinterpret_cast<const double*>(x.d.data() + (first + r) * nb + b)));
      const __m256 scale =
          _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_mul_ps(dw, dx)), spread);
      acc[r] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sum), acc[r]);
    }
  }
  for (int r = 0; r < MR; ++r)
    y[r * ldy] = hsum(acc[r]) + offset_sum(m, x.s.data() + (first + r) * nb, nb);
}

// One int8 weight row against MR activation rows.
template <int MR>
void int8_row(const int8_t* qs, const uint16_t* d, const uint16_t* /*unused*/,
              const QuantizedRows& x, int64_t first, float* y, int64_t ldy) {
  const int64_t nb = x.nb, K = nb * QK;
  __m256 acc[MR];
  for (int r = 0; r < MR; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + b * QK));
    const __m256i q0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(q));
    const __m256i q1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(q, 1));
    const float dw = _cvtsh_ss(d[b]);
    for (int r = 0; r < MR; ++r) {
      const int16_t* xq = x.q.data() + (first + r) * K + b * QK;
      const __m256i p = _mm256_add_epi32(madd16(q0, xq), madd16(q1, xq + 16));
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dw * x.d[(first + r) * nb + b]),
                               _mm256_cvtepi32_ps(p), acc[r]);
    }
  }
  for (int r = 0; r < MR; ++r) y[r * ldy] = hsum(acc[r]);
}

// Weights stream from DRAM once per token: ask for a row a few rows ahead, so that reading it
// overlaps the arithmetic on this one.
constexpr int64_t kPrefetchRows = 4;

template <typename Q>
inline void prefetch_row(const Q* row, int64_t row_bytes, const uint16_t* d, const uint16_t* m,
                         int64_t nb) {
  const char* ahead = reinterpret_cast<const char*>(row) + kPrefetchRows * row_bytes;
  for (int64_t at = 0; at < row_bytes; at += 64) _mm_prefetch(ahead + at, _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(d + kPrefetchRows * nb), _MM_HINT_T0);
  if (m) _mm_prefetch(reinterpret_cast<const char*>(m + kPrefetchRows * nb), _MM_HINT_T0);
}

// The shared driver: checks, activation quantization, rows split over threads, 4 activation
// rows at a time (each weight row is read once per 4), bias, shape and dtype of the result.
template <typename Q, template <int> class Row>
at::Tensor block_linear(const char* name, const at::Tensor& x_in, const at::Tensor& qs,
                        const at::Tensor& d, const at::Tensor* m,
                        const std::optional<at::Tensor>& bias, int64_t K, bool planes) {
  TORCH_CHECK(x_in.dim() >= 1 && at::isFloatingType(x_in.scalar_type()),
              name, ": x must be a float tensor [..., K]");
  TORCH_CHECK(qs.dim() == 2 && qs.is_contiguous() && d.is_contiguous() &&
                  d.scalar_type() == at::kHalf && d.sizes() == at::IntArrayRef({qs.size(0), K / QK}),
              name, ": weights must be contiguous, d fp16 [N, K/32]");
  const int64_t k_in = x_in.size(-1), N = qs.size(0), nb = K / QK;
  TORCH_CHECK(k_in <= K, name, ": x has ", k_in, " features, the weights ", K);
  const at::Tensor x = x_in.reshape({-1, k_in}).to(at::kFloat).contiguous();
  const int64_t M = x.size(0);
  at::Tensor y = at::empty({M, N}, x.options());
  if (M > 0 && N > 0) {
    const QuantizedRows xq = quantize_rows(x.data_ptr<float>(), M, k_in, K, planes);
    const Q* w = reinterpret_cast<const Q*>(qs.data_ptr());
    const int64_t row_bytes = qs.size(1);
    const auto* dp = reinterpret_cast<const uint16_t*>(d.data_ptr());
    const auto* mp = m ? reinterpret_cast<const uint16_t*>(m->data_ptr()) : nullptr;
    float* out = y.data_ptr<float>();
    at::parallel_for(0, N, 16, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n) {
        const Q* wn = w + n * row_bytes;
        const uint16_t* dn = dp + n * nb;
        const uint16_t* mn = mp ? mp + n * nb : nullptr;
        if (n + kPrefetchRows < n1) prefetch_row(wn, row_bytes, dn, mn, nb);
        float* yn = out + n;
        int64_t r = 0;
        for (; r + 4 <= M; r += 4) Row<4>::run(wn, dn, mn, xq, r, yn + r * N, N);
        switch (M - r) {
          case 3: Row<3>::run(wn, dn, mn, xq, r, yn + r * N, N); break;
          case 2: Row<2>::run(wn, dn, mn, xq, r, yn + r * N, N); break;
          case 1: Row<1>::run(wn, dn, mn, xq, r, yn + r * N, N); break;
          default: break;
        }
      }
    });
  }
  if (bias) y.add_(*bias);
  std::vector<int64_t> shape(x_in.sizes().begin(), x_in.sizes().end());
  shape.back() = N;
  return y.view(shape).to(x_in.scalar_type());
}

template <int MR>
struct Int4Row {
  static void run(const uint8_t* qs, const uint16_t* d, const uint16_t* m, const QuantizedRows& x,
                  int64_t first, float* y, int64_t ldy) {
    int4_row<MR>(qs, d, m, x, first, y, ldy);
  }
};

template <int MR>
struct Int8Row {
  static void run(const int8_t* qs, const uint16_t* d, const uint16_t* m, const QuantizedRows& x,
                  int64_t first, float* y, int64_t ldy) {
    int8_row<MR>(qs, d, m, x, first, y, ldy);
  }
};

}  // namespace

namespace lmforge {

at::Tensor int4_linear(const at::Tensor& x, const at::Tensor& qs, const at::Tensor& d,
                       const at::Tensor& m, const std::optional<at::Tensor>& bias) {
  TORCH_CHECK(qs.scalar_type() == at::kByte && qs.dim() == 2 && qs.size(1) % 32 == 0,
              "int4_linear: qs must be uint8 [N, K/2] with K a multiple of 64");
  TORCH_CHECK(m.sizes() == d.sizes() && m.scalar_type() == at::kHalf && m.is_contiguous(),
              "int4_linear: m must be fp16 like d");
  return block_linear<uint8_t, Int4Row>("int4_linear", x, qs, d, &m, bias, qs.size(1) * 2, true);
}

at::Tensor int8_linear(const at::Tensor& x, const at::Tensor& qs, const at::Tensor& d,
                       const std::optional<at::Tensor>& bias) {
  TORCH_CHECK(qs.scalar_type() == at::kChar && qs.dim() == 2 && qs.size(1) % QK == 0,
              "int8_linear: qs must be int8 [N, K] with K a multiple of 32");
  return block_linear<int8_t, Int8Row>("int8_linear", x, qs, d, nullptr, bias, qs.size(1), false);
}

}  // namespace lmforge

TORCH_LIBRARY(lmforge, m) {
  m.def("int4_linear(Tensor x, Tensor qs, Tensor d, Tensor m, Tensor? bias=None) -> Tensor");
  m.def("int8_linear(Tensor x, Tensor qs, Tensor d, Tensor? bias=None) -> Tensor");
}

TORCH_LIBRARY_IMPL(lmforge, CPU, m) {
  m.impl("int4_linear", &lmforge::int4_linear);
  m.impl("int8_linear", &lmforge::int8_linear);
}
