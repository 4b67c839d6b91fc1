// The quantized matmuls of blocks.cpp, for the other kernels to call without the dispatcher.
#pragma once

#include <ATen/ATen.h>

#include <optional>

namespace lmforge {

// x [..., K'] @ W.T + bias, W = d * q + m per block of 32 (qs uint8 [N, K/2], d and m fp16)
at::Tensor int4_linear(const at::Tensor& x, const at::Tensor& qs, const at::Tensor& d,
                       const at::Tensor& m, const std::optional<at::Tensor>& bias);

// x [..., K'] @ W.T + bias, W = d * q per block of 32 (qs int8 [N, K], d fp16)
at::Tensor int8_linear(const at::Tensor& x, const at::Tensor& qs, const at::Tensor& d,
                       const std::optional<at::Tensor>& bias);

}  // namespace lmforge
