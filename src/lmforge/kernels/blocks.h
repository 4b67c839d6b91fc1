// The quantized matmuls of blocks.cpp, for decode.cpp to call without the dispatcher: the ops
// take tensors; DecodeLayers works on raw rows with these.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace lmforge {

constexpr int64_t QK = 32;  // weights per block

// A weight matrix quantized in blocks of 32 along K (borrowed pointers into its tensors).
//   int4: w = d q + m, q in 0..15: qs [N, K/2] in pair order (see pack_int4 in __init__.py)
//   int8: w = d q, q in -127..127: qs [N, K]
// d and m fp16 [N, K/32]; m is null for int8. K is a multiple of 64 (int4) or 32 (int8).
struct BlockMatrix {
  int64_t N = 0, K = 0;
  bool int4 = false;
  const uint8_t* qs = nullptr;
  const uint16_t* d = nullptr;
  const uint16_t* m = nullptr;
};

// The checked view of (qs, d, m?) tensors; `name` prefixes the error messages.
BlockMatrix block_matrix(const char* name, const at::Tensor& qs, const at::Tensor& d,
                         const at::Tensor* m);

// Activation rows rounded to int16 per block of 32, x ~ dx * qx, in the layout the matrices'
// inner loops read (planes for int4, plain for int8), and s = dx * sum(qx) for int4's offset.
struct Activations {
  int64_t M = 0, K = 0, nb = 0;
  bool planes = false;
  std::vector<int16_t> q;   // [M, K] (int8 matrices)
  std::vector<uint8_t> lo;  // [M, K] (int4 matrices): low bytes of qx, pair order
  std::vector<int8_t> hi;   // [M, K]: high bytes, qx = 256 hi + lo
  std::vector<float> d, s;  // [M, nb]
};

// x [M, k_in] (row stride k_in, k_in <= K; the missing columns are zeros) for a matrix `w`
Activations quantize_activations(const float* x, int64_t M, int64_t k_in, const BlockMatrix& w);

// y[r * ldy + n] = w[n] . x[r] for rows n0 <= n < n1 of w and every row r of x (one thread's
// share; callers split the rows with at::parallel_for)
void matvec(const BlockMatrix& w, const Activations& x, int64_t n0, int64_t n1, float* y,
            int64_t ldy);

// x [..., K'] @ W.T + bias, W = d * q + m per block of 32 (qs uint8 [N, K/2], d and m fp16)
at::Tensor int4_linear(const at::Tensor& x, const at::Tensor& qs, const at::Tensor& d,
                       const at::Tensor& m, const std::optional<at::Tensor>& bias);

// x [..., K'] @ W.T + bias, W = d * q per block of 32 (qs int8 [N, K], d fp16)
at::Tensor int8_linear(const at::Tensor& x, const at::Tensor& qs, const at::Tensor& d,
                       const std::optional<at::Tensor>& bias);

}  // namespace lmforge
