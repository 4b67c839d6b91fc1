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
//   int4: qs uint8 [N, K/2] in pair order: blocks (2p, 2p+1) share bytes 32p..32p+31, and byte
//         8c + 4s + t (c < 4, s < 2, t < 4) holds weight 4c + t of block 2p + s in its low
//         nibble and weight 16 + 4c + t in its high one. Unpacked and multiplied, each 4 bytes
//         sum into one int32 lane, so the lanes alternate between the two blocks and one
//         broadcast pair of scales (s0, s1, s0, s1, ...) scales them all.
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
#include <cstdint>
#include <optional>
#include <vector>

namespace lmforge {
namespace {

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m128i load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

// The first n of 8 lanes (n <= 8): a mask for AVX2's masked loads, which never touch the rest.
inline __m256i first_lanes(int64_t n) {
  static const int32_t table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(table + 8 - n));
}

// n <= 8 fp16 values -> floats (zeros past n). Rows of blocks end in a partial chunk of 8
// (SmolLM2: 18 blocks), read with a masked load: copying them out instead stalls on
// store forwarding, a cost that showed in every row.
inline __m256 load_halves(const uint16_t* p, int64_t n) {
  if (n == 8) return _mm256_cvtph_ps(load128(p));
  if (n % 2 == 0) {  // pairs of halves as 32-bit lanes
    const __m128i pairs = _mm_maskload_epi32(reinterpret_cast<const int*>(p),
                                             _mm256_castsi256_si128(first_lanes(n / 2)));
    return _mm256_cvtph_ps(pairs);
  }
  uint16_t padded[8] = {};
  std::copy(p, p + n, padded);
  return _mm256_cvtph_ps(load128(padded));
}

// n <= 8 floats (zeros past n)
inline __m256 load_floats(const float* p, int64_t n) {
  return n == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, first_lanes(n));
}

// One block of 32 floats -> q int16 [32] with x ~ d q; returns sum(q).
inline int quantize_block(const float* x, int16_t* q, float* d) {
  const __m256 sign = _mm256_set1_ps(-0.f);
  __m256 v[4], amax = _mm256_setzero_ps();
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_loadu_ps(x + 8 * i);
    amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[i]));
  }
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  *d = _mm_cvtss_f32(m) / 32767.f;
  const __m256 inv = _mm256_set1_ps(*d > 0.f ? 1.f / *d : 0.f);
  __m256i total = _mm256_setzero_si256();
  for (int i = 0; i < 4; i += 2) {  // round to nearest (even), as torch.round; pack to int16
    const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], inv));
    const __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(v[i + 1], inv));
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 8 * i), packed);
    total = _mm256_add_epi32(total, _mm256_madd_epi16(packed, _mm256_set1_epi16(1)));
  }
  return hsum_epi32(total);
}

// 16 values of each of two blocks (a, b) -> 32 bytes of each plane, in pair order:
// a0..3 b0..3 a4..7 b4..7 ... (the weights' low or high nibbles, see the layout above)
inline void store_planes(const int16_t* a, const int16_t* b, uint8_t* lo, int8_t* hi) {
  const __m128i low_byte = _mm_set1_epi16(0xFF);
  for (int half = 0; half < 2; ++half) {
    const __m128i A = load128(a + 8 * half), B = load128(b + 8 * half);
    const __m128i v0 = _mm_unpacklo_epi64(A, B), v1 = _mm_unpackhi_epi64(A, B);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(lo + 16 * half),
                     _mm_packus_epi16(_mm_and_si128(v0, low_byte), _mm_and_si128(v1, low_byte)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(hi + 16 * half),
                     _mm_packs_epi16(_mm_srai_epi16(v0, 8), _mm_srai_epi16(v1, 8)));
  }
}

// scale[r][j] = d[c + j] dx[r0 + r][c + j] for the len <= 8 blocks of a chunk from block c:
// the weight scale of each block times its activation scale, per activation row
template <int MR>
inline void chunk_scales(const uint16_t* d, const Activations& x, int64_t r0, int64_t c,
                         int64_t len, float (&scale)[MR][8]) {
  const __m256 dw = load_halves(d + c, len);
  for (int r = 0; r < MR; ++r)
    _mm256_store_ps(scale[r], _mm256_mul_ps(dw, load_floats(x.d.data() + (r0 + r) * x.nb + c, len)));
}

// Row n of an int4 matrix against MR activation rows from r0: y[r * ldy] = w[n] . x[r0 + r].
// Blocks go in chunks of 8, whose scales d dx and offset terms m s are computed together;
// within a chunk, each step reads a pair of blocks (32 bytes). Per byte plane of x, two maddubs
// sums fit in int16 (2 * 2 * 15 * 255) and madd widens them to int32, weighted 256 (high) and
// 1 (low).
template <int MR>
void int4_row(const BlockMatrix& w, int64_t n, const Activations& x, int64_t r0, float* y,
              int64_t ldy) {
  const int64_t nb = x.nb, K = x.K;
  const uint8_t* qs = w.qs + n * (K / 2);
  const uint16_t *d = w.d + n * nb, *m = w.m + n * nb;
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1), by256 = _mm256_set1_epi16(256);
  __m256 acc[MR];
  for (int r = 0; r < MR; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t c = 0; c < nb; c += 8) {
    const int64_t len = std::min<int64_t>(8, nb - c);
    alignas(32) float scale[MR][8];
    chunk_scales<MR>(d, x, r0, c, len, scale);
    const __m256 mw = load_halves(m + c, len);
    for (int r = 0; r < MR; ++r)  // the offset terms m s
      acc[r] = _mm256_fmadd_ps(mw, load_floats(x.s.data() + (r0 + r) * nb + c, len), acc[r]);
    for (int64_t b = 0; b < len; b += 2) {
      const __m256i packed = load256(qs + (c + b) * 16);
      const __m256i lo = _mm256_and_si256(packed, low4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
      for (int r = 0; r < MR; ++r) {
        const int64_t at = (r0 + r) * K + (c + b) * QK;
        const uint8_t* xl = x.lo.data() + at;
        const int8_t* xh = x.hi.data() + at;
        const __m256i high = _mm256_add_epi16(_mm256_maddubs_epi16(lo, load256(xh)),
                                              _mm256_maddubs_epi16(hi, load256(xh + 32)));
        const __m256i low = _mm256_add_epi16(_mm256_maddubs_epi16(load256(xl), lo),
                                             _mm256_maddubs_epi16(load256(xl + 32), hi));
        const __m256i sum =
            _mm256_add_epi32(_mm256_madd_epi16(high, by256), _mm256_madd_epi16(low, ones));
        const __m256 s01 = _mm256_castpd_ps(
            _mm256_broadcast_sd(reinterpret_cast<const double*>(scale[r] + b)));
        acc[r] = _mm256_fmadd_ps(s01, _mm256_cvtepi32_ps(sum), acc[r]);
      }
    }
  }
  for (int r = 0; r < MR; ++r) y[r * ldy] = hsum(acc[r]);
}

// Row n of an int8 matrix against MR activation rows (as int4_row, one block per step).
template <int MR>
void int8_row(const BlockMatrix& w, int64_t n, const Activations& x, int64_t r0, float* y,
              int64_t ldy) {
  const int64_t nb = x.nb, K = x.K;
  const int8_t* qs = reinterpret_cast<const int8_t*>(w.qs) + n * K;
  const uint16_t* d = w.d + n * nb;
  __m256 acc[MR];
  for (int r = 0; r < MR; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t c = 0; c < nb; c += 8) {
    const int64_t len = std::min<int64_t>(8, nb - c);
    alignas(32) float scale[MR][8];
    chunk_scales<MR>(d, x, r0, c, len, scale);
    for (int64_t b = 0; b < len; ++b) {
      const __m256i q0 = _mm256_cvtepi8_epi16(load128(qs + (c + b) * QK));
      const __m256i q1 = _mm256_cvtepi8_epi16(load128(qs + (c + b) * QK + 16));
      for (int r = 0; r < MR; ++r) {
        const int16_t* xq = x.q.data() + (r0 + r) * K + (c + b) * QK;
        const __m256i p = _mm256_add_epi32(_mm256_madd_epi16(q0, load256(xq)),
                                           _mm256_madd_epi16(q1, load256(xq + 16)));
        acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(scale[r] + b), _mm256_cvtepi32_ps(p), acc[r]);
      }
    }
  }
  for (int r = 0; r < MR; ++r) y[r * ldy] = hsum(acc[r]);
}

template <int MR>
inline void dot_rows(const BlockMatrix& w, int64_t n, const Activations& x, int64_t r0, float* y,
                     int64_t ldy) {
  if (w.int4) int4_row<MR>(w, n, x, r0, y, ldy);
  else int8_row<MR>(w, n, x, r0, y, ldy);
}

// Weights stream from DRAM once per token: ask for a row a few rows ahead, so that reading it
// overlaps the arithmetic on this one.
constexpr int64_t kPrefetchRows = 4;

inline void prefetch_row(const BlockMatrix& w, int64_t n) {
  const int64_t row_bytes = w.int4 ? w.K / 2 : w.K, nb = w.K / QK;
  const char* q = reinterpret_cast<const char*>(w.qs + n * row_bytes);
  for (int64_t at = 0; at < row_bytes; at += 64) _mm_prefetch(q + at, _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(w.d + n * nb), _MM_HINT_T0);
  if (w.m) _mm_prefetch(reinterpret_cast<const char*>(w.m + n * nb), _MM_HINT_T0);
}

}  // namespace

BlockMatrix block_matrix(const char* name, const at::Tensor& qs, const at::Tensor& d,
                         const at::Tensor* m) {
  const bool int4 = m != nullptr;
  if (int4) {
    TORCH_CHECK(qs.scalar_type() == at::kByte && qs.dim() == 2 && qs.size(1) % 32 == 0, name,
                ": qs must be uint8 [N, K/2] with K a multiple of 64");
  } else {
    TORCH_CHECK(qs.scalar_type() == at::kChar && qs.dim() == 2 && qs.size(1) % QK == 0, name,
                ": qs must be int8 [N, K] with K a multiple of 32");
  }
  BlockMatrix w;
  w.N = qs.size(0);
  w.K = int4 ? 2 * qs.size(1) : qs.size(1);
  w.int4 = int4;
  TORCH_CHECK(qs.is_contiguous() && d.is_contiguous() && d.scalar_type() == at::kHalf &&
                  d.sizes() == at::IntArrayRef({w.N, w.K / QK}),
              name, ": weights must be contiguous, d fp16 [N, K/32]");
  w.qs = reinterpret_cast<const uint8_t*>(qs.data_ptr());
  w.d = reinterpret_cast<const uint16_t*>(d.data_ptr());
  if (int4) {
    TORCH_CHECK(m->sizes() == d.sizes() && m->scalar_type() == at::kHalf && m->is_contiguous(),
                name, ": m must be fp16 like d");
    w.m = reinterpret_cast<const uint16_t*>(m->data_ptr());
  }
  return w;
}

Activations quantize_activations(const float* x, int64_t M, int64_t k_in, const BlockMatrix& w) {
  Activations a;
  a.M = M, a.K = w.K, a.nb = w.K / QK, a.planes = w.int4;
  a.d.resize(M * a.nb);
  a.s.resize(M * a.nb);
  if (a.planes) {
    a.lo.resize(M * a.K);
    a.hi.resize(M * a.K);
  } else {
    a.q.resize(M * a.K);
  }
  alignas(32) float block[QK];
  alignas(32) int16_t pair[2][QK];
  for (int64_t r = 0; r < M; ++r) {
    for (int64_t b = 0; b < a.nb; ++b) {
      const int64_t col = b * QK, n = std::clamp<int64_t>(k_in - col, 0, QK);
      const float* src = x + r * k_in + col;
      if (n < QK) {
        std::fill(std::copy(src, src + n, block), block + QK, 0.f);
        src = block;
      }
      const int64_t at = r * a.nb + b;
      int16_t* q = a.planes ? pair[b % 2] : a.q.data() + r * a.K + col;
      const int sum = quantize_block(src, q, &a.d[at]);
      a.s[at] = a.d[at] * static_cast<float>(sum);
      if (a.planes && b % 2 == 1) {
        const int64_t p = r * a.K + (b - 1) * QK;  // the pair's 64 bytes of each plane
        store_planes(pair[0], pair[1], a.lo.data() + p, a.hi.data() + p);
        store_planes(pair[0] + 16, pair[1] + 16, a.lo.data() + p + 32, a.hi.data() + p + 32);
      }
    }
  }
  return a;
}

void matvec(const BlockMatrix& w, const Activations& x, int64_t n0, int64_t n1, float* y,
            int64_t ldy) {
  TORCH_INTERNAL_ASSERT(x.K == w.K && x.planes == w.int4);
  for (int64_t n = n0; n < n1; ++n) {
    if (n + kPrefetchRows < n1) prefetch_row(w, n + kPrefetchRows);
    int64_t r = 0;
    for (; r + 4 <= x.M; r += 4) dot_rows<4>(w, n, x, r, y + r * ldy + n, ldy);
    switch (x.M - r) {
      case 3: dot_rows<3>(w, n, x, r, y + r * ldy + n, ldy); break;
      case 2: dot_rows<2>(w, n, x, r, y + r * ldy + n, ldy); break;
      case 1: dot_rows<1>(w, n, x, r, y + r * ldy + n, ldy); break;
      default: break;
    }
  }
}

namespace {

// The ops' shared driver: activation quantization, rows split over threads, bias, the shape and
// dtype of the result.
at::Tensor linear(const char* name, const at::Tensor& x_in, const BlockMatrix& w,
                  const std::optional<at::Tensor>& bias) {
  TORCH_CHECK(x_in.dim() >= 1 && at::isFloatingType(x_in.scalar_type()),
              name, ": x must be a float tensor [..., K]");
  const int64_t k_in = x_in.size(-1);
  TORCH_CHECK(k_in <= w.K, name, ": x has ", k_in, " features, the weights ", w.K);
  const at::Tensor x = x_in.reshape({-1, k_in}).to(at::kFloat).contiguous();
  const int64_t M = x.size(0);
  at::Tensor y = at::empty({M, w.N}, x.options());
  if (M > 0 && w.N > 0) {
    const Activations xq = quantize_activations(x.data_ptr<float>(), M, k_in, w);
    float* out = y.data_ptr<float>();
    at::parallel_for(0, w.N, 16, [&](int64_t n0, int64_t n1) { matvec(w, xq, n0, n1, out, w.N); });
  }
  if (bias) y.add_(*bias);
  std::vector<int64_t> shape(x_in.sizes().begin(), x_in.sizes().end());
  shape.back() = w.N;
  return y.view(shape).to(x_in.scalar_type());
}

}  // namespace

at::Tensor int4_linear(const at::Tensor& x, const at::Tensor& qs, const at::Tensor& d,
                       const at::Tensor& m, const std::optional<at::Tensor>& bias) {
  return linear("int4_linear", x, block_matrix("int4_linear", qs, d, &m), bias);
}

at::Tensor int8_linear(const at::Tensor& x, const at::Tensor& qs, const at::Tensor& d,
                       const std::optional<at::Tensor>& bias) {
  return linear("int8_linear", x, block_matrix("int8_linear", qs, d, nullptr), bias);
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
